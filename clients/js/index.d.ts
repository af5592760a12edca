// Types of parley-client (src/index.js), written by hand from the source and
// PROTOCOL.md's public contract: the names and fields are the server's.

/** A Web Storage lookalike: localStorage, MemoryStorage, or an app's own. */
export interface StorageLike {
  getItem(key: string): string | null;
  setItem(key: string, value: string): void;
  removeItem(key: string): void;
}

export class MemoryStorage implements StorageLike {
  getItem(key: string): string | null;
  setItem(key: string, value: string): void;
  removeItem(key: string): void;
  clear(): void;
  readonly length: number;
  key(i: number): string | null;
}
export function defaultStorage(): StorageLike;
/** A fresh client_msg_id (32 hex digits). */
export function newClientMsgId(): string;

/** PROTOCOL.md's error codes, and the library's own for what never reached the server. */
export type ErrorCode =
  | 'bad_request' | 'unauthorized' | 'forbidden' | 'not_found' | 'method_not_allowed'
  | 'conflict' | 'too_large' | 'rate_limited' | 'internal' | 'unavailable'
  | 'network' | 'aborted' | 'not_logged_in' | 'discarded' | `http_${number}`;

export class ApiError extends Error {
  constructor(status: number, code: string, message?: string, retryAfter?: number);
  /** The HTTP status (a WebSocket error frame's: its code's, as over REST); 0 when no answer came. */
  status: number;
  code: ErrorCode | string;
  /** Seconds, from Retry-After (rate_limited); else 0. */
  retryAfter: number;
  /** True when the same request may work later (network, unavailable, rate_limited, internal). */
  readonly retryable: boolean;
}

/** PROTOCOL.md's error codes and their HTTP statuses. */
export const ERROR_STATUS: Readonly<Record<string, number>>;

/** An Event with a detail, like CustomEvent. */
export class ParleyEvent<T = unknown> extends Event {
  constructor(type: string, detail?: T);
  readonly detail: T;
}

// ---------------------------------------------------------------------------
// The contract's objects

export type Id = number;

export interface User { id: Id; username: string; display_name: string }
export interface Me extends User { settings: Record<string, unknown>; created_at: string }
export interface Presence { status: 'online' | 'offline'; last_seen: string | null }
export interface Friend extends User { state: 'accepted' | 'incoming' | 'outgoing'; presence: Presence }

export interface Attachment {
  id: Id; content_type: string; size: number; name: string;
  sha256?: string; width?: number; height?: number; thumbnail?: { width: number; height: number };
}
export interface Reaction { emoji: string; count: number; me: boolean }

export interface Message {
  conversation_id: Id; message_id: Id; sender_id: Id; body: string; created_at: string;
  client_msg_id: string | null;
  reply_to?: Id | null; attachments?: Attachment[]; edited_at?: string | null;
  deleted_at?: string | null; reactions?: Reaction[];
}

export interface Conversation {
  id: Id; kind: 'direct' | 'group'; title: string | null; member_ids: Id[]; created_at?: string;
  last_message?: Message | null; unread?: number; muted?: boolean;
}

export interface Session { token: string; expires_at: string; user: User; device_id: Id }
export interface LoginResult extends Session {}
export interface Device { platform: 'apns' | 'fcm' | 'web'; push_token?: string; name?: string }

// ---------------------------------------------------------------------------
// Frames and inbox events (PROTOCOL.md, "WebSocket" and "Additions")

export interface InboxMessage extends Message { type: 'message'; seq: number }
export interface EditEvent {
  type: 'edit'; seq: number; conversation_id: Id; message_id: Id;
  body: string; edited_at: string; sender_id: Id;
}
export interface DeleteEvent {
  type: 'delete'; seq: number; conversation_id: Id; message_id: Id;
  deleted_at: string; deleted_by: Id;
}
export interface ReactionEvent {
  type: 'reaction'; seq: number; conversation_id: Id; message_id: Id;
  user_id: Id; emoji: string; op: 'add' | 'remove';
}
export type InboxEvent = InboxMessage | EditEvent | DeleteEvent | ReactionEvent;

