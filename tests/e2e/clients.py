"""Clients that talk to switchyard through Traefik and must count exactly once across deploys.

Each client opens a session, then sends numbered messages ({"seq": n}, gapless) one at a time.
When its connection closes it reconnects with its session_id; the session frame's last_seq
acknowledges the message in flight if it was applied, else it is resent with the same seq, as it
is after store_unavailable or outcome_unknown. A session that is gone (session_expired, or a
resume that opens a new session) is reported and started over knowingly.
It checks every reply as it goes and, when told to stop (the stop file appears), finishes its
message in flight, closes, and the run compares every session's count in Redis with what was
acknowledged to it. The result is one JSON object on stdout.

usage: clients.py URL CLIENTS INTERVAL_MS READY_FILE STOP_FILE REDIS
REDIS is the sessions' Redis as PORT (on 127.0.0.1), HOST:PORT (a container's address),
exec:CONTAINER (redis-cli inside that container, for a network the host has no route into),
sentinel:HOST:PORT[/MASTER_NAME] (the primary that sentinel names when the counts are read) or
cluster:HOST:PORT (any node of a Redis Cluster; redis-cli -c follows the slots).
"""

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import websockets

TIMEOUT = 10
# Protocol v1 written once: the session key pattern comes from here.
GOLDEN = json.loads((Path(__file__).resolve().parent.parent / "golden" / "frames.json").read_text())


class Stats:
    def __init__(self):
        self.failed_connects = 0
        self.connects = 0
        self.reconnects = 0
        self.not_resumed = 0
        self.wrong_counts = 0
        self.acked = 0
        self.duplicates = 0
        self.errors = 0
        self.expired = 0
        self.close_codes = {}
        self.reconnect_ms = []
        self.sessions = {}  # session_id -> last acknowledged seq (= its expected count)
        self.problems = []


def session_key(session_id):
    """The Redis key of a session, from the golden frames' pattern."""
    return GOLDEN["session_key"]["pattern"].replace("<uuid>", session_id)


def action(reply, pending):
    """What the resend rule says to do with `reply` to the message `pending`: ack, resend (the
    same seq), start_over, or report (a problem). With one message in flight, everything
    before it was acknowledged, so a seq_gap means an acknowledged message was lost: report."""
    if reply.get("type") == "count":
        return "ack" if reply.get("seq") == pending else "report"
    if reply.get("type") != "error":
        return "report"
    code = reply.get("code")
    if code in ("store_unavailable", "outcome_unknown"):
        return "resend"
    if code == "session_expired":
        return "start_over"
    return "report"


async def next_reply(ws):
    while True:
        frame = json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))
        if frame.get("type") != "heartbeat":
            return frame


async def run_client(url, interval, stats, stop, connected):
    session_id = None
    seq = 0  # last acknowledged seq; the session's count must equal it
    pending = None
    closed_at = None
    announced = False
    while True:
        if stop.is_set() and pending is None:
            return
        target = f"{url}?session_id={session_id}" if session_id else url
        try:
            ws = await websockets.connect(target, open_timeout=TIMEOUT, close_timeout=TIMEOUT)
        except Exception as error:  # noqa: BLE001 - every failed connect counts
            stats.failed_connects += 1
            stats.problems.append(f"connect failed: {type(error).__name__}: {error}")
            await asyncio.sleep(0.05)
            continue
        stats.connects += 1
        try:
            session = await next_reply(ws)
            if session_id is not None:
                stats.reconnects += 1
                stats.reconnect_ms.append((time.monotonic() - closed_at) * 1000)
                if not session.get("resumed") or session.get("session_id") != session_id:
                    stats.not_resumed += 1
                    stats.problems.append(f"not resumed: {session}")
            if session_id is not None and session.get("session_id") != session_id:
                # Gone: start over knowingly; the lost session is not compared with Redis.
                stats.sessions.pop(session_id, None)
                seq, pending = 0, None
            session_id = session["session_id"]
            if pending is not None and session.get("last_seq", 0) >= pending:
                # Applied before the connection closed: acknowledged by last_seq.
                seq, pending = pending, None
                stats.acked += 1
                stats.sessions[session_id] = seq
            count = session["count"]
            if count != seq:
                stats.wrong_counts += 1
                stats.problems.append(f"session {session_id} opened with count {count}, expected {seq}")
            if not announced:
                announced = True
                connected()
            while True:
                if pending is None:
                    if stop.is_set():
                        await ws.close()
                        stats.sessions[session_id] = seq
                        return
                    pending = seq + 1
                await ws.send(json.dumps({"seq": pending}))
                reply = await next_reply(ws)
                step = action(reply, pending)
                if step == "start_over":
                    stats.expired += 1
                    stats.problems.append(f"session {session_id} expired")
                    stats.sessions.pop(session_id, None)
                    session_id, seq, pending = None, 0, None
                    await ws.close()
                    break
                if step == "resend":
                    # store_unavailable / outcome_unknown: the same seq again.
                    stats.errors += 1
                    await asyncio.sleep(0.05)
                    continue
                if step == "report":
                    stats.problems.append(f"sent seq {pending}, got {reply}")
                    stats.wrong_counts += 1
                    continue
                if reply.get("duplicate"):
                    stats.duplicates += 1
                if reply.get("count") != pending:
                    stats.wrong_counts += 1
                    stats.problems.append(f"seq {pending} answered with count {reply.get('count')}")
                seq = pending
                pending = None
                stats.acked += 1
                stats.sessions[session_id] = seq
                await asyncio.sleep(interval)
        except websockets.ConnectionClosed as closed:
            code = closed.rcvd.code if closed.rcvd else 1006
            stats.close_codes[code] = stats.close_codes.get(code, 0) + 1
            closed_at = time.monotonic()


