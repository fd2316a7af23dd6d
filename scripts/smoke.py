"""Smoke test of one color through its direct route: new session, one message, resume.

usage: smoke.py WS_BASE EXPECTED_COLOR   (e.g. ws://127.0.0.1:8080/green green)
Exit 0 when every step holds, 1 with the failed step otherwise. Every wait is bounded.
"""

import asyncio
import json
import sys
import time

import websockets

TIMEOUT = 5


class SmokeFailed(Exception):
    pass


def check(holds, why):
    """Like assert, but kept under `python -O`."""
    if not holds:
        raise SmokeFailed(why)


async def frame(ws):
    while True:
        data = json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))
        if data.get("type") != "heartbeat":
            return data


def must_resend(reply):
    """True for the error frames the resend rule answers with the same seq."""
    return reply.get("type") == "error" and reply.get("code") in ("store_unavailable", "outcome_unknown")


async def send_once(ws, seq):
    """Sends `seq` until it is acknowledged, resending the same seq after store_unavailable or
    outcome_unknown (bounded by TIMEOUT); returns the count reply."""
    deadline = time.monotonic() + TIMEOUT
    maybe_counted = False
    while True:
        await ws.send(json.dumps({"seq": seq, "text": "smoke"}))
        reply = await frame(ws)
        if not must_resend(reply):
            break
        maybe_counted = maybe_counted or reply.get("code") == "outcome_unknown"
        check(time.monotonic() < deadline, f"the store kept failing: {reply}")
        await asyncio.sleep(0.1)
    if maybe_counted and reply.get("duplicate"):
        reply = {key: value for key, value in reply.items() if key != "duplicate"}
    return reply


async def smoke(base, color):
    async with websockets.connect(f"{base}/ws/chat/", open_timeout=TIMEOUT) as ws:
        session = await frame(ws)
        check(session.get("type") == "session", f"first frame is not a session: {session}")
        check(session.get("color") == color, f"answered by {session.get('color')}, expected {color}")
        check(session.get("resumed") is False, f"a new session says resumed: {session}")
        reply = await send_once(ws, session.get("last_seq", 0) + 1)
        check(reply == {"type": "count", "count": 1, "seq": 1}, f"message not counted: {reply}")
    sid = session["session_id"]
    async with websockets.connect(f"{base}/ws/chat/?session_id={sid}", open_timeout=TIMEOUT) as ws:
        resumed = await frame(ws)
        check(
            resumed.get("resumed") is True and resumed.get("count") == 1 and resumed.get("last_seq") == 1,
            f"resume failed: {resumed}",
        )


def main():
    base, color = sys.argv[1], sys.argv[2]
    try:
        asyncio.run(smoke(base, color))
    except Exception as error:  # noqa: BLE001 - any failure is a failed smoke test
        print(f"smoke test of {color} at {base} failed: {type(error).__name__}: {error}", file=sys.stderr)
        sys.exit(1)
    print(f"smoke test of {color} at {base}: new session, message counted, resumed")


if __name__ == "__main__":
    main()
