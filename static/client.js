// switchyard browser client: one WebSocket session that survives reconnects.
//
// An ES module with no dependencies. `import { SwitchyardClient } from "/client.js"`,
// or load it with <script type="module" src="/client.js"> and use
// globalThis.SwitchyardClient from any script that runs after it.
//
// What it keeps its promises with (see README, "Browser client"):
// - the session id lives in localStorage and is sent back on every reconnect;
// - every message carries the next `seq` of its session (the server applies only
//   last_seq + 1); a message stays pending until the server's reply names its seq;
//   after any error or reconnect everything pending is resent in order with the SAME
//   seqs, so the server's seq check makes each one count exactly once;
// - any drop reconnects with exponential backoff and full jitter, the first try
//   after a 1001 "going away" (a drain) almost at once;
// - no heartbeat for more than two announced intervals means a dead connection.

/** Canonical UUID text, the only session id form the server accepts. */
const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** Close code the server sends when it drains (and for dead peers). */
const CLOSE_GOING_AWAY = 1001;

/** Close code this client uses when it gives up on a connection (silent, or its session gone). */
const CLOSE_ABANDONED = 4000;

const DEFAULTS = Object.freeze({
  /** WebSocket URL; by default `ws/chat/` next to this module (so `/ws/chat/` for `/client.js`). */
  url: null,
  /** localStorage key: `<prefix>.session_id`. */
  storageKey: "switchyard",
  /** First retry delay cap; doubles each attempt, full jitter: random(0, min(maxMs, baseMs * 2^(n-1))). */
  baseMs: 500,
  maxMs: 30000,
  /** Cap of the first retry after a close 1001 (the server is draining and another is ready). */
  drainRetryMs: 250,
  /** An attempt that has not received its `session` frame by then is abandoned. */
  connectTimeoutMs: 10000,
  /** No heartbeat for more than heartbeatFactor × heartbeat_ms means the connection is dead. */
  heartbeatFactor: 2,
  /** Delay before pending messages are resent after a store error or a seq_gap. */
  resendMs: 250,
  /** Most unacknowledged messages kept; send() throws beyond it. */
  maxPending: 1000,
  /** How long the "is my stored id bad?" HTTP probe may take. */
  probeTimeoutMs: 5000,
});

/** True when `id` is a session id the server would accept (canonical UUID text). */
export function isSessionId(id) {
  return typeof id === "string" && UUID_RE.test(id);
}

/**
 * Delay before reconnect attempt `attempt` (1 for the first try after a drop).
 * Exponential backoff with full jitter; the first try after a drain uses drainRetryMs.
 */
export function backoffDelay(attempt, { baseMs, maxMs, drainRetryMs, afterDrain = false, random = Math.random }) {
  const cap = afterDrain && attempt === 1 ? Math.min(drainRetryMs, maxMs) : Math.min(maxMs, baseMs * 2 ** Math.min(attempt - 1, 30));
  return Math.floor(random() * cap);
}

/** The HTTP URL of a ws:/wss: URL (same host and path), used to probe a refused upgrade. */
export function httpUrlOf(wsUrl) {
  const u = new URL(wsUrl);
  if (u.protocol === "ws:") u.protocol = "http:";
  else if (u.protocol === "wss:") u.protocol = "https:";
  return u;
}

function defaultUrl() {
  const base = typeof import.meta !== "undefined" && import.meta.url && /^https?:/.test(import.meta.url)
    ? import.meta.url
    : globalThis.location && globalThis.location.href;
  if (!base) throw new Error("SwitchyardClient: no `url` given and no page location to derive it from");
  const u = new URL("ws/chat/", base);
  u.protocol = u.protocol === "https:" ? "wss:" : "ws:";
  u.search = "";
  u.hash = "";
  return u.toString();
}

function defaultStorage() {
  try {
    const s = globalThis.localStorage;
    if (s) {
      // Safari's private mode and disabled storage throw on write, not on access.
      s.setItem("switchyard.__probe", "1");
      s.removeItem("switchyard.__probe");
      return s;
    }
  } catch {
    // fall through to memory
  }
  return memoryStorage();
}

