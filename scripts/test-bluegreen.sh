#!/usr/bin/env bash
# End-to-end blue-green test on a private stack (free ports, its own STACK_DIR):
#   a few hundred clients through Traefik send numbered messages and reconnect on close,
#   while promote.sh goes blue → green → blue; then two promotes that must fail (a color
#   that never becomes ready, one that fails its smoke test) and two interrupted (SIGINT, SIGTERM)
#   roll back without disturbing anyone. Asserted: no failed connect, every reconnect resumed, every count in Redis equals
#   what was acknowledged (none lost, none doubled), old colors exited 0, rollbacks clean.
set -euo pipefail
. "$(dirname "$0")/stack-lib.sh"

CLIENTS=${E2E_CLIENTS:-300}
WORK=$(mktemp -d /tmp/switchyard-e2e.XXXXXX)
export STACK_DIR=$WORK/stack STACK=local
. "$ROOT/scripts/e2e-lib.sh"

cleanup() {
    stop_clients_now
    "$ROOT/scripts/stack.sh" down >/dev/null 2>&1 || true
    if [ "$FAILURES" -gt 0 ] || [ "${KEEP_E2E:-}" ]; then
        keep_logs bluegreen
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT

promote_fails_at() { # promote_fails_at STEP VAR=VALUE...: a bad green must be rolled back
    local step=$1 log_file=$WORK/promote-fail-$1.log
    shift
    if PROMOTE_ENV="$*" READY_TIMEOUT=3 "$ROOT/scripts/promote.sh" --to green >"$log_file" 2>&1; then
        log "    promote with $* succeeded, but it must fail"
        return 1
    fi
    grep -q "failed at step '$step'" "$log_file" || { cat "$log_file" >&2; return 1; }
    grep -E "✗|rolled back" "$log_file" | sed 's/^/    /' >&2
}

# promote_interrupted_rolls_back SIGNAL: SIGNAL to a promote waiting for a green that never
# gets ready must roll back like a failure (Traefik on blue, green stopped), naming the step.
# The promote runs in its own process group (set -m) and the signal goes to the whole group,
# as a terminal's Ctrl-C does.
promote_interrupted_rolls_back() {
    local signal=$1 log_file=$WORK/promote-$1.log pid status=0
    set -m
    PROMOTE_ENV=REDIS_URL=redis://127.0.0.1:1 READY_TIMEOUT=60 "$ROOT/scripts/promote.sh" --to green >"$log_file" 2>&1 &
    pid=$!
    set +m
    wait_until 30 "promote to reach wait_ready" grep -qF "▶ wait_ready" "$log_file" ||
        { kill -TERM -- "-$pid"; wait "$pid"; return 1; }
    kill "-$signal" -- "-$pid"
    wait "$pid" || status=$?
    [ "$status" -ne 0 ] || { log "    promote exited 0 after SIG$signal"; return 1; }
    grep -q "interrupted at step 'wait_ready'" "$log_file" || { cat "$log_file" >&2; return 1; }
    grep -E "✗|rolled back" "$log_file" | sed 's/^/    /' >&2
}

green_stopped() { ! curl -s --max-time 2 -o /dev/null "http://127.0.0.1:$(words "$GREEN_PORTS" | head -n 1)/healthz"; }
routes_to_blue() { traefik_routes_to_color blue && answers_as blue; }
exited_zero() { [ "$(cat "$STACK_DIR/$1-1.exit" 2>/dev/null)" = 0 ]; }

ensure_redis
ensure_venv
build_server_and_checker
start_topology_stack single 1
start_clients "ws://127.0.0.1:$TRAEFIK_PORT/ws/chat/" "$REDIS_PORT"

log "promote blue → green under load"
let_traffic_flow
check "promote to green succeeds" promote_ok green
check "blue drained and exited 0" exited_zero blue
log "promote green → blue under load"
let_traffic_flow
check "promote back to blue succeeds" promote_ok blue
check "green drained and exited 0" exited_zero green
let_traffic_flow

closes_before=$(closes_so_far)
log "failure path: a green that never becomes ready"
check "promote fails at wait_ready and rolls back" promote_fails_at wait_ready REDIS_URL=redis://127.0.0.1:1
check "Traefik still routes to blue" routes_to_blue
check "the bad green is stopped" green_stopped
log "failure path: a green that fails its smoke test"
check "promote fails at smoke_test and rolls back" promote_fails_at smoke_test MAX_MESSAGE_BYTES=1
check "Traefik still routes to blue" routes_to_blue
check "the bad green is stopped" green_stopped
for signal in INT TERM; do
    log "interrupt path: SIG$signal to a promote in progress"
    check "a promote interrupted by SIG$signal rolls back" promote_interrupted_rolls_back "$signal"
    check "Traefik still routes to blue" routes_to_blue
    check "the interrupted green is stopped" green_stopped
    check "blue is still recorded as active" test "$(cat "$STACK_DIR/active")" = blue
done
let_traffic_flow
check "no client was disturbed by the failed promotes" test "$(closes_so_far)" = "$closes_before"

stop_clients
check "every client reconnected at least once" test "$(result reconnects)" -ge "$CLIENTS"
check_no_failed_connect
check_nothing_lost
check_summary "blue-green e2e"
