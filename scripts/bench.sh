#!/usr/bin/env bash
# Benchmarks: builds, starts Redis and the server (and a private Traefik stack for promote),
# runs the load generator's scenarios, and writes BENCHMARKS.md and loadtest/results/*.png.
# Everything runs on loopback, is bounded in time, and is stopped by PID.
#
# usage: scripts/bench.sh [--quick] [SCENARIO...]
#   --quick    small sizes (÷ 10), about a minute: for checking the script, not for the record
#   SCENARIO   any of coldstart hold echo fanout resume drain promote topologies failover
#              (default: all); the report keeps earlier results of the scenarios not run
#   topologies: counted messages at 1 000 connections on one server per Redis topology (single,
#   Sentinel with the replica acknowledgement, Cluster of 3 primaries); failover: the failover
#   test (scripts/test-failover.sh) at 1 000 clients on Sentinel and Cluster, recorded
set -euo pipefail
. "$(dirname "$0")/stack-lib.sh"
cd "$ROOT"

QUICK=""
case "${1:-}" in
    -h | --help) print_help "$0"; exit 0 ;;
    --quick) QUICK=--quick; shift ;;
esac
SCENARIOS=${*:-coldstart hold echo fanout resume drain promote topologies failover}
RESULTS=$ROOT/loadtest/results
SERVER=$ROOT/target/release/switchyard
WORK=$(mktemp -d /tmp/switchyard-bench.XXXXXX)
REDIS_PID=""
SERVER_PID=""
if [ "$QUICK" = --quick ]; then SCALE=10; else SCALE=1; fi
# start_topology_stack (private stacks on free ports) and STACKS
. "$ROOT/scripts/e2e-lib.sh"
HOLD_MAX=$((19000 / SCALE))

cleanup() {
    stop_pid "$SERVER_PID"
    stop_pid "$REDIS_PID"
    rm -rf "$WORK"
}
trap cleanup EXIT

build() {
    log "building release binaries"
    cargo_build_release
}

start_redis() { start_scratch_redis "$WORK/redis.log"; }

# start_server [VAR=VALUE...]: a fresh server on a free port, ready.
start_server() {
    start_scratch_server "$WORK/server.log" "$@"
    URL=ws://127.0.0.1:$PORT/ws/chat/
}

stop_server() {
    kill "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=""
}

# run NAME ARGS...: one generator run, its JSON kept as results/NAME.json.
run() {
    local name=$1
    shift
    log "── $name: switchyard-load $*"
    timeout 300 "$LOAD" "$@" >"$RESULTS/$name.json"
    log "   $(cat "$RESULTS/$name.json")"
}

