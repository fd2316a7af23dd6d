// Unit tests of static/client.js on its own: backoff, seq numbering and resend,
// heartbeat watchdog, stored-id handling. A fake WebSocket, a fake clock and a small
// fake server stand in for the browser and switchyard. Run: node --test client.test.mjs
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";

import { SwitchyardClient, backoffDelay, httpUrlOf, isSessionId, memoryStorage } from "../../static/client.js";

/** The golden frames: protocol v1 written once (tests/golden/frames.json). */
const GOLDEN = JSON.parse(readFileSync(new URL("../golden/frames.json", import.meta.url), "utf8"));

/** `value` with each placeholder ("<uuid>", "<ts>") replaced by the fixture's example of it. */
function example(value) {
  if (typeof value === "string") return GOLDEN.placeholders[value]?.example ?? value;
  if (Array.isArray(value)) return value.map(example);
  if (value && typeof value === "object") return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, example(v)]));
  return value;
}

/** The golden refusal body for `code`. */
function refusal(code) {
  const shown = GOLDEN.refusals.find((r) => r.code === code);
  assert.ok(shown, `frames.json shows the ${code} refusal`);
  return shown;
}

const URL_WS = "ws://127.0.0.1:9/ws/chat/";
const ID_A = "0b6e4c2a-3f4d-4e5f-8a9b-0c1d2e3f4a5b";
const ID_B = "7d1c0f6e-2a3b-4c5d-9e8f-102132435465";

/** Timers that run only when the test advances time. */
class FakeClock {
  constructor() {
    this.now = 0;
    this.timers = new Map();
    this.nextId = 1;
    this.setTimeout = (fn, ms) => {
      const id = this.nextId++;
      this.timers.set(id, { at: this.now + Math.max(0, ms), fn });
      return id;
    };
    this.clearTimeout = (id) => void this.timers.delete(id);
  }

  /** Run every timer due within `ms`, in time order, then settle promises. */
  async advance(ms) {
    const end = this.now + ms;
    for (;;) {
      let next = null;
      for (const [id, t] of this.timers) if (t.at <= end && (!next || t.at < next[1].at)) next = [id, t];
      if (!next) break;
      this.timers.delete(next[0]);
      this.now = next[1].at;
      next[1].fn();
      await settle();
    }
    this.now = end;
    await settle();
  }

  /** Delays of pending timers, soonest first. */
  pending() {
    return [...this.timers.values()].map((t) => t.at - this.now).sort((a, b) => a - b);
  }
}

const settle = () => new Promise((resolve) => setImmediate(resolve));

/** A WebSocket double: records what the client does, lets the test play the server. */
class FakeSocket {
  static all = [];
  constructor(url) {
    this.url = url;
    this.sent = [];
    this.closed = null;
    this.onopen = this.onmessage = this.onerror = this.onclose = null;
    FakeSocket.all.push(this);
  }
  static last() {
    return FakeSocket.all[FakeSocket.all.length - 1];
  }
  send(data) {
    if (this.closed) throw new Error("socket closed");
    this.sent.push(JSON.parse(data));
  }
  close(code, reason) {
    this.closed = { code, reason };
  }
  // --- server side ---
  open() {
    this.onopen && this.onopen({});
  }
  receive(frame) {
    this.onmessage && this.onmessage({ data: JSON.stringify(frame) });
  }
  drop(code = 1006, reason = "") {
    this.closed = this.closed || { code, reason };
    this.onclose && this.onclose({ code, reason, wasClean: code !== 1006 });
  }
  get sessionId() {
    return new URL(this.url).searchParams.get("session_id");
  }
}

function makeClient(extra = {}) {
  FakeSocket.all = [];
  const clock = new FakeClock();
  const storage = extra.storage || memoryStorage();
  const events = [];
  const client = new SwitchyardClient({
    url: URL_WS,
    WebSocket: FakeSocket,
    storage,
    random: () => 0.5,
    setTimeout: clock.setTimeout,
    clearTimeout: clock.clearTimeout,
    fetch: async () => {
      throw new Error("no fetch expected");
    },
    ...extra,
  });
  for (const type of ["open", "session", "count", "heartbeat", "reconnecting", "error", "close", "state"]) {
    client.on(type, (detail) => events.push({ type, ...detail }));
  }
  return { client, clock, storage, events };
}

function session(ws, { id = ID_A, count = 0, lastSeq = count, resumed = false, heartbeatMs = 1000 } = {}) {
  ws.open();
  ws.receive({ type: "session", session_id: id, count, last_seq: lastSeq, resumed, color: "blue", heartbeat_ms: heartbeatMs });
}

