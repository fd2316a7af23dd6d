// Promote under load: clients send numbered messages continuously; when the server closes them
// (1001 during a drain) they reconnect with their session_id and resend the unacknowledged
// message with the same seq, after the session frame's last_seq (which acknowledges it if it
// was applied); after store_unavailable or outcome_unknown they resend it with the same seq; on
// session_expired they start over, knowingly, in a new session. Run it through Traefik while scripts/promote.sh runs:
// k6 run -e BASE_URL=ws://127.0.0.1:8080 -e VUS=200 -e DURATION=30s loadtest/k6/promote.js
import ws from "k6/ws";
import { check } from "k6";
import { Counter, Rate, Trend } from "k6/metrics";

const BASE_URL = __ENV.BASE_URL || "ws://127.0.0.1:8080";
const INTERVAL_MS = Number(__ENV.INTERVAL_MS || 100);
const failedConnects = new Counter("failed_connects");
const resumed = new Rate("resumed");
const reconnectTime = new Trend("reconnect_time", true);
const closes = new Counter("server_closes");
const storeErrors = new Counter("store_errors");
const expired = new Counter("sessions_expired");

export const options = {
  scenarios: {
    promote: {
      executor: "constant-vus",
      vus: Number(__ENV.VUS || 20),
      duration: __ENV.DURATION || "20s",
      // An iteration is a connection's whole life: end the open ones promptly at the end.
      gracefulStop: "1s",
    },
  },
  thresholds: {
    checks: ["rate==1"],
    failed_connects: ["count==0"],
    resumed: ["rate==1"],
    // With -e EXPECT_CLOSES=N the run must have seen N closes (so the resumes were exercised).
    ...(__ENV.EXPECT_CLOSES ? { server_closes: [`count>=${__ENV.EXPECT_CLOSES}`] } : {}),
  },
};

// Per-VU state survives iterations: each iteration is one connection's life.
let sessionId = null;
let acked = 0; // last acknowledged seq = the session's count
let closedAt = 0;

export default function () {
  const url = sessionId ? `${BASE_URL}/ws/chat/?session_id=${sessionId}` : `${BASE_URL}/ws/chat/`;
  const res = ws.connect(url, {}, (socket) => {
    let pending = 0;
    const send = () => {
      pending = acked + 1;
      socket.send(JSON.stringify({ seq: pending }));
    };
    socket.on("message", (data) => {
      const frame = JSON.parse(data);
      if (frame.type === "session") {
        if (sessionId) {
          resumed.add(frame.resumed === true && frame.session_id === sessionId);
          reconnectTime.add(Date.now() - closedAt);
          // The unacknowledged seq may have been applied before the close: last_seq says.
          if (frame.resumed === true && frame.last_seq > acked) acked = frame.last_seq;
        }
        check(frame, { "session count equals what was acknowledged": (f) => f.count === acked && f.last_seq === acked });
        sessionId = frame.session_id;
        send();
      } else if (frame.type === "count") {
        // A resent seq the server had already applied comes back as duplicate: still exact.
        check(frame, { "reply counts exactly once": (f) => f.seq === pending && f.count === pending });
        acked = pending;
        socket.setTimeout(send, INTERVAL_MS);
      } else if (frame.type === "error" && frame.code === "session_expired") {
        // The session is gone: start over in a new one, knowingly.
        expired.add(1);
        sessionId = null;
        acked = 0;
        socket.close();
      } else if (frame.type === "error") {
        // store_unavailable / outcome_unknown: the same seq again (a repeat is a duplicate);
        // seq_gap: from the seq the server expects.
        storeErrors.add(1, { code: String(frame.code) });
        if (frame.code === "seq_gap") acked = frame.expected - 1;
        socket.setTimeout(send, INTERVAL_MS);
      }
    });
    socket.on("close", (code) => {
      closes.add(1, { code: String(code) });
      closedAt = Date.now();
    });
  });
  if (!res || res.status !== 101) {
    failedConnects.add(1);
  }
}
