"""Locust users speaking switchyard's protocol v1 over a real WebSocket (websocket-client).

Each user opens a session, sends numbered messages ({"seq": n}) and checks every reply (the seq
echoed, the count exactly the previous plus one), and now and then drops its connection and
resumes with its session_id. Locust's statistics show three custom requests: WS connect,
WS message (round trip) and WS resume.

    locust -f loadtest/locustfile.py --headless -u 50 -r 10 -t 30s --host ws://127.0.0.1:8000

Locust exits non-zero when any request failed.
"""

import json
import time

import websocket
from locust import User, between, task

TIMEOUT = 10


class ProtocolError(Exception):
    """The server answered something protocol v1 does not allow."""


class ChatUser(User):
    wait_time = between(0.01, 0.1)

    def on_start(self):
        self.ws = None
        self.session_id = None
        self.count = 0
        self.seq = 0
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
                raise ProtocolError(f"session {self.session_id} was not resumed: {session}")
            if session.get("count") != self.count:
                raise ProtocolError(f"session count {session.get('count')}, expected {self.count}")
            self.session_id = session["session_id"]
        except Exception as exc:  # noqa: BLE001 - every failure is reported to Locust
            error = exc
            self.ws = None
        self._fire(name, started, length, error)

    @task(20)
    def message(self):
        if self.ws is None:
            self._open("connect")
            return
        seq = self.seq + 1
        started, error, length = time.perf_counter(), None, 0
        try:
            self.ws.send(json.dumps({"seq": seq}))
            reply = self._reply()
            length = len(json.dumps(reply))
            if reply.get("type") != "count" or reply.get("seq") != seq:
                raise ProtocolError(f"seq {seq} answered with {reply}")
            if reply.get("count") != self.count + 1:
                raise ProtocolError(f"seq {seq}: count {reply.get('count')}, expected {self.count + 1}")
            self.seq, self.count = seq, reply["count"]
        except Exception as exc:  # noqa: BLE001 - every failure is reported to Locust
            error = exc
            self.ws = None
        self._fire("message", started, length, error)

    @task(1)
    def resume(self):
        if self.ws:
            self.ws.close()
        self._open("resume")