/** A Storage-like object kept in memory, used when localStorage is unavailable. */
export function memoryStorage() {
  const m = new Map();
  return {
    getItem: (k) => (m.has(k) ? m.get(k) : null),
    setItem: (k, v) => void m.set(k, String(v)),
    removeItem: (k) => void m.delete(k),
  };
}

/**
 * A session with the switchyard server that outlives its connections.
 *
 * Events (subscribe with `on(type, fn)`; `fn` gets one detail object):
 * - `open`         the WebSocket opened: { url, attempt }
 * - `session`      the session frame: { sessionId, count, lastSeq, resumed, color, heartbeatMs }
 * - `count`        a reply: { count, seq, duplicate }
 * - `heartbeat`    { ts }
 * - `reconnecting` a reconnect is scheduled: { attempt, delayMs, code, reason }
 * - `error`        { code, message, seq? } — server error frames and client-side problems;
 *                  `session_expired` also when a stored session could not be resumed
 * - `close`        the connection ended: { code, reason, wasClean }
 * - `state`        { state } — "idle" | "connecting" | "open" | "reconnecting" | "closed"
 */
export class SwitchyardClient {
  /**
   * @param {object} [options] see DEFAULTS above; for tests also WebSocket, fetch,
   *   storage, random, setTimeout, clearTimeout.
   */
  constructor(options = {}) {
    this.options = { ...DEFAULTS, ...options };
    const o = this.options;
    this._WebSocket = o.WebSocket || globalThis.WebSocket;
    this._fetch = o.fetch || (globalThis.fetch ? globalThis.fetch.bind(globalThis) : null);
    this._storage = o.storage || defaultStorage();
    this._random = o.random || Math.random;
    this._setTimeout = o.setTimeout || globalThis.setTimeout.bind(globalThis);
    this._clearTimeout = o.clearTimeout || globalThis.clearTimeout.bind(globalThis);
    this._keyId = `${o.storageKey}.session_id`;

    this._listeners = new Map();
    /** Unacknowledged messages by seq, in seq order. */
    this._pending = new Map();
    /** The last seq numbered in the current session (from the session frame's last_seq). */
    this._lastSeq = 0;
    this._ws = null;
    this._connectTimer = null;
    this._heartbeatTimer = null;
    this._retryTimer = null;
    this._probedId = null;
    this._afterDrain = false;
    /** Resends pending messages after a store error or a seq_gap. */
    this._resendTimer = null;

    this.state = "idle";
    /** Reconnect attempts since the last session frame. */
    this.attempts = 0;
    this.sessionId = null;
    this.count = null;
    this.color = null;
    this.resumed = null;
    this.heartbeatMs = null;
    this.lastHeartbeat = null;
    /** Messages numbered and acknowledged (counted or duplicate) by this client. */
    this.sent = 0;
    this.acked = 0;

    this._onOnline = () => {
      if (this.state === "reconnecting") this._retryNow();
    };
  }

  /** Subscribe to an event; returns a function that unsubscribes. */
  on(type, fn) {
    if (!this._listeners.has(type)) this._listeners.set(type, new Set());
    this._listeners.get(type).add(fn);
    return () => this.off(type, fn);
  }

  off(type, fn) {
    const set = this._listeners.get(type);
    if (set) set.delete(fn);
  }

  /** Number of messages sent but not yet acknowledged. */
  get pending() {
    return this._pending.size;
  }

  /** The seq of the last message this client numbered in the current session. */
  get lastSeq() {
    return this._lastSeq;
  }

  /** Start connecting (resuming the stored session if there is one). */
  connect() {
    if (this.state !== "idle" && this.state !== "closed") return this;
    if (!this.url) this.url = this.options.url || defaultUrl();
    if (globalThis.addEventListener) globalThis.addEventListener("online", this._onOnline);
    this.attempts = 0;
    this._afterDrain = false;
    this._open();
    return this;
  }

