// storage.js: where the library keeps what must outlive a page or a process
// (the session, each device's cursor, the outbox).
//
// Any object with getItem, setItem and removeItem (the Web Storage API) will
// do: localStorage in browsers, MemoryStorage (below) in Node, or an app's own
// adapter over a file or a database.

/** A Web Storage lookalike held in memory: nothing survives the process. */
export class MemoryStorage {
  constructor() { this.map = new Map(); }
  getItem(key) { return this.map.has(key) ? this.map.get(key) : null; }
  setItem(key, value) { this.map.set(key, String(value)); }
  removeItem(key) { this.map.delete(key); }
  clear() { this.map.clear(); }
  get length() { return this.map.size; }
  key(i) { return [...this.map.keys()][i] ?? null; }
}

/** localStorage when this runtime has a usable one, else a MemoryStorage. */
export function defaultStorage() {
  try {
    const s = globalThis.localStorage;
    if (s && typeof s.getItem === 'function') return s;
  } catch { /* a browser that refuses storage (privacy settings) */ }
  return new MemoryStorage();
}

/** The JSON stored under key, or fallback when absent or unreadable. */
export function readJson(storage, key, fallback) {
  try {
    const v = storage.getItem(key);
    return v === null || v === undefined ? fallback : JSON.parse(v);
  } catch {
    return fallback;
  }
}

/** Stores value as JSON under key; a full or refusing storage is ignored. */
export function writeJson(storage, key, value) {
  try { storage.setItem(key, JSON.stringify(value)); } catch { /* full */ }
}

/** A fresh client_msg_id: 32 hex digits from the runtime's CSPRNG. */
export function newClientMsgId() {
  // getRandomValues works on plain-HTTP pages too, where randomUUID does not.
  const b = new Uint8Array(16);
  globalThis.crypto.getRandomValues(b);
  return Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
}