export interface SentFrame { type?: 'sent'; client_msg_id: string; conversation_id: Id; message_id: Id; created_at: string }
export interface PresenceFrame { type: 'presence'; user_id: Id; status: 'online' | 'offline'; last_seen: string | null }
export interface TypingFrame { type: 'typing'; conversation_id: Id; user_id: Id }
export interface ReadFrame { type: 'read'; conversation_id: Id; user_id: Id; message_id: Id }
export interface ConversationFrame {
  type: 'conversation'; change: 'created' | 'updated' | 'member_added' | 'member_removed';
  conversation: Conversation;
}
export interface FriendFrame { type: 'friend'; change: 'request' | 'accepted' | 'removed'; user: User }
export interface ErrorFrame { type: 'error'; error: { code: ErrorCode | string; message: string }; ref?: string }
/** Any server frame; kinds added later arrive with their own type. */
export type Frame = InboxEvent | SentFrame | PresenceFrame | TypingFrame | ReadFrame | ConversationFrame
  | FriendFrame | ErrorFrame | { type: string; seq?: number; [field: string]: unknown };

export type State = 'connecting' | 'online' | 'offline';
export type Mode = 'ws' | 'poll' | null;
export interface StatusDetail { state: State; mode: Mode }
export interface ReadyDetail { mode: 'ws' | 'poll'; user_id?: Id; device_id?: Id; cursor: number | null }

// ---------------------------------------------------------------------------
// Api

export interface ApiOptions {
  /** The site's origin, e.g. "https://chat.example.org"; "" (default) for the page's own. */
  baseUrl?: string;
  fetch?: typeof fetch;
  /** Default: localStorage, else a MemoryStorage. */
  storage?: StorageLike;
  /** Prefix of the storage keys; default "parley.". */
  storagePrefix?: string;
  /** What POST /sessions says of this device; default {platform: "web", name: the user agent}. */
  device?: Device;
  /** For upload progress; default the global XMLHttpRequest (browsers). */
  XMLHttpRequest?: unknown;
}

export interface Upload { promise: Promise<Attachment>; abort(): void }

export class Api {
  constructor(options?: ApiOptions);
  readonly base: string;
  session: Session | null;
  readonly token: string | null;
  onUnauthorized: ((error: ApiError) => void) | null;
  saveSession(session: Session | null): void;
  scheduleRefresh(): void;
  stopRefresh(): void;
  request<T = unknown>(method: string, path: string, body?: unknown,
    options?: { auth?: boolean; signal?: AbortSignal }): Promise<T>;
  blob(path: string): Promise<Blob>;

  signup(username: string, password: string, display_name?: string): Promise<User>;
  login(username: string, password: string, device?: Device): Promise<LoginResult>;
  refresh(): Promise<{ token: string; expires_at: string }>;
  logout(): Promise<void>;
  me(): Promise<Me>;
  updateMe(fields: { display_name?: string; settings?: Record<string, unknown> }): Promise<Me>;
  findUsers(q: string, limit?: number): Promise<{ users: User[] }>;
  user(id: Id): Promise<User>;

  friends(): Promise<{ friends: Friend[] }>;
  addFriend(user_id: Id): Promise<unknown>;
  removeFriend(id: Id): Promise<null>;
  presence(ids: Id[]): Promise<{ presence: Array<Presence & { user_id: Id }> }>;
  blocks(): Promise<{ users: User[] }>;
  block(user_id: Id): Promise<null>;
  unblock(id: Id): Promise<null>;

  conversations(): Promise<{ conversations: Conversation[] }>;
  conversation(id: Id): Promise<Conversation>;
  startDirect(user_id: Id): Promise<Conversation>;
  startGroup(title: string, member_ids: Id[]): Promise<Conversation>;
  updateConversation(id: Id, fields: { title?: string; muted?: boolean }): Promise<Conversation>;
  addMember(id: Id, user_id: Id): Promise<null>;
  removeMember(id: Id, user_id: Id): Promise<null>;
  sendMessage(id: Id, client_msg_id: string, body: string,
    extras?: { reply_to?: Id; attachment_ids?: Id[] }): Promise<Message>;
  editMessage(id: Id, mid: Id, body: string): Promise<Message>;
  deleteMessage(id: Id, mid: Id): Promise<null>;
  react(id: Id, mid: Id, emoji: string): Promise<null>;
  unreact(id: Id, mid: Id, emoji: string): Promise<null>;
  messages(id: Id, options?: { before?: Id; after?: Id; limit?: number }): Promise<{ messages: Message[] }>;
  markRead(id: Id, message_id: Id): Promise<null>;
  search(q: string, conversation_id?: Id, limit?: number): Promise<{ messages: Message[] }>;
  sync(after?: number | null, limit?: number): Promise<{ events: InboxEvent[]; cursor: number }>;