// --- backoff ----------------------------------------------------------------------

test("backoff grows exponentially with full jitter and stops at the cap", () => {
  const opts = { baseMs: 500, maxMs: 30000, drainRetryMs: 250 };
  const top = () => 0.999999;
  assert.deepEqual(
    [1, 2, 3, 4, 5, 6, 7, 8, 20, 1000].map((n) => backoffDelay(n, { ...opts, random: top })),
    [499, 999, 1999, 3999, 7999, 15999, 29999, 29999, 29999, 29999],
  );
  for (let n = 1; n < 12; n++) assert.equal(backoffDelay(n, { ...opts, random: () => 0 }), 0, "full jitter starts at 0");
});

test("the first retry after a drain is fast, later ones back off as usual", () => {
  const opts = { baseMs: 500, maxMs: 30000, drainRetryMs: 250, afterDrain: true, random: () => 0.999999 };
  assert.equal(backoffDelay(1, opts), 249);
  assert.equal(backoffDelay(2, opts), 999);
});

test("a dropped connection is retried with growing delays until a session frame resets them", async () => {
  const { client, clock, events } = makeClient({ random: () => 0.999999 });
  client.connect();
  session(FakeSocket.last());
  FakeSocket.last().drop(1006);
  const delays = [];
  for (let i = 0; i < 4; i++) {
    delays.push(clock.pending()[0]);
    await clock.advance(clock.pending()[0]);
    // the new attempt fails before opening; the probe of the stored id learns nothing
    FakeSocket.last().drop(1006);
    await settle();
  }
  assert.deepEqual(delays, [499, 999, 1999, 3999]);
  assert.equal(client.attempts, 5);
  await clock.advance(clock.pending()[0]);
  session(FakeSocket.last(), { resumed: true });
  assert.equal(client.attempts, 0);
  assert.equal(client.state, "open");
  const reconnecting = events.filter((e) => e.type === "reconnecting").map((e) => e.attempt);
  assert.deepEqual(reconnecting, [1, 2, 3, 4, 5]);
});

test("close 1001 (drain) reconnects almost at once and resumes the stored session", async () => {
  const { client, clock, events } = makeClient({ random: () => 0.999999 });
  client.connect();
  session(FakeSocket.last(), { id: ID_A });
  FakeSocket.last().drop(1001, "draining");
  assert.equal(client.state, "reconnecting");
  assert.deepEqual(clock.pending(), [249]);
  await clock.advance(249);
  assert.equal(FakeSocket.all.length, 2);
  assert.equal(FakeSocket.last().sessionId, ID_A);
  session(FakeSocket.last(), { id: ID_A, resumed: true, count: 3 });
  assert.equal(client.resumed, true);
  assert.equal(client.count, 3);
  assert.deepEqual(events.find((e) => e.type === "reconnecting"), {
    type: "reconnecting", attempt: 1, delayMs: 249, code: 1001, reason: "draining",
  });
});

test("close() stops reconnecting", async () => {
  const { client, clock } = makeClient();
  client.connect();
  session(FakeSocket.last());
  client.close();
  assert.equal(FakeSocket.last().closed.code, 1000);
  await clock.advance(60000);
  assert.equal(FakeSocket.all.length, 1);
  assert.equal(client.state, "closed");
});

// --- seq and resend ----------------------------------------------------------------

test("messages are numbered from 1 and acknowledged by the seq the server echoes", () => {
  const { client } = makeClient();
  client.connect();
  const ws = FakeSocket.last();
  session(ws);
  assert.deepEqual([client.send(), client.send({ text: "x" })], [1, 2]);
  assert.deepEqual(ws.sent, [{ seq: 1 }, { text: "x", seq: 2 }]);
  assert.equal(client.pending, 2);
  ws.receive({ type: "count", count: 1, seq: 1 });
  assert.equal(client.pending, 1);
  assert.equal(client.count, 1);
});

