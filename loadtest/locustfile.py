"""Locust users speaking switchyard's protocol v1 over a real WebSocket (websocket-client).

Each user opens a session, sends numbered messages ({"seq": n}, gapless) and checks every reply
(the seq echoed, the count equal to the seq: each counted exactly once), and now and then drops
its connection and resumes with its session_id, continuing after the session frame's last_seq.
After store_unavailable or outcome_unknown it resends the same seq; when its session is gone
(session_expired, or a resume that opens a new session) it starts over knowingly in a new
session. Locust's statistics show the custom requests WS connect, WS message (round trip),
WS resume and WS session_expired (a count of fresh starts, not a failure).

    locust -f loadtest/locustfile.py --headless -u 50 -r 10 -t 30s --host ws://127.0.0.1:8000

Locust exits non-zero when any request failed.
"""

import json
import time

import websocket
from locust import User, between, task

TIMEOUT = 10
# Pause before resending after store_unavailable / outcome_unknown.
RESEND_DELAY = 0.1


class ProtocolError(Exception):
    """The server answered something protocol v1 does not allow."""


def action(reply):
    """What the resend rule says to do with `reply`: ack, resend (the same seq), start_over,
    or report (anything else fails the request)."""
    if reply.get("type") == "count":
        return "ack"
    code = reply.get("code") if reply.get("type") == "error" else None
    if code in ("store_unavailable", "outcome_unknown"):
        return "resend"
    if code == "session_expired":
        return "start_over"
    return "report"


class ChatUser(User):
    wait_time = between(0.01, 0.1)

    def on_start(self):
        self.ws = None
        self.session_id = None
        self.seq = 0  # the last acknowledged seq; with only numbered messages, the count
        self._open("connect")

    def on_stop(self):
        # shutdown, not close: no close handshake to wait for while Locust stops its users.
        if self.ws:
            self.ws.shutdown()

    def _fire(self, name, started, length, error):
        self.environment.events.request.fire(
            request_type="WS",
            name=name,
            response_time=(time.perf_counter() - started) * 1000,
            response_length=length,
            exception=error,
            context={},
        )

    def _reply(self):
        while True:
            frame = json.loads(self.ws.recv())
            if frame.get("type") != "heartbeat":
                return frame

    def _open(self, name):
        url = f"{self.host.rstrip('/')}/ws/chat/"
        if self.session_id:
            url += f"?session_id={self.session_id}"
        started, error, length = time.perf_counter(), None, 0
        try:
            self.ws = websocket.create_connection(url, timeout=TIMEOUT)
            session = self._reply()
            length = len(json.dumps(session))
            if session.get("type") != "session":
                raise ProtocolError(f"first frame is not a session: {session}")
            if self.session_id and not (session.get("resumed") and session.get("session_id") == self.session_id):
                self._start_over()
            # A message whose reply was lost may have been applied: last_seq says.
            self.seq = max(self.seq, session.get("last_seq", -1))
            if session.get("last_seq") != self.seq or session.get("count") != self.seq:
                raise ProtocolError(f"session {session}, expected count and last_seq {self.seq}")
            self.session_id = session["session_id"]
        except Exception as exc:  # noqa: BLE001 - every failure is reported to Locust
            error = exc
            self.ws = None
        self._fire(name, started, length, error)

    def _start_over(self):
        """The session is gone: a new one, counted from zero, and Locust is told."""
        self._fire("session_expired", time.perf_counter(), 0, None)
        self.session_id = None
        self.seq = 0

    @task(20)
    def message(self):
        if self.ws is None:
            self._open("connect")
            return
        seq = self.seq + 1
        started, error, length = time.perf_counter(), None, 0
        maybe_counted = False
        try:
            while True:
                self.ws.send(json.dumps({"seq": seq}))
                reply = self._reply()
                length = len(json.dumps(reply))
                if action(reply) == "resend":
                    # Not counted, or maybe counted: the same seq again either way.
                    maybe_counted = maybe_counted or reply.get("code") == "outcome_unknown"
                    if time.perf_counter() - started > TIMEOUT:
                        raise ProtocolError(f"seq {seq}: the store failed for {TIMEOUT} s")
                    time.sleep(RESEND_DELAY)
                    continue
                break
            if action(reply) == "start_over":
                self.ws.close()
                self.ws = None
                self._start_over()
                return
            if action(reply) != "ack" or reply.get("seq") != seq:
                raise ProtocolError(f"seq {seq} answered with {reply}")
            if reply.get("count") != seq or (reply.get("duplicate") and not maybe_counted):
                raise ProtocolError(f"seq {seq}: {reply}, expected count {seq} counted once")
            self.seq = seq
        except Exception as exc:  # noqa: BLE001 - every failure is reported to Locust
            error = exc
            self.ws = None
        self._fire("message", started, length, error)

    @task(1)
    def resume(self):
        if self.ws:
            self.ws.close()
        self._open("resume")