  registerDevice(platform: Device['platform'], push_token: string, name?: string): Promise<{ device_id: Id }>;
  devices(): Promise<{ devices: Array<{ id: Id; platform: string; name: string | null; created_at: string; last_seen: string | null }> }>;
  removeDevice(id: Id): Promise<null>;

  upload(file: Blob | ArrayBufferView, onProgress?: (loaded: number, total: number) => void,
    options?: { type?: string; name?: string; useFetch?: boolean }): Upload;
  attachment(id: Id): Promise<Blob>;
  thumbnail(id: Id): Promise<Blob>;
  discover(region?: string): Promise<{ relay: { id: string | number; url: string; region: string | null } }>;
  health(): Promise<{ status: string; postgres: string; redis: string }>;
}

// ---------------------------------------------------------------------------
// Live

export interface LiveOptions {
  storage?: StorageLike;
  /** A WebSocket class (Node: the ws package's); null: long-poll only. Default: the global one. */
  WebSocket?: unknown;
  fetch?: typeof fetch;
  /** Passed to GET /discover. */
  region?: string;
  /** Start from this seq instead of the stored cursor. */
  cursor?: number;
  /** Reconnect delays: initialMs doubled up to maxMs, with ±25% jitter. Default 500 and 15000. */
  backoff?: { initialMs?: number; maxMs?: number };
  /** WebSocket failures in a row before long-poll; default 2. */
  wsFailuresBeforePoll?: number;
  /** How long to stay on long-poll before trying the WebSocket again; default 60000. */
  wsRetryFromPollMs?: number;
  /** The long-poll's hold, in seconds; default 25. */
  pollTimeoutS?: number;
  /** How soon after an inbox event it is acked; default 200. */
  ackDelayMs?: number;
  /** Where "online"/"offline" events come from; default window in browsers, none in Node. */
  onlineTarget?: EventTarget | null;
}

export function backoffDelay(attempt: number, backoff?: { initialMs?: number; maxMs?: number },
  random?: () => number): number;

export interface LiveEventMap {
  frame: ParleyEvent<Frame>;
  status: ParleyEvent<StatusDetail>;
  ready: ParleyEvent<ReadyDetail>;
  unauthorized: ParleyEvent<null>;
}

export class Live extends EventTarget {
  constructor(api: Api, deviceId: Id, options?: LiveOptions);
  readonly cursor: number | null;
  readonly state: State;
  readonly mode: Mode;
  readonly canSend: boolean;
  start(): void;
  stop(): void;
  drop(): void;
  kick(): void;
  send(frame: object): boolean;
  addEventListener<K extends keyof LiveEventMap>(type: K, listener: (ev: LiveEventMap[K]) => void,
    options?: boolean | AddEventListenerOptions): void;
  addEventListener(type: string, listener: EventListenerOrEventListenerObject | null,
    options?: boolean | AddEventListenerOptions): void;
}

// ---------------------------------------------------------------------------
// Outbox

export interface OutboxItem<Meta = unknown> {
  conversation_id: Id;
  client_msg_id: string;
  body: string;
  created_at: string;
  reply_to?: Id;
  attachment_ids?: Id[];
  attachments?: Attachment[];
  meta?: Meta;
  /** Refused for good: waits for retry() or discard(). */
  failed?: boolean;
  error?: { code: string; message: string };
}

export interface SendOptions<Meta = unknown> {
  reply_to?: Id;
  attachment_ids?: Id[];
  /** Attachment objects (their ids are sent), kept with the item for display. */
  attachments?: Attachment[];
  meta?: Meta;
  client_msg_id?: string;
}

/** What confirms a send: the "sent" frame, the REST answer (a Message) or the own inbox event. */
export type Confirmation = SentFrame | Message;

export interface Queued<Meta = unknown> { item: OutboxItem<Meta>; promise: Promise<Confirmation> }

