"""Writes the measured part of BENCHMARKS.md (between its results markers) and the plot,
from the JSON results of scripts/bench.sh.

usage: bench_report.py RESULTS_DIR BENCHMARKS_MD [--quick]
"""

import datetime
import json
import os
import pathlib
import platform
import re
import subprocess
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

results_dir, md_path = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
quick = len(sys.argv) > 3 and sys.argv[3] == "--quick"
R = {p.stem: json.loads(p.read_text()) for p in results_dir.glob("*.json")}


def first(prefix):
    keys = sorted((k for k in R if k.startswith(prefix)), key=lambda k: int(k.rsplit("-", 1)[1]))
    return R[keys[-1]] if keys else None


def by_prefix(prefix):
    return sorted(((int(k.rsplit("-", 1)[1]), v) for k, v in R.items() if re.fullmatch(prefix + r"-\d+", k)), key=lambda kv: kv[0])


rows = []


def row(target, goal, measured, met, command):
    mark = "—" if met is None else "✅" if met else "❌"
    rows.append(f"| {target} | {goal} | {measured} | {mark} | `{command}` |")


holds = by_prefix("hold")
if holds:
    n, h = holds[-1]
    kib = h["server_rss_per_session_kib"]
    n0, h0 = holds[0]
    marginal = round((h["server_rss_after_kib"] - h0["server_rss_after_kib"]) / (n - n0), 2) if n > n0 else None
    row(f"idle sessions held ({n})", "≤ 4 KiB RSS each (goal < 2.2)",
        f"{kib} KiB each (RSS growth ÷ {n}); {marginal} KiB per added session ({n0} → {n})", kib <= 4,
        f"switchyard-load hold -n {n} --server-pid PID")
    rate = max(v["connects_per_second"] for _, v in holds)
    row("session connect rate", "≥ 10 000/s", f"{rate:,.0f}/s", rate >= 10000, "switchyard-load hold (256 connects in flight)")
for n, e in by_prefix("echo"):
    lat = e["latency"]
    if n >= 1000:
        ok = e["messages_per_second"] >= 50000 and lat["p99_ms"] <= 40
        goal = "≥ 50 000 msg/s, p99 ≤ 40 ms"
    else:
        ok = lat["p99_ms"] <= 5
        goal = "p99 ≤ 5 ms"
    row(f"counted messages, {n} connections", goal,
        f"{e['messages_per_second']:,.0f} msg/s, p50 {lat['p50_ms']} / p99 {lat['p99_ms']} / p999 {lat['p999_ms']} ms", ok,
        f"switchyard-load echo -n {n}")
for n, f in by_prefix("fanout"):
    limit = 40 if n <= 5000 else 120
    spread = f["max_spread_ms"]
    server = f.get("server_fanout_mean_ms")
    row(f"heartbeat fan-out spread, {n} connections", f"≤ {limit} ms",
        f"max {spread} ms over {f['beats_observed']} beats ({f['spread_ms']}); server side (broadcast → last write) mean {server} ms",
        spread is not None and spread <= limit, f"switchyard-load fanout -n {n} --beats 3")
r = R.get("resume-1000")
if r:
    row("resume of 1000 sessions", "p99 ≤ 50 ms, all resumed", f"p99 {r['latency']['p99_ms']} ms, {r['resumed']}/1000 resumed",
        r["latency"]["p99_ms"] <= 50 and r["resumed"] == 1000, "switchyard-load resume -n 1000")
for n, d in by_prefix("drain"):
    exit_status = R.get("drain-exit", {}).get("exit_status")
    ok = d["last_close_ms"] <= 3000 and list(d["close_codes"]) == ["1001"] and exit_status == 0
    row(f"drain of {n} sessions", "all closed within DRAIN_SPREAD_MS (2 s) + 1 s, exit 0",
        f"codes {d['close_codes']}, last close {d['last_close_ms']} ms, exit {exit_status} at {d['process_exit_ms']} ms", ok,
        f"switchyard-load drain -n {n} --server-pid PID")
for n, p in by_prefix("promote"):
    lat = p["reconnect_latency"]
    ok = p["failed_connects"] == 0 and p["resumed_fraction"] == 1 and p["lost"] == 0 and p["doubled"] == 0 and lat["p99_ms"] <= 250 and p["promote_exit_code"] == 0
    row(f"promote under {n} clients through Traefik", "0 failed connects, 100 % resumed, 0 lost, 0 doubled, p99 reconnect ≤ 250 ms",
        f"{p['failed_connects']} failed, {p['resumed_fraction'] * 100:.1f} % of {p['reconnects']} resumed, {p['lost']} lost, {p['doubled']} doubled, "
        f"reconnect p50 {lat['p50_ms']} / p99 {lat['p99_ms']} ms, promote {p['promote_ms']} ms", ok,
        f"switchyard-load promote -n {n} --promote-cmd scripts/promote.sh (2 replicas per color)")
