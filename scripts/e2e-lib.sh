# shellcheck shell=bash
# What the end-to-end tests share (test-bluegreen.sh, test-compose.sh, test-alerts.sh, ...):
# counted checks, a private process stack, the one checker's clients (`switchyard-load
# clients`: start, let traffic flow, stop, read their verdict) and a promote whose steps are
# echoed. A test sets WORK (its scratch folder), STACK_DIR (under WORK) and CLIENTS first, and
# builds with build_server_and_checker.

FAILURES=0
CHECKS=0
CLIENTS_PID=""
STACKS=()
LOAD=$ROOT/target/release/switchyard-load

# build_server_and_checker: the server and the checker, release builds.
build_server_and_checker() {
    log "building the release binaries (switchyard, switchyard-load)"
    cargo_build_release
}

check() { # check DESCRIPTION COMMAND...
    local what=$1
    shift
    CHECKS=$((CHECKS + 1))
    if "$@"; then
        log "  ok: $what"
    else
        log "  FAIL: $what"
        FAILURES=$((FAILURES + 1))
    fi
}

# check_summary NAME: prints the closing line and fails if any check failed.
check_summary() {
    log "$1: $((CHECKS - FAILURES)) passed, $FAILURES failed"
    echo "$((CHECKS - FAILURES)) passed, $FAILURES failed"
    [ "$FAILURES" = 0 ]
}

stop_clients_now() { if [ -n "$CLIENTS_PID" ]; then kill "$CLIENTS_PID" 2>/dev/null || true; fi; }

# start_topology_stack TOPOLOGY [REPLICAS]: a private stack of STACK_DIR (REPLICAS per color,
# 2 by default) on free ports with a 1 s Traefik health check, its settings (BLUE_PORT, the
# first blue replica's, TRAEFIK_API_PORT, ...) and functions loaded; recorded in STACKS for the
# caller's cleanup.
start_topology_stack() {
    local replicas=${2:-2} nodes=1 others=0 ports=() extra=()
    case "$1" in
        sentinel) nodes=3 others=3 ;; # others: the sentinels
        # 3 primaries and CLUSTER_REPLICAS (1) replicas of each; others: their bus ports
        cluster) nodes=$((3 * (1 + ${CLUSTER_REPLICAS:-1}))) others=$nodes ;;
    esac
    # Every port of the stack from one draw: separate draws can return the same free port.
    read -ra ports <<<"$(free_ports $((nodes + others + 2 * replicas + 2)))"
    local at=$((nodes + others))
    local redis="${ports[*]:0:nodes}" more="${ports[*]:nodes:others}"
    local blue="${ports[*]:at:replicas}" green="${ports[*]:at+replicas:replicas}"
    local traefik=${ports[at + 2 * replicas]} api=${ports[at + 2 * replicas + 1]}
    case "$1" in
        single) extra=(REDIS_PORT="$redis") ;;
        sentinel) extra=(REDIS_PORTS="$redis" SENTINEL_PORTS="$more") ;;
        cluster) extra=(REDIS_PORTS="$redis" CLUSTER_BUS_PORTS="$more") ;;
    esac
    STACKS+=("$STACK_DIR")
    env REDIS_TOPOLOGY="$1" REPLICAS="$replicas" BLUE_PORTS="$blue" GREEN_PORTS="$green" \
        BLUE_PORT="${blue%%[[:space:]]*}" GREEN_PORT="${green%%[[:space:]]*}" \
        TRAEFIK_PORT="$traefik" TRAEFIK_API_PORT="$api" HEALTH_INTERVAL=1s "${extra[@]}" \
        SWITCHYARD_ENV="${SWITCHYARD_ENV:-}" "$ROOT/scripts/stack.sh" up >"$WORK/stack-up.log" 2>&1 || { tail -n 30 "$WORK/stack-up.log"; die "the $1 stack did not come up"; }
    use_stack
    load_stack_env
    log "private $1 stack: Traefik :$TRAEFIK_PORT, blue :${BLUE_PORTS// /,:}, green :${GREEN_PORTS// /,:}, redis :${REDIS_PORTS// /,:}"
}