  /** Close for good: no reconnect until connect() is called again. Pending messages are kept. */
  close() {
    if (globalThis.removeEventListener) globalThis.removeEventListener("online", this._onOnline);
    this._clearTimers();
    const ws = this._ws;
    this._detach();
    if (ws) {
      try {
        ws.close(1000, "client closed");
      } catch {
        // already closing
      }
    }
    this._setState("closed");
  }

  /** Forget the stored session: the next connection starts a new one. */
  forgetSession() {
    this._storage.removeItem(this._keyId);
  }

  /**
   * Count one message. It is numbered at once and sent now if the session is open,
   * else after the next reconnect; it stays pending until the server acknowledges it.
   * `data` (a plain object) is sent along; returns the message's seq.
   */
  send(data = {}) {
    if (this._pending.size >= this.options.maxPending) {
      throw new Error(`SwitchyardClient: ${this._pending.size} messages pending, not accepting more`);
    }
    const seq = this._nextSeq();
    const msg = { data, seq };
    this._pending.set(seq, msg);
    this.sent += 1;
    if (this.state === "open") this._transmit(msg);
    return seq;
  }

  // --- internals -------------------------------------------------------------

  _emit(type, detail) {
    const set = this._listeners.get(type);
    if (!set) return;
    for (const fn of [...set]) {
      try {
        fn(detail);
      } catch (err) {
        // A listener's bug must not break the connection logic; surface it anyway.
        queueMicrotask(() => {
          throw err;
        });
      }
    }
  }

  _setState(state) {
    if (this.state === state) return;
    this.state = state;
    this._emit("state", { state });
  }

  _nextSeq() {
    this._lastSeq += 1;
    return this._lastSeq;
  }

  _storedId() {
    const id = this._storage.getItem(this._keyId);
    if (id === null) return null;
    if (isSessionId(id)) return id;
    // Not something the server would accept (it would answer 400): start fresh.
    this.forgetSession();
    this._emit("error", { code: "invalid_session_id", message: "stored session id was not a UUID; starting a new session" });
    return null;
  }

  _open() {
    const id = this._storedId();
    const u = new URL(this.url);
    if (id) u.searchParams.set("session_id", id);
    else u.searchParams.delete("session_id");
    const attempt = this.attempts;
    this._setState("connecting");
    let ws;
    try {
      ws = new this._WebSocket(u.toString());
    } catch (err) {
      this._emit("error", { code: "connect_failed", message: String(err && err.message || err) });
      this._scheduleReconnect({ code: 1006, reason: "connect failed", opened: false, hadSession: false, idUsed: id });
      return;
    }
    this._ws = ws;
    const conn = { ws, opened: false, hadSession: false, idUsed: id };
    this._conn = conn;

    ws.onopen = () => {
      if (this._ws !== ws) return;
      conn.opened = true;
      this._emit("open", { url: u.toString(), attempt });
    };
    ws.onmessage = (ev) => {
      if (this._ws !== ws) return;
      this._onFrame(ev.data);
    };
    ws.onerror = () => {
      // Always followed by close; nothing to decide here.
    };
    ws.onclose = (ev) => {
      if (this._ws !== ws) return;
      this._detach();
      this._clearTimers();
      this._emit("close", { code: ev.code, reason: ev.reason, wasClean: ev.wasClean });
      this._scheduleReconnect({ code: ev.code, reason: ev.reason, ...conn });
    };

    this._connectTimer = this._setTimeout(() => {
      this._connectTimer = null;
      this._abandon("connect_timeout", `no session frame within ${this.options.connectTimeoutMs} ms`);
    }, this.options.connectTimeoutMs);
  }

  /** Give up on the current socket without waiting for a close handshake that may never come. */
  _abandon(code, message) {
    const ws = this._ws;
    if (!ws) return;
    const conn = this._conn;
    this._detach();
    this._clearTimers();
    try {
      ws.close(CLOSE_ABANDONED, code);
    } catch {
      // already closing
    }
    this._emit("error", { code, message });
    this._emit("close", { code: 1006, reason: code, wasClean: false });
    this._scheduleReconnect({ code: 1006, reason: code, ...conn });
  }