test("unacknowledged messages are resent in order with the same seq after a reconnect", async () => {
  const { client, clock, events } = makeClient();
  client.connect();
  let ws = FakeSocket.last();
  session(ws, { id: ID_A });
  client.send();
  client.send();
  client.send();
  ws.receive({ type: "count", count: 1, seq: 1 });
  ws.drop(1001, "draining");
  client.send(); // while disconnected: queued
  assert.equal(client.pending, 3);
  await clock.advance(1000);
  ws = FakeSocket.last();
  assert.deepEqual(ws.sent, [], "nothing is sent before the session frame");
  // the old connection's seq 2 was still in flight when the resume read last_seq 1; it
  // lands later, so the resent 2 is answered as a duplicate
  session(ws, { id: ID_A, resumed: true, count: 2, lastSeq: 1 });
  assert.deepEqual(ws.sent.map((m) => m.seq), [2, 3, 4]);
  ws.receive({ type: "count", count: 2, seq: 2, duplicate: true });
  ws.receive({ type: "count", count: 3, seq: 3 });
  ws.receive({ type: "count", count: 4, seq: 4 });
  assert.equal(client.pending, 0);
  assert.equal(client.count, 4);
  assert.ok(events.some((e) => e.type === "count" && e.seq === 2 && e.duplicate));
});

test("a resumed session acknowledges pending messages up to its last_seq and resends the rest", async () => {
  const { client, clock } = makeClient();
  client.connect();
  let ws = FakeSocket.last();
  session(ws, { id: ID_A });
  client.send();
  client.send();
  client.send();
  ws.drop(1006); // seqs 1 and 2 were applied, their replies lost
  await clock.advance(1000);
  ws = FakeSocket.last();
  session(ws, { id: ID_A, resumed: true, count: 2, lastSeq: 2 });
  assert.deepEqual(ws.sent.map((m) => m.seq), [3]);
  assert.equal(client.pending, 1);
  assert.equal(client.acked, 2);
  assert.equal(client.send(), 4);
});

test("a new session (stored one expired) says so and numbers pending messages afresh from 1", async () => {
  const storage = memoryStorage();
  storage.setItem("switchyard.session_id", ID_A);
  const { client, clock, events } = makeClient({ storage });
  client.connect();
  let ws = FakeSocket.last();
  assert.equal(ws.sessionId, ID_A);
  session(ws, { id: ID_A, resumed: true, count: 41 });
  assert.equal(client.send(), 42, "seq continues from the session's last_seq");
  ws.drop(1006);
  await clock.advance(1000);
  ws = FakeSocket.last();
  session(ws, { id: ID_B, resumed: false, count: 0 });
  assert.deepEqual(ws.sent, [{ seq: 1 }]);
  assert.equal(storage.getItem("switchyard.session_id"), ID_B);
  assert.ok(events.some((e) => e.type === "error" && e.code === "session_expired"));
});

test("the seq continues after a page reload from the session frame's last_seq", () => {
  const storage = memoryStorage();
  const first = makeClient({ storage });
  first.client.connect();
  session(FakeSocket.last(), { id: ID_A });
  first.client.send();
  first.client.send();
  first.client.close();
  const second = makeClient({ storage });
  second.client.connect();
  assert.equal(FakeSocket.last().sessionId, ID_A);
  session(FakeSocket.last(), { id: ID_A, resumed: true, count: 2 });
  assert.equal(second.client.send(), 3);
});

for (const code of ["store_unavailable", "outcome_unknown"]) {
  test(`${code} makes the client resend everything pending in order with the same seqs`, async () => {
    const { client, clock } = makeClient();
    client.connect();
    const ws = FakeSocket.last();
    session(ws);
    client.send(); // seq 1: the store fails
    client.send(); // seq 2, pipelined: refused as a gap
    ws.receive({ type: "error", code, seq: 1 });
    ws.receive({ type: "error", code: "seq_gap", seq: 2, expected: 1 });
    await clock.advance(1000);
    assert.deepEqual(ws.sent.map((m) => m.seq), [1, 2, 1, 2], "one resend, same seqs, in order");
    ws.receive({ type: "count", count: 1, seq: 1, ...(code === "outcome_unknown" && { duplicate: true }) });
    ws.receive({ type: "count", count: 2, seq: 2 });
    assert.equal(client.pending, 0);
    assert.equal(client.count, 2);
  });
}

test("seq_gap acknowledges what was applied before the expected seq", async () => {
  const { client, clock } = makeClient();
  client.connect();
  const ws = FakeSocket.last();
  session(ws);
  client.send();
  client.send();
  client.send();
  ws.receive({ type: "error", code: "seq_gap", seq: 3, expected: 3 });
  assert.equal(client.pending, 1);
  await clock.advance(1000);
  assert.deepEqual(ws.sent.map((m) => m.seq), [1, 2, 3, 3]);
});