single = R.get("topology-single")
for name, goal, minimum in (("sentinel", "≥ 75 % of single (the replica acknowledgement costs ≤ 25 %)", 0.75),
                            ("sentinel-noack", "(for comparison: no replica acknowledgement)", 0),
                            ("cluster", "≥ 100 % of single", 1),
                            ("cluster-noack", "(for comparison: no replica acknowledgement)", 0)):
    t = R.get(f"topology-{name}")
    if not (t and single):
        continue
    share = t["messages_per_second"] / single["messages_per_second"]
    lat, base = t["latency"], single["latency"]
    acked = "REDIS_MIN_REPLICAS_ACKED=0" if name.endswith("-noack") else "REDIS_MIN_REPLICAS_ACKED=1"
    row(f"counted messages, {t['connections']} connections, {name.removesuffix('-noack')} ({acked}) vs single", goal,
        f"{t['messages_per_second']:,.0f} msg/s (p99 {lat['p99_ms']} ms) vs {single['messages_per_second']:,.0f} msg/s (p99 {base['p99_ms']} ms): {share * 100:.0f} %",
        share >= minimum if minimum else None, "scripts/bench.sh topologies")
for topology in ("sentinel", "cluster"):
    f = R.get(f"failover-{topology}")
    if not f:
        continue
    gap = f["longest_ack_gap"]
    ok = f["lost"] == 0 and f["doubled"] == 0 and f["unfinished"] == 0 and gap["p99_ms"] <= 5000
    layout = f", {f.get('cluster_replicas', 1)} replica(s) per primary" if topology == "cluster" else ""
    rejoin = f", killed node back in sync after {f['rejoin_ms']} ms" if f.get("rejoin_ms") else ""
    row(f"Redis failover ({topology}{layout}) under {f['clients']} clients", "0 lost, 0 doubled, first acknowledgement after the kill ≤ 5 s p99",
        f"{f['lost']} lost, {f['doubled']} doubled; new primary in {f['failover_ms']} ms{rejoin}, acknowledged messages flowing again after {f['recovery_ms']} ms; "
        f"each client's longest wait p50 {gap['p50_ms']} / p99 {gap['p99_ms']} ms", ok,
        f"scripts/bench.sh failover (kill -9 of the primary)")
c = R.get("coldstart")
if c:
    row("cold start to ready", "≤ 200 ms", f"median {c['median_ms']} ms ({c['runs_ms']})", c["median_ms"] <= 200, "process start → first 200 from /readyz")

if holds:
    ns = [n for n, _ in holds]
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.6))
    a.plot(ns, [v["server_rss_after_kib"] / 1024 for _, v in holds], "o-")
    a.set_xlabel("idle sessions"); a.set_ylabel("server RSS (MiB)"); a.set_title("Server RSS"); a.grid(alpha=0.3)
    b.plot(ns, [v["server_rss_per_session_kib"] for _, v in holds], "o-", label="switchyard")
    b.axhline(4, color="tab:orange", ls="--", label="target 4 KiB"); b.axhline(2.2, color="tab:green", ls=":", label="uWebSockets.js 2.2 KiB")
    b.set_xlabel("idle sessions"); b.set_ylabel("KiB per session"); b.set_title("RSS per idle session"); b.grid(alpha=0.3); b.legend()
    fig.tight_layout()
    fig.savefig(results_dir / "rss.png", dpi=90)

cpu = subprocess.run(["sh", "-c", "grep -m1 'model name' /proc/cpuinfo | cut -d: -f2"], capture_output=True, text=True).stdout.strip()
mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
machine = f"{os.cpu_count()} cores ({cpu}), {mem:.0f} GiB, Linux {platform.release()}; server, Redis and generator share the machine"
block = "\n".join([
    "<!-- results: written by scripts/bench.sh; edit outside these markers -->",
    f"Measured {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC on {machine}."
    + (" **Quick run (sizes ÷ 10): not the figures of record.**" if quick else ""),
    "Command: `scripts/bench.sh` (raw JSON in `loadtest/results/`).",
    "",
    "| target | goal | measured | met | command |",
    "| --- | --- | --- | --- | --- |",
    *rows,
    "",
    "![RSS per idle session](loadtest/results/rss.png)",
    "<!-- /results -->",
])
text = md_path.read_text() if md_path.exists() else "# Benchmarks\n\n<!-- results -->\n<!-- /results -->\n"
text = re.sub(r"<!-- results.*?<!-- /results -->", lambda _: block, text, flags=re.S)
md_path.write_text(text)
print(block)
