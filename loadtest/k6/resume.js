// Reconnect and resume: open a session, send three numbered messages, close, reconnect with
// ?session_id=, and check the session comes back resumed with its count; one more message counts.
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
  let seq = 0;
  const res = ws.connect(url, {}, (socket) => {
    socket.on("message", (data) => {
      const frame = JSON.parse(data);
      if (frame.type === "session") {
        sessionFrame = frame;
        onSession(frame);
      } else if (frame.type !== "count") {
        return;
      }
      if (seq < messages) {
        seq += 1;
        socket.send(JSON.stringify({ seq: (frame.type === "session" ? frame.count : frame.count) + 1 }));
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