test("session_expired forgets the session and starts over knowingly in a new one", async () => {
  const { client, clock, storage, events } = makeClient();
  client.connect();
  let ws = FakeSocket.last();
  session(ws, { id: ID_A });
  client.send();
  ws.receive({ type: "error", code: "session_expired", seq: 1 });
  assert.ok(events.some((e) => e.type === "error" && e.code === "session_expired"));
  assert.equal(storage.getItem("switchyard.session_id"), null);
  await clock.advance(1000);
  ws = FakeSocket.last();
  assert.equal(ws.sessionId, null, "no id: a new session");
  session(ws, { id: ID_B });
  assert.deepEqual(ws.sent, [{ seq: 1 }]);
});

/**
 * A server that keeps switchyard's rules (count each seq once, per session) and can
 * lose a connection between applying a message and replying to it.
 */
class FakeServer {
  constructor() {
    this.sessions = new Map();
    this.nextId = 0;
  }
  accept(ws) {
    let id = ws.sessionId;
    let resumed = this.sessions.has(id);
    if (!resumed) {
      id = `00000000-0000-4000-8000-${String(++this.nextId).padStart(12, "0")}`;
      this.sessions.set(id, { count: 0, lastSeq: 0 });
    }
    ws.serverSession = id;
    const s = this.sessions.get(id);
    session(ws, { id, resumed, count: s.count, lastSeq: s.lastSeq });
  }
  /**
   * Apply what the client sent since last time (gapless: only last_seq + 1); reply unless
   * `loseRepliesAfter` says to drop; `fail(i)` makes the store fail for frame i: "unavailable"
   * (not applied) or "unknown" (applied, but the reply says outcome_unknown).
   */
  process(ws, { loseRepliesAfter = Infinity, fail = () => null } = {}) {
    const s = this.sessions.get(ws.serverSession);
    const frames = ws.sent.splice(0);
    frames.forEach((f, i) => {
      const failure = fail(i);
      let reply;
      if (failure === "unavailable") {
        reply = { type: "error", code: "store_unavailable", seq: f.seq };
      } else if (f.seq > s.lastSeq + 1) {
        reply = { type: "error", code: "seq_gap", seq: f.seq, expected: s.lastSeq + 1 };
      } else {
        const duplicate = f.seq <= s.lastSeq;
        if (!duplicate) {
          s.count += 1;
          s.lastSeq = f.seq;
        }
        reply = failure === "unknown"
          ? { type: "error", code: "outcome_unknown", seq: f.seq }
          : { type: "count", count: s.count, seq: f.seq, ...(duplicate && { duplicate }) };
      }
      if (i < loseRepliesAfter) ws.receive(reply);
    });
  }
}

test("every message counts exactly once across store failures and drops that lose replies", async () => {
  let seed = 7;
  const rand = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
  const { client, clock } = makeClient({ random: rand });
  const server = new FakeServer();
  client.connect();
  server.accept(FakeSocket.last());
  let sent = 0;
  for (let round = 0; round < 200; round++) {
    const n = Math.floor(rand() * 5);
    for (let i = 0; i < n; i++, sent++) client.send();
    const ws = FakeSocket.last();
    if (client.state === "open") {
      // the server applies everything it read, then (sometimes) the connection dies
      // before some replies reach the client
      const dies = rand() < 0.3;
      const failing = rand() < 0.3;
      const fail = () => (failing && rand() < 0.4 ? (rand() < 0.5 ? "unavailable" : "unknown") : null);
      server.process(ws, { loseRepliesAfter: dies ? Math.floor(rand() * 3) : Infinity, fail });
      if (dies) ws.drop(rand() < 0.5 ? 1001 : 1006);
      else await clock.advance(rand() < 0.5 ? 300 : 0); // sometimes let the resend fire
    } else {
      await clock.advance(clock.pending()[0] ?? 0);
      const next = FakeSocket.last();
      if (next !== ws && !next.closed) {
        if (rand() < 0.2) next.drop(1006); // the next server is not up yet
        else server.accept(next);
      }
    }
  }
  while (client.state !== "open") {
    await clock.advance(clock.pending()[0] ?? 0);
    if (!FakeSocket.last().serverSession) server.accept(FakeSocket.last());
  }
  server.process(FakeSocket.last());
  assert.equal(server.sessions.size, 1, "one session throughout");
  assert.ok(sent > 100);
  assert.equal(client.pending, 0);
  assert.equal([...server.sessions.values()][0].count, sent);
  assert.equal(client.count, sent);
});

