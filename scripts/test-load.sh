#!/usr/bin/env bash
# Smoke run of every load tool, seconds each, so none of them can rot: k6 (chat, resume),
# Locust, and the Rust generator (hold, echo, resume, fanout, drain) against one server, then
# k6's promote.js and the generator's promote through a private Traefik stack while
# scripts/promote.sh runs. Thresholds in each tool make it fail when the server misbehaves.
set -euo pipefail
. "$(dirname "$0")/stack-lib.sh" # wait_until
cd "$ROOT"

WORK=$(mktemp -d /tmp/switchyard-load.XXXXXX)
REDIS_PID=""
SERVER_PID=""
PASSED=0
FAILED=0
LOAD=$ROOT/target/release/switchyard-load
SERVER=$ROOT/target/release/switchyard

cleanup() {
    stop_pid "$SERVER_PID"
    stop_pid "$REDIS_PID"
    STACK_DIR=$WORK/stack "$ROOT/scripts/stack.sh" down >/dev/null 2>&1 || true
    if [ "$FAILED" -gt 0 ]; then
        keep_logs load
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT

# tool NAME COMMAND...: runs one smoke step, keeps its output, counts the result. Commands are
# bounded by `timeout`; the functions below bound each command they run.
tool() {
    local name=$1 bound=(timeout 120)
    shift
    declare -F "$1" >/dev/null && bound=()
    if "${bound[@]}" "$@" >"$WORK/$name.log" 2>&1; then
        PASSED=$((PASSED + 1))
        log "  ok: $name"
    else
        FAILED=$((FAILED + 1))
        log "  FAIL: $name"
        tail -n 30 "$WORK/$name.log" >&2
    fi
}

start_redis_and_server() {
    start_scratch_redis "$WORK/redis.log"
    start_scratch_server "$WORK/server.log" HEARTBEAT_INTERVAL_SECS=1 DRAIN_SPREAD_MS=300
}

generator_drain() {
    timeout 60 "$LOAD" drain --url "ws://127.0.0.1:$PORT/ws/chat/" -n 100 --server-pid "$SERVER_PID" >"$WORK/drain.json"
    wait "$SERVER_PID"
    SERVER_PID=""
    grep -q '"close_codes":{"1001":100}' "$WORK/drain.json"
}

start_stack() {
    export STACK_DIR=$WORK/stack
    local ports=() # one draw: separate draws can return the same free port
    read -ra ports <<<"$(free_ports 5)"
    REDIS_PORT=${ports[0]} BLUE_PORT=${ports[1]} GREEN_PORT=${ports[2]} TRAEFIK_PORT=${ports[3]} \
        TRAEFIK_API_PORT=${ports[4]} HEALTH_INTERVAL=1s SWITCHYARD_BIN="$SERVER" SWITCHYARD_ENV="DRAIN_SPREAD_MS=500" \
        "$ROOT/scripts/stack.sh" up >"$WORK/stack.log" 2>&1 || { cat "$WORK/stack.log"; die "stack did not come up"; }
    # shellcheck source=/dev/null # written by stack.sh up
    . "$STACK_DIR/stack.env"
}

# open_connections_at_least N: the two colors hold at least N WebSocket connections together.
open_connections_at_least() {
    local total=0 port open
    for port in "$BLUE_PORT" "$GREEN_PORT"; do
        open=$(curl -s --max-time 1 "http://127.0.0.1:$port/metrics" | awk '$1 == "switchyard_connections_active" { print $2 }')
        total=$((total + ${open:-0}))
    done
    [ "$total" -ge "$1" ]
}

# k6 promote.js through Traefik, with promote.sh run once its clients are connected.
k6_promote() {
    timeout 60 "$VENV/bin/k6" run -q -e BASE_URL="ws://127.0.0.1:$TRAEFIK_PORT" -e VUS=20 -e DURATION=8s -e EXPECT_CLOSES=20 \
        "$ROOT/loadtest/k6/promote.js" &
    local k6=$!
    wait_until 20 "k6's 20 clients to connect" open_connections_at_least 20 || { kill "$k6"; return 1; }
    "$ROOT/scripts/promote.sh" >"$WORK/promote-k6.log" 2>&1 || { kill "$k6"; return 1; }
    wait "$k6"
}

generator_promote() {
    timeout 90 "$LOAD" promote --url "ws://127.0.0.1:$TRAEFIK_PORT/ws/chat/" -n 50 --interval-ms 100 --settle-secs 1 \
        --redis "$REDIS_URL" --promote-cmd "$ROOT/scripts/promote.sh >$WORK/promote-gen.log 2>&1" >"$WORK/promote.json"
    python3 - "$WORK/promote.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
ok = r["promote_exit_code"] == 0 and r["failed_connects"] == 0 and r["resumed_fraction"] == 1 \
    and r["lost"] == 0 and r["doubled"] == 0 and r["reconnects"] == r["clients"] and r["unfinished"] == 0
print(r)
sys.exit(0 if ok else 1)
PY
}

ensure_redis
ensure_venv
log "building release binaries"
cargo_build_release
start_redis_and_server
URL=ws://127.0.0.1:$PORT
tool "k6 chat.js" "$VENV/bin/k6" run -q -e BASE_URL="$URL" -e VUS=5 -e DURATION=3s loadtest/k6/chat.js
tool "k6 resume.js" "$VENV/bin/k6" run -q -e BASE_URL="$URL" -e VUS=5 -e DURATION=3s loadtest/k6/resume.js
# Locust now and then keeps its users running after --run-time (about 1 run in 6 here): a
# SIGINT at 20 s ends it with its own exit status, which says whether any request failed.
tool "locust" timeout --preserve-status -s INT 20 "$VENV/bin/locust" -f loadtest/locustfile.py --headless \
    -u 10 -r 10 -t 4s --host "$URL" --only-summary
tool "generator hold" "$LOAD" hold --url "$URL/ws/chat/" -n 500 --server-pid "$SERVER_PID" --hold-secs 1
tool "generator echo" "$LOAD" echo --url "$URL/ws/chat/" -n 20 --duration-secs 2
tool "generator resume" "$LOAD" resume --url "$URL/ws/chat/" -n 100
tool "generator fanout" "$LOAD" fanout --url "$URL/ws/chat/" -n 100 --beats 1
tool "generator drain" generator_drain
start_stack
tool "k6 promote.js through Traefik" k6_promote
tool "generator promote through Traefik" generator_promote

log "load smoke: $PASSED passed, $FAILED failed"
echo "$PASSED passed, $FAILED failed"
[ "$FAILED" = 0 ]
