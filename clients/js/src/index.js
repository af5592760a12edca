// parley-client: a client library for Parley's public contract (REST under
// /api/v1, the relay's WebSocket and long-poll), for browsers and Node 18+.
// See README.md; the types are in index.d.ts.

export { ApiError, ERROR_STATUS } from './errors.js';
export { ParleyEvent } from './events.js';
export { MemoryStorage, defaultStorage, newClientMsgId } from './storage.js';
export { Api } from './api.js';
export { Live, backoffDelay } from './live.js';
export { Outbox } from './outbox.js';
export { ParleyClient, FRAME_EVENTS } from './client.js';