cold_start() {
    log "── cold start to ready (5 runs)"
    "$VENV/bin/python" - "$SERVER" "$REDIS_URL" >"$RESULTS/coldstart.json" <<'PY'
import json, os, socket, subprocess, sys, time
server, redis_url = sys.argv[1], sys.argv[2]
runs = []
for _ in range(5):
    s = socket.socket(); s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]; s.close()
    env = dict(os.environ, PORT=str(port), BIND="127.0.0.1", REDIS_URL=redis_url)
    started = time.monotonic()
    proc = subprocess.Popen([server, "serve"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = started + 10
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5) as c:
                c.sendall(b"GET /readyz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                if c.recv(64).startswith(b"HTTP/1.1 200"):
                    break
        except OSError:
            pass
        time.sleep(0.001)
    runs.append((time.monotonic() - started) * 1000)
    proc.terminate(); proc.wait(10)
print(json.dumps({"scenario": "coldstart", "runs_ms": [round(r, 1) for r in runs], "median_ms": round(sorted(runs)[2], 1)}))
PY
    log "   $(cat "$RESULTS/coldstart.json")"
}

hold_curve() {
    local n
    for n in $((1000 / SCALE)) $((5000 / SCALE)) $((10000 / SCALE)) "$HOLD_MAX"; do
        start_server
        run "hold-$n" hold --url "$URL" -n "$n" --server-pid "$SERVER_PID" --hold-secs 3 --source-addresses 200
        stop_server
    done
}

echo_runs() {
    local n
    for n in 100 $((1000 / SCALE)); do
        start_server
        run "echo-$n" echo --url "$URL" -n "$n" --duration-secs $((10 / SCALE + 2))
        stop_server
    done
}

fanout_runs() {
    local n
    for n in $((5000 / SCALE)) "$HOLD_MAX"; do
        start_server HEARTBEAT_INTERVAL_SECS=2
        run "fanout-$n" fanout --url "$URL" -n "$n" --beats 3 --source-addresses 200
        stop_server
    done
}

resume_run() {
    start_server
    run resume-1000 resume --url "$URL" -n 1000
    stop_server
}

drain_run() {
    start_server DRAIN_SPREAD_MS=2000
    run "drain-$HOLD_MAX" drain --url "$URL" -n "$HOLD_MAX" --server-pid "$SERVER_PID" --source-addresses 200
    local status=0
    wait "$SERVER_PID" || status=$?
    SERVER_PID=""
    echo "{\"exit_status\": $status}" >"$RESULTS/drain-exit.json"
    log "   server exit status $status"
}

# In a subshell: the private stack's settings must not leak into later scenarios. Two
# replicas per color behind Traefik.
# shellcheck disable=SC2030,SC2031 # the subshell's settings are meant to stay in it
promote_run() (
    local n=$((5000 / SCALE))
    export STACK_DIR=$WORK/stack-promote STACK=local
    trap '"$ROOT/scripts/stack.sh" down >/dev/null 2>&1' EXIT
    SWITCHYARD_BIN="$SERVER" SWITCHYARD_ENV="DRAIN_SPREAD_MS=${PROMOTE_SPREAD_MS:-10000}" start_topology_stack single 2
    run "promote-$n" promote --url "ws://127.0.0.1:$TRAEFIK_PORT/ws/chat/" -n "$n" --interval-ms "${PROMOTE_INTERVAL_MS:-2000}" \
        --settle-secs 5 --source-addresses "${PROMOTE_SOURCES:-64}" --redis "$REDIS_PORT" --promote-cmd "$ROOT/scripts/promote.sh >$WORK/promote.log 2>&1"
    grep -E "✓|promoted" "$WORK/promote.log" | sed 's/^/   /' >&2 || true
)

# topologies_run: one server (blue-1 of a private stack) per topology, 1 000 connections
# sending counted messages for 10 s; Sentinel and Cluster with and without the replica
# acknowledgement.
# shellcheck disable=SC2030,SC2031 # the subshell's settings are meant to stay in it
topologies_run() (
    local run_spec name topology acked n=$((1000 / SCALE))
    export STACK=local
    trap '"$ROOT/scripts/stack.sh" down >/dev/null 2>&1' EXIT
    # NAME:TOPOLOGY:REDIS_MIN_REPLICAS_ACKED (empty: the server's default, 1 off single)
    for run_spec in single:single: sentinel:sentinel: sentinel-noack:sentinel:0 cluster:cluster: cluster-noack:cluster:0; do
        IFS=: read -r name topology acked <<<"$run_spec"
        export STACK_DIR=$WORK/stack-$name
        SWITCHYARD_BIN="$SERVER" REDIS_MIN_REPLICAS_ACKED=$acked start_topology_stack "$topology" 1
        run "topology-$name" echo --url "ws://127.0.0.1:${BLUE_PORTS%% *}/ws/chat/" -n "$n" --duration-secs $((10 / SCALE + 2)) \
            --source-addresses 200
        "$ROOT/scripts/stack.sh" down >/dev/null 2>&1
    done
)

# failover_run: the failover test at 1 000 clients on Sentinel and Cluster, its verdicts kept.
failover_run() {
    E2E_CLIENTS=$((1000 / SCALE)) FAILOVER_TOPOLOGIES="sentinel cluster" FAILOVER_RESULTS=$RESULTS \
        "$ROOT/scripts/test-failover.sh" >"$WORK/failover.log" 2>&1 || { tail -n 40 "$WORK/failover.log"; die "the failover run failed"; }
    grep -E "^  (sentinel|cluster):" "$WORK/failover.log" >&2 || true
}

ensure_redis
ensure_venv
"$VENV/bin/pip" install -q --disable-pip-version-check matplotlib==3.11.2
build
mkdir -p "$RESULTS"
start_redis
for scenario in $SCENARIOS; do
    case "$scenario" in
        coldstart) cold_start ;;
        hold) rm -f "$RESULTS"/hold-*.json; hold_curve ;;
        echo) rm -f "$RESULTS"/echo-*.json; echo_runs ;;
        fanout) rm -f "$RESULTS"/fanout-*.json; fanout_runs ;;
        resume) resume_run ;;
        drain) rm -f "$RESULTS"/drain-*.json; drain_run ;;
        promote) rm -f "$RESULTS"/promote-*.json; promote_run ;;
        topologies) rm -f "$RESULTS"/topology-*.json; topologies_run ;;
        failover) rm -f "$RESULTS"/failover-*.json; failover_run ;;
        *) die "unknown scenario '$scenario' (coldstart hold echo fanout resume drain promote topologies failover)" ;;
    esac
done
"$VENV/bin/python" "$ROOT/scripts/bench_report.py" "$RESULTS" "$ROOT/BENCHMARKS.md" "$QUICK"
log "wrote BENCHMARKS.md and $RESULTS/rss.png"