  _detach() {
    const ws = this._ws;
    if (!ws) return;
    ws.onopen = ws.onmessage = ws.onerror = ws.onclose = null;
    this._ws = null;
    this._conn = null;
  }

  _clearTimers() {
    for (const t of ["_connectTimer", "_heartbeatTimer", "_retryTimer", "_resendTimer"]) {
      if (this[t] !== null) this._clearTimeout(this[t]);
      this[t] = null;
    }
  }

  _armHeartbeat() {
    if (this._heartbeatTimer !== null) this._clearTimeout(this._heartbeatTimer);
    this._heartbeatTimer = null;
    if (!(this.heartbeatMs > 0)) return;
    const limit = this.heartbeatMs * this.options.heartbeatFactor;
    this._heartbeatTimer = this._setTimeout(() => {
      this._heartbeatTimer = null;
      this._abandon("heartbeat_timeout", `no heartbeat for ${limit} ms`);
    }, limit);
  }

  async _scheduleReconnect({ code, reason, opened, hadSession, idUsed }) {
    if (this.state === "closed") return;
    this._setState("reconnecting");
    if (hadSession) {
      // attempts was reset by the session frame; a drain's first retry may go at once.
      this._afterDrain = code === CLOSE_GOING_AWAY;
    } else if (!opened && idUsed && this._probedId !== idUsed) {
      // The browser hides the HTTP status of a refused upgrade. Ask once per id with a
      // plain GET: the server checks session_id before anything else and answers
      // 400 {"code":"invalid_session_id"} for an id it will never accept.
      this._probedId = idUsed;
      await this._probe(idUsed);
      if (this.state !== "reconnecting" || this._retryTimer !== null) return;
    }
    this.attempts += 1;
    const delayMs = backoffDelay(this.attempts, { ...this.options, afterDrain: this._afterDrain, random: this._random });
    this._emit("reconnecting", { attempt: this.attempts, delayMs, code, reason });
    this._retryTimer = this._setTimeout(() => {
      this._retryTimer = null;
      this._open();
    }, delayMs);
  }

  _retryNow() {
    if (this._retryTimer === null) return;
    this._clearTimeout(this._retryTimer);
    this._retryTimer = null;
    this._open();
  }

  async _probe(id) {
    if (!this._fetch) return;
    const u = httpUrlOf(this.url);
    u.searchParams.set("session_id", id);
    const ctrl = typeof AbortController === "function" ? new AbortController() : null;
    const timer = ctrl ? this._setTimeout(() => ctrl.abort(), this.options.probeTimeoutMs) : null;
    try {
      const res = await this._fetch(u.toString(), { cache: "no-store", signal: ctrl && ctrl.signal });
      if (res.status !== 400) return;
      const body = await res.json().catch(() => null);
      if (body && body.code === "invalid_session_id" && this._storage.getItem(this._keyId) === id) {
        this.forgetSession();
        this._emit("error", { code: "invalid_session_id", message: "server refused the stored session id; starting a new session" });
      }
    } catch {
      // Unreachable server or timeout: nothing learned, keep the id.
    } finally {
      if (timer !== null) this._clearTimeout(timer);
    }
  }

  _onFrame(text) {
    let frame;
    try {
      frame = JSON.parse(text);
    } catch {
      this._emit("error", { code: "bad_frame", message: "server frame was not JSON" });
      return;
    }
    switch (frame && frame.type) {
      case "session":
        return this._onSession(frame);
      case "count":
        return this._onCount(frame);
      case "heartbeat":
        this.lastHeartbeat = frame.ts;
        this._armHeartbeat();
        return this._emit("heartbeat", { ts: frame.ts });
      case "error":
        return this._onError(frame);
      default:
        // Unknown frame types are ignored: newer servers may add some.
        return undefined;
    }
  }

