// Steady chat load: each iteration opens a session, sends MESSAGES numbered messages one at a
// time, and checks every reply (seq echoed, count equal to the seq: each counted exactly once).
// After store_unavailable or outcome_unknown the same seq is resent (a repeat of one that was
// counted comes back as a duplicate).
// k6 run -e BASE_URL=ws://127.0.0.1:8000 -e VUS=50 -e DURATION=30s loadtest/k6/chat.js
import ws from "k6/ws";
import { check } from "k6";
import { Counter, Trend } from "k6/metrics";

const BASE_URL = __ENV.BASE_URL || "ws://127.0.0.1:8000";
const MESSAGES = Number(__ENV.MESSAGES || 50);
const roundTrip = new Trend("message_round_trip", true);
const storeErrors = new Counter("store_errors");
const RESEND_MS = 100;

export const options = {
  vus: Number(__ENV.VUS || 10),
  duration: __ENV.DURATION || "10s",
  thresholds: {
    checks: ["rate==1"],
    message_round_trip: [`p(99)<${__ENV.P99_MS || 50}`],
  },
};

export default function () {
  const res = ws.connect(`${BASE_URL}/ws/chat/`, {}, (socket) => {
    let seq = 0;
    let sentAt = 0;
    let maybeCounted = false;
    const transmit = () => {
      sentAt = Date.now();
      socket.send(JSON.stringify({ seq }));
    };
    const send = () => {
      seq += 1;
      maybeCounted = false;
      transmit();
    };
    socket.on("message", (data) => {
      const frame = JSON.parse(data);
      if (frame.type === "session") {
        check(frame, {
          "session frame names a new session": (f) => typeof f.session_id === "string" && f.resumed === false && f.count === 0,
        });
        send();
      } else if (frame.type === "count") {
        roundTrip.add(Date.now() - sentAt);
        check(frame, {
          "reply echoes seq": (f) => f.seq === seq,
          "counted exactly once": (f) => f.count === seq && (!f.duplicate || maybeCounted),
        });
        if (seq < MESSAGES) send();
        else socket.close();
      } else if (frame.type === "error" && (frame.code === "store_unavailable" || frame.code === "outcome_unknown")) {
        storeErrors.add(1, { code: frame.code });
        maybeCounted = maybeCounted || frame.code === "outcome_unknown";
        socket.setTimeout(transmit, RESEND_MS);
      } else if (frame.type === "error") {
        check(frame, { "no other error frame": () => false });
        socket.close();
      }
    });
    socket.setTimeout(() => {
      check(null, { "iteration finished within 30 s": () => false });
      socket.close();
    }, 30000);
  });
  check(res, { "upgraded (101)": (r) => r && r.status === 101 });
}