// --- heartbeat watchdog and connect timeout ---------------------------------------

test("no heartbeat for over two intervals is a dead connection", async () => {
  const { client, clock, events } = makeClient();
  client.connect();
  const ws = FakeSocket.last();
  session(ws, { heartbeatMs: 1000 });
  await clock.advance(1500);
  ws.receive({ type: "heartbeat", ts: "2026-11-22T13:00:00.000Z" });
  await clock.advance(1999);
  assert.equal(client.state, "open", "1.999 s after the last heartbeat is still alive");
  assert.equal(client.lastHeartbeat, "2026-11-22T13:00:00.000Z");
  await clock.advance(1);
  assert.equal(client.state, "reconnecting");
  assert.equal(ws.closed.code, 4000);
  assert.ok(events.some((e) => e.type === "error" && e.code === "heartbeat_timeout"));
  await clock.advance(1000);
  assert.equal(FakeSocket.all.length, 2, "a new connection was opened");
});

test("an attempt that gets no session frame in time is abandoned", async () => {
  const { client, clock, events } = makeClient({ connectTimeoutMs: 3000 });
  client.connect();
  await clock.advance(3000);
  assert.equal(client.state, "reconnecting");
  assert.ok(events.some((e) => e.type === "error" && e.code === "connect_timeout"));
});

// --- stored session id ----------------------------------------------------------------

test("a stored id that is not a UUID is dropped before connecting", () => {
  const storage = memoryStorage();
  storage.setItem("switchyard.session_id", "not-a-uuid");
  const { client, events } = makeClient({ storage });
  client.connect();
  assert.equal(FakeSocket.last().sessionId, null);
  assert.equal(storage.getItem("switchyard.session_id"), null);
  assert.ok(events.some((e) => e.type === "error" && e.code === "invalid_session_id"));
});

test("an upgrade refused with 400 invalid_session_id makes the client start fresh", async () => {
  const storage = memoryStorage();
  storage.setItem("switchyard.session_id", ID_A);
  const probes = [];
  const fetch = async (url) => {
    probes.push(url);
    const { status, body } = refusal("invalid_session_id");
    return { status, json: async () => body };
  };
  const { client, clock } = makeClient({ storage, fetch });
  client.connect();
  FakeSocket.last().drop(1006); // refused before open
  await settle();
  assert.deepEqual(probes, [`http://127.0.0.1:9/ws/chat/?session_id=${ID_A}`]);
  assert.equal(storage.getItem("switchyard.session_id"), null);
  await clock.advance(1000);
  assert.equal(FakeSocket.last().sessionId, null, "the next attempt carries no id");
});

test("an upgrade refused for another reason (drain, 503) keeps the id and probes only once", async () => {
  const storage = memoryStorage();
  storage.setItem("switchyard.session_id", ID_A);
  let probes = 0;
  const fetch = async () => {
    probes += 1;
    const { status, body } = refusal("draining");
    return { status, json: async () => body };
  };
  const { client, clock } = makeClient({ storage, fetch });
  client.connect();
  for (let i = 0; i < 3; i++) {
    FakeSocket.last().drop(1006);
    await clock.advance(clock.pending()[0]);
  }
  assert.equal(probes, 1);
  assert.equal(FakeSocket.last().sessionId, ID_A);
  assert.equal(storage.getItem("switchyard.session_id"), ID_A);
  // a fetch that fails outright also keeps the id
  assert.equal(client.state, "connecting");
});

test("helpers: UUID check and the HTTP URL of a WebSocket URL", () => {
  assert.ok(isSessionId(ID_A));
  assert.ok(isSessionId(ID_A.toUpperCase()));
  for (const bad of ["", "x", `${ID_A}0`, `{${ID_A}}`, ID_A.replaceAll("-", ""), null, 7]) assert.ok(!isSessionId(bad), String(bad));
  assert.equal(httpUrlOf("wss://h.example/blue/ws/chat/").toString(), "https://h.example/blue/ws/chat/");
  assert.equal(httpUrlOf("ws://127.0.0.1:8080/ws/chat/").toString(), "http://127.0.0.1:8080/ws/chat/");
});

// --- the golden frames ---------------------------------------------------------------------