  _onSession(frame) {
    if (this._connectTimer !== null) this._clearTimeout(this._connectTimer);
    this._connectTimer = null;
    if (this._conn) this._conn.hadSession = true;
    const previous = this._storage.getItem(this._keyId);
    if (frame.resumed && previous === frame.session_id) {
      // Everything up to last_seq was applied: those pending messages are acknowledged.
      this._ackThrough(frame.last_seq);
      this._lastSeq = Math.max(frame.last_seq, this._lastSeq);
    } else {
      if (previous !== null) {
        this._emit("error", { code: "session_expired", message: "the stored session is gone; starting over in a new session" });
      }
      // A new session starts at last_seq 0: number the still-pending messages afresh so
      // they count in it (knowingly: whether they counted in the lost session is unknown).
      this._lastSeq = 0;
      const msgs = [...this._pending.values()];
      this._pending.clear();
      for (const m of msgs) {
        m.seq = this._nextSeq();
        this._pending.set(m.seq, m);
      }
    }
    this._storage.setItem(this._keyId, frame.session_id);
    this._probedId = null;
    this._afterDrain = false;
    this.attempts = 0;
    this.sessionId = frame.session_id;
    this.count = frame.count;
    this.color = frame.color;
    this.resumed = !!frame.resumed;
    this.heartbeatMs = frame.heartbeat_ms;
    this._setState("open");
    this._armHeartbeat();
    this._emit("session", {
      sessionId: frame.session_id,
      count: frame.count,
      lastSeq: frame.last_seq,
      resumed: this.resumed,
      color: frame.color,
      heartbeatMs: frame.heartbeat_ms,
    });
    // Resend what was never acknowledged, oldest first, same seqs: the server counts each once.
    this._resendAll();
  }

  _onCount(frame) {
    this.count = frame.count;
    // Gapless seqs: a reply for seq S means every seq up to S was applied.
    if (typeof frame.seq === "number") this._ackThrough(frame.seq);
    this._emit("count", { count: frame.count, seq: frame.seq, duplicate: !!frame.duplicate });
  }

  _onError(frame) {
    const msg = typeof frame.seq === "number" ? this._pending.get(frame.seq) : undefined;
    switch (frame.code) {
      case "store_unavailable": // certainly not counted
      case "outcome_unknown": // maybe counted: the same seq is answered as a duplicate if so
        this._scheduleResend();
        break;
      case "seq_gap":
        // Everything before `expected` was applied; resend from there.
        if (typeof frame.expected === "number") this._ackThrough(frame.expected - 1);
        this._scheduleResend();
        break;
      case "session_expired":
        // The session is gone: start over knowingly in a new one (pending messages are kept
        // and numbered for it).
        this.forgetSession();
        this._abandon("session_expired", "the session is gone; starting over in a new session");
        return;
      default:
        // The server will never accept this message (e.g. invalid_seq): drop it.
        if (msg) this._pending.delete(msg.seq);
    }
    this._emit("error", { code: frame.code, message: frame.message || frame.code, seq: frame.seq });
  }

  /** Acknowledge every pending message up to and including `seq` (the server applied them). */
  _ackThrough(seq) {
    for (const s of [...this._pending.keys()]) {
      if (s <= seq) {
        this._pending.delete(s);
        this.acked += 1;
      }
    }
  }

  /** After a short delay, resend everything pending in order with the same seqs. */
  _scheduleResend() {
    if (this._resendTimer !== null) return;
    this._resendTimer = this._setTimeout(() => {
      this._resendTimer = null;
      if (this.state === "open") this._resendAll(); // else the reconnect resends them
    }, this.options.resendMs);
  }

  _resendAll() {
    for (const m of this._pending.values()) this._transmit(m);
  }

  _transmit(msg) {
    const ws = this._ws;
    if (!ws) return;
    try {
      ws.send(JSON.stringify({ ...msg.data, seq: msg.seq }));
    } catch {
      // The socket is going away; the message stays pending and is resent after reconnect.
    }
  }
}

export default SwitchyardClient;
globalThis.SwitchyardClient = SwitchyardClient;