# start_clients URL REDIS: CLIENTS clients through URL, every one connected before it returns;
# REDIS is where their sessions are counted at the end: PORT (127.0.0.1), HOST:PORT, a
# redis:// URL, sentinel:HOST:PORT/NAME, cluster:HOST:PORT,... or exec:CONTAINER.
start_clients() {
    rm -f "$WORK/clients.ready" "$WORK/clients.stop" "$WORK/clients.progress"
    "$LOAD" clients --url "$1" -n "$CLIENTS" --interval-ms "${E2E_INTERVAL_MS:-100}" --redis "$2" \
        --ready-file "$WORK/clients.ready" --stop-file "$WORK/clients.stop" \
        --progress-file "$WORK/clients.progress" --max-secs 900 >"$WORK/clients.json" 2>"$WORK/clients.err" &
    CLIENTS_PID=$!
    local deadline=$((SECONDS + 60))
    until [ -e "$WORK/clients.ready" ]; do
        kill -0 "$CLIENTS_PID" 2>/dev/null || { cat "$WORK/clients.err"; die "clients exited early"; }
        [ $SECONDS -lt $deadline ] || die "clients did not all connect within 60 s"
        sleep 0.1
    done
    log "$CLIENTS clients connected through $1"
}

progress() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$WORK/clients.progress" "$1"; }
closes_so_far() { progress closes; }
failed_connects_so_far() { progress failed_connects; }
acked_so_far() { progress acked; }

# let_traffic_flow: waits until every client has had about five more messages acknowledged,
# so that whatever comes next happens under load.
let_traffic_flow() {
    local before deadline=$((SECONDS + 20))
    before=$(acked_so_far)
    until [ "$(acked_so_far)" -ge $((before + CLIENTS * 5)) ]; do
        [ $SECONDS -lt $deadline ] || die "clients stopped making progress"
        sleep 0.1
    done
}

promote_ok() { # promote_ok TARGET: promote.sh --to TARGET succeeds; its steps are echoed
    local log_file=$WORK/promote-to-$1.log
    if "$ROOT/scripts/promote.sh" --to "$1" >"$log_file" 2>&1; then
        grep -E "✓|promoted" "$log_file" | sed 's/^/    /' >&2
        return 0
    fi
    cat "$log_file" >&2
    return 1
}

stop_clients() {
    touch "$WORK/clients.stop"
    local deadline=$((SECONDS + 60))
    while kill -0 "$CLIENTS_PID" 2>/dev/null; do
        [ $SECONDS -lt $deadline ] || die "clients did not stop within 60 s"
        sleep 0.1
    done
    wait "$CLIENTS_PID" || { tail -20 "$WORK/clients.err"; die "clients failed"; }
    CLIENTS_PID=""
    log "clients: $(cat "$WORK/clients.json")"
}

# result FIELD[.FIELD]: one value of the clients' verdict, e.g. lost or reconnect_latency.p99_ms.
result() {
    python3 -c 'import functools,json,sys; print(functools.reduce(lambda v, k: v[k], sys.argv[2].split("."), json.load(open(sys.argv[1]))))' \
        "$WORK/clients.json" "$1"
}

# check_no_failed_connect: not one connect attempt failed in the whole run (after stop_clients).
check_no_failed_connect() { check "zero failed connects" test "$(result failed_connects)" = 0; }

# check_nothing_lost: the clients' verdict on their sessions, after stop_clients.
check_nothing_lost() {
    check "every reconnect resumed its session" test "$(result not_resumed)" = 0
    check "every reply counted exactly once" test "$(result wrong_counts)" = 0
    check "no message lost (Redis count ≥ acknowledged)" test "$(result lost)" = 0
    check "no message doubled (Redis count ≤ acknowledged)" test "$(result doubled)" = 0
    check "every session accounted for" test "$(result sessions)" = "$CLIENTS"
    check "every client finished its last message" test "$(result unfinished)" = 0
}