def sentinel_primary(address):
    """HOST:PORT of the primary the sentinel at `address` (HOST:PORT[/MASTER_NAME]) names now."""
    sentinel, _, name = address.partition("/")
    host, _, port = sentinel.rpartition(":")
    out = subprocess.run(
        ["redis-cli", "-h", host or "127.0.0.1", "-p", port, "--raw",
         "sentinel", "get-master-addr-by-name", name or "switchyard"],
        capture_output=True, text=True, timeout=10, check=True,
    ).stdout.split()
    if len(out) != 2:
        raise SystemExit(f"the sentinel at {sentinel} names no primary for {name or 'switchyard'}")
    return f"{out[0]}:{out[1]}"


def redis_cli(address):
    if address.startswith("exec:"):
        return ["docker", "exec", "-i", address.removeprefix("exec:"), "redis-cli", "--raw"]
    cluster = address.startswith("cluster:")
    if address.startswith("sentinel:"):
        address = sentinel_primary(address.removeprefix("sentinel:"))
    host, _, port = address.removeprefix("cluster:").rpartition(":")
    return ["redis-cli", *(["-c"] if cluster else []), "-h", host or "127.0.0.1", "-p", port, "--raw"]


def redis_counts(address, session_ids):
    commands = "".join(f"HGET {session_key(sid)} count\n" for sid in session_ids)
    out = subprocess.run(
        redis_cli(address), input=commands, capture_output=True, text=True, timeout=60, check=True
    ).stdout.splitlines()
    # redis-cli -c (a cluster) prints each redirection it follows on a line of its own.
    out = [line for line in out if not line.startswith("-> Redirected")]
    return [int(line) if line.strip() else 0 for line in out]


def percentile(values, q):
    if not values:
        return None
    values = sorted(values)
    return round(values[min(len(values) - 1, int(q * len(values)))], 1)


async def main():
    url, clients, interval_ms, ready_file, stop_file, redis_address = sys.argv[1:7]
    clients = int(clients)
    stats = Stats()
    stop = asyncio.Event()
    ready = {"n": 0}

    def connected():
        ready["n"] += 1
        if ready["n"] == clients:
            open(ready_file, "w").close()

    async def watch_stop():
        # Progress for the test: how often clients were closed, so far.
        while not os.path.exists(stop_file):
            with open(f"{stop_file}.progress.tmp", "w") as progress:
                json.dump(
                    {
                        "closes": sum(stats.close_codes.values()),
                        "acked": stats.acked,
                        "failed_connects": stats.failed_connects,
                    },
                    progress,
                )
            os.replace(f"{stop_file}.progress.tmp", f"{stop_file}.progress")
            await asyncio.sleep(0.1)
        stop.set()

    watcher = asyncio.create_task(watch_stop())
    tasks = [run_client(url, int(interval_ms) / 1000, stats, stop, connected) for _ in range(clients)]
    await asyncio.wait_for(asyncio.gather(*tasks), timeout=600)
    watcher.cancel()
    ids = list(stats.sessions)
    stored = redis_counts(redis_address, ids)
    lost = sum(max(0, stats.sessions[sid] - n) for sid, n in zip(ids, stored))
    doubled = sum(max(0, n - stats.sessions[sid]) for sid, n in zip(ids, stored))
    print(json.dumps({
        "clients": clients,
        "sessions": len(ids),
        "connects": stats.connects,
        "failed_connects": stats.failed_connects,
        "reconnects": stats.reconnects,
        "not_resumed": stats.not_resumed,
        "acked": stats.acked,
        "duplicates_answered": stats.duplicates,
        "store_errors": stats.errors,
        "sessions_expired": stats.expired,
        "wrong_counts": stats.wrong_counts,
        "lost": lost,
        "doubled": doubled,
        "close_codes": stats.close_codes,
        "reconnect_ms_p50": percentile(stats.reconnect_ms, 0.5),
        "reconnect_ms_p99": percentile(stats.reconnect_ms, 0.99),
        "reconnect_ms_max": percentile(stats.reconnect_ms, 1.0),
        "problems": stats.problems[:10],
    }))


if __name__ == "__main__":
    asyncio.run(main())