export interface OutboxEventMap {
  confirmed: ParleyEvent<{ item: OutboxItem; message: Confirmation; via: 'ws' | 'rest' | 'inbox' }>;
  failed: ParleyEvent<{ item: OutboxItem; error: ApiError }>;
  change: ParleyEvent<{ items: OutboxItem[] }>;
}

export class Outbox extends EventTarget {
  constructor(transport: { socket(frame: object): boolean; post(item: OutboxItem): Promise<Message> },
    options?: { storage?: StorageLike; retryMs?: number; tickMs?: number });
  readonly items: OutboxItem[];
  load(key: string | null): void;
  get(client_msg_id: string): OutboxItem | undefined;
  add<Meta = unknown>(fields: SendOptions<Meta> & { conversation_id: Id; body: string }): Queued<Meta>;
  flush(force?: boolean): void;
  start(): void;
  stop(): void;
  confirm(client_msg_id: string, message: Confirmation, via?: 'ws' | 'rest' | 'inbox'): OutboxItem | null;
  refused(client_msg_id: string, error: ApiError | { code: string; message: string }): void;
  retry(client_msg_id: string): Promise<Confirmation>;
  discard(client_msg_id: string): boolean;
  static extrasOf(item: OutboxItem): { reply_to?: Id; attachment_ids?: Id[] };
  addEventListener<K extends keyof OutboxEventMap>(type: K, listener: (ev: OutboxEventMap[K]) => void,
    options?: boolean | AddEventListenerOptions): void;
  addEventListener(type: string, listener: EventListenerOrEventListenerObject | null,
    options?: boolean | AddEventListenerOptions): void;
}

// ---------------------------------------------------------------------------
// ParleyClient

export interface ParleyClientOptions extends ApiOptions, LiveOptions {
  /** How long an unconfirmed send waits before it is sent again; default 8000. */
  outboxRetryMs?: number;
  /** How often the outbox looks for sends to retry; default 4000. */
  outboxTickMs?: number;
}

export const FRAME_EVENTS: readonly string[];

export interface ParleyClientEventMap {
  message: ParleyEvent<InboxMessage>;
  edit: ParleyEvent<EditEvent>;
  delete: ParleyEvent<DeleteEvent>;
  reaction: ParleyEvent<ReactionEvent>;
  sent: ParleyEvent<SentFrame>;
  presence: ParleyEvent<PresenceFrame>;
  typing: ParleyEvent<TypingFrame>;
  read: ParleyEvent<ReadFrame>;
  conversation: ParleyEvent<ConversationFrame>;
  friend: ParleyEvent<FriendFrame>;
  error: ParleyEvent<ErrorFrame>;
  /** Every frame, those above and kinds added later. */
  frame: ParleyEvent<Frame>;
  status: ParleyEvent<StatusDetail>;
  ready: ParleyEvent<ReadyDetail>;
  unauthorized: ParleyEvent<{ error: ApiError }>;
}

export class ParleyClient extends EventTarget {
  constructor(options?: ParleyClientOptions);
  readonly api: Api;
  readonly live: Live | null;
  readonly outbox: Outbox;
  readonly session: Session | null;
  readonly user: User | null;
  readonly state: State;
  readonly mode: Mode;
  readonly cursor: number | null;
  signup(username: string, password: string, display_name?: string): Promise<User>;
  login(username: string, password: string, device?: Device): Promise<LoginResult>;
  logout(): Promise<void>;
  connect(options?: LiveOptions): Promise<ReadyDetail>;
  close(): void;
  send<Meta = unknown>(conversation_id: Id, body: string, options?: SendOptions<Meta>): Queued<Meta>;
  typing(conversation_id: Id): boolean;
  markRead(conversation_id: Id, message_id: Id): Promise<null>;
  reconnect(): void;
  addEventListener<K extends keyof ParleyClientEventMap>(type: K,
    listener: (ev: ParleyClientEventMap[K]) => void, options?: boolean | AddEventListenerOptions): void;
  addEventListener(type: string, listener: EventListenerOrEventListenerObject | null,
    options?: boolean | AddEventListenerOptions): void;
  removeEventListener<K extends keyof ParleyClientEventMap>(type: K,
    listener: (ev: ParleyClientEventMap[K]) => void, options?: boolean | EventListenerOptions): void;
  removeEventListener(type: string, listener: EventListenerOrEventListenerObject | null,
    options?: boolean | EventListenerOptions): void;
}
