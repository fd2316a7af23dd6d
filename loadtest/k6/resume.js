// Reconnect and resume: open a session, send three numbered messages, close, reconnect with
// ?session_id=, and check the session comes back resumed with its count; one more message counts.
// Each message's seq is the session frame's last_seq + 1, then one more per reply; after
// store_unavailable or outcome_unknown the same seq is resent.
// k6 run -e BASE_URL=ws://127.0.0.1:8000 -e VUS=20 -e DURATION=20s loadtest/k6/resume.js
import ws from "k6/ws";
import { check } from "k6";
import { Trend } from "k6/metrics";

const BASE_URL = __ENV.BASE_URL || "ws://127.0.0.1:8000";
const resumeTime = new Trend("resume_time", true);

export const options = {
  vus: Number(__ENV.VUS || 10),
  duration: __ENV.DURATION || "10s",
  thresholds: {
    checks: ["rate==1"],
    resume_time: [`p(99)<${__ENV.P99_MS || 100}`],
  },
};

function session(url, onSession, messages) {
  let sessionFrame = null;
  let sent = 0;
  let next = 0;
  const res = ws.connect(url, {}, (socket) => {
    const transmit = () => socket.send(JSON.stringify({ seq: next }));
    socket.on("message", (data) => {
      const frame = JSON.parse(data);
      if (frame.type === "session") {
        sessionFrame = frame;
        onSession(frame);
        next = frame.last_seq;
      } else if (frame.type === "error" && (frame.code === "store_unavailable" || frame.code === "outcome_unknown")) {
        socket.setTimeout(transmit, 100);
        return;
      } else if (frame.type !== "count") {
        return;
      }
      if (sent < messages) {
        sent += 1;
        next += 1;
        transmit();
      } else {
        socket.close();
      }
    });
    socket.setTimeout(() => socket.close(), 10000);
  });
  check(res, { "upgraded (101)": (r) => r && r.status === 101 });
  return sessionFrame;
}

export default function () {
  const first = session(`${BASE_URL}/ws/chat/`, () => {}, 3);
  if (!first) return;
  const started = Date.now();
  const again = session(`${BASE_URL}/ws/chat/?session_id=${first.session_id}`, () => resumeTime.add(Date.now() - started), 1);
  check(again, {
    "resumed the same session": (f) => f && f.resumed === true && f.session_id === first.session_id,
    "count kept across the reconnect": (f) => f && f.count === 3,
  });
}