test("the golden conversation's session and count frames set what the client shows", async () => {
  const { client, clock, events } = makeClient();
  client.connect();
  for (const step of GOLDEN.conversation) {
    const frame = example(step.server);
    if (step.connect === "resume") {
      FakeSocket.last().drop(1006);
      await clock.advance(clock.pending()[0]);
      assert.equal(FakeSocket.last().sessionId, frame.session_id, `${step.name}: resumes with the stored id`);
    }
    const ws = FakeSocket.last();
    if (step.connect) ws.open();
    events.length = 0;
    ws.receive(frame);
    if (frame.type !== "error") assert.equal(client.count, frame.count, step.name);
    if (frame.type === "session") {
      assert.equal(client.state, "open", step.name);
      assert.deepEqual(
        [client.sessionId, client.lastSeq, client.resumed, client.color, client.heartbeatMs],
        [frame.session_id, frame.last_seq, frame.resumed, frame.color, frame.heartbeat_ms],
        step.name,
      );
    } else if (frame.type === "count") {
      assert.deepEqual(events.find((e) => e.type === "count"), { type: "count", count: frame.count, seq: frame.seq, duplicate: !!frame.duplicate }, step.name);
    }
  }
});

/** What a client keeping the resend rule does with each golden frame that names a seq. */
const ACTIONS = {
  ack: ({ client, ws, frame, sent }) => {
    assert.equal(client.pending, 0, "every seq up to the reply's is acknowledged");
    assert.equal(ws.sent.length, sent, "nothing resent");
    assert.equal(client.count, frame.count);
  },
  resend: ({ ws, frame, sent }) => {
    assert.deepEqual(ws.sent.slice(sent).map((m) => m.seq), seqsFrom(1, frame.seq), "everything pending again, same seqs");
  },
  resend_from_expected: ({ client, ws, frame, sent }) => {
    assert.equal(client.pending, frame.seq - frame.expected + 1, "what came before `expected` is acknowledged");
    assert.deepEqual(ws.sent.slice(sent).map((m) => m.seq), seqsFrom(frame.expected, frame.seq));
  },
  start_over: ({ client, ws, storage }) => {
    assert.equal(storage.getItem("switchyard.session_id"), null, "the session is forgotten");
    assert.equal(ws.closed && ws.closed.code, 4000, "the connection is abandoned");
    assert.equal(FakeSocket.last().sessionId, null, "the next connection starts a new session");
    assert.equal(client.state, "connecting");
  },
  report: ({ client, ws, sent }) => {
    assert.equal(ws.sent.length, sent, "nothing resent: the frame itself was unusable");
    assert.equal(client.state, "open");
  },
};

const seqsFrom = (first, last) => Array.from({ length: last - first + 1 }, (_, i) => first + i);

for (const step of [...GOLDEN.conversation, ...GOLDEN.store_failures].filter((s) => s.client_action)) {
  test(`golden: ${step.name} → the client does ${step.client_action}`, async () => {
    const act = ACTIONS[step.client_action];
    assert.ok(act, `frames.json names an action the client has no check for: ${step.client_action}`);
    const frame = example(step.server);
    const { client, clock, storage, events } = makeClient();
    client.connect();
    const ws = FakeSocket.last();
    session(ws, { id: example("<uuid>") });
    for (let i = 0; i < Math.max(frame.seq ?? 1, 1); i++) client.send();
    const sent = ws.sent.length;
    ws.receive(frame);
    if (frame.type === "error") {
      assert.ok(events.some((e) => e.type === "error" && e.code === frame.code), `the client reports ${frame.code}`);
    }
    await clock.advance(client.options.resendMs + 1);
    act({ client, ws, frame, sent, storage });
  });
}

test("the golden heartbeat is taken as a heartbeat", () => {
  const { client, events } = makeClient();
  client.connect();
  const ws = FakeSocket.last();
  session(ws);
  const frame = example(GOLDEN.heartbeat);
  ws.receive(frame);
  assert.equal(client.lastHeartbeat, frame.ts);
  assert.ok(events.some((e) => e.type === "heartbeat" && e.ts === frame.ts));
});

test("the golden 1001 closes make the first retry almost at once, the others back off", async () => {
  for (const close of GOLDEN.close) {
    const { client, clock, events } = makeClient({ random: () => 0.999 });
    client.connect();
    session(FakeSocket.last());
    FakeSocket.last().drop(close.code, close.reason);
    await clock.advance(0);
    const { delayMs, reason } = events.find((e) => e.type === "reconnecting");
    assert.equal(reason, close.reason);
    assert.ok(close.code === 1001 ? delayMs < client.options.drainRetryMs : delayMs >= client.options.drainRetryMs, `${close.code} ${close.reason}: ${delayMs} ms`);
  }
});
