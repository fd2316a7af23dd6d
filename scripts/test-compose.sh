#!/usr/bin/env bash
# The compose stack, checked and then run for real on the local Docker engine:
#   1. static: `docker-compose config` of compose.yml (alone and with the local profile) and
#      every file it and the Dockerfiles refer to; the topology options rendered (REPLICAS,
#      REDIS_TOPOLOGY=sentinel: scripts/check-compose.py), and the settings a stack refuses
#      (REDIS_TOPOLOGY=cluster, a REPLICAS that is no count, Sentinel on Swarm) refused;
#   2. live: images built without a registry (scripts/images.sh), the stack up in containers
#      under a private project name on free ports (Redis, 2 blue, 2 green, Traefik,
#      Prometheus), a few hundred clients through the containerised Traefik sending numbered
#      messages while STACK=compose scripts/promote.sh goes blue → green → blue, then one
#      container of the active color killed (docker kill): its clients reconnect to the
#      surviving replica. Asserted like test-bluegreen.sh (0 failed connects, all resumed,
#      0 lost, 0 doubled, the old color's replicas exited 0 after their drain), Prometheus
#      scraping every replica, and `down` leaving no container, network or volume behind;
#   3. Swarm: the same files deployed on a one-node swarm (STACK=swarm; `docker swarm init`
#      when the engine is not in one, left again at the end) with REPLICAS=1, a promote under
#      100 clients;
#   4. the compose stack's Sentinel option (REDIS_TOPOLOGY=sentinel): a Redis failover across
#      container hosts, the primary killed then cut off (scripts/failover-hosts.sh).
# The live part is skipped, saying so, where no Docker engine answers (the process stack needs
# none); REQUIRE_DOCKER=1 makes that a failure. It cleans up after itself even when it fails.
set -euo pipefail
. "$(dirname "$0")/stack-lib.sh"
cd "$ROOT"

CLIENTS=${E2E_CLIENTS:-200}
SWARM_CLIENTS=${E2E_SWARM_CLIENTS:-100}
WORK=$(mktemp -d /tmp/switchyard-compose.XXXXXX)
PROJECT=switchyard-test-$$
export STACK=compose COMPOSE_PROJECT=$PROJECT STACK_DIR=$WORK/stack HEALTH_INTERVAL=1s
. "$ROOT/scripts/e2e-lib.sh"

cleanup() {
    local rc=$?
    stop_clients_now
    if [ -f "$STACK_DIR/$STACK/stack.env" ]; then
        if [ "$FAILURES" -gt 0 ] || [ "$rc" != 0 ]; then
            "$ROOT/scripts/stack.sh" logs >"$WORK/compose.log" 2>&1 || true
        fi
        "$ROOT/scripts/stack.sh" down >"$WORK/down.log" 2>&1 || true
    fi
    if [ "$FAILURES" -gt 0 ] || [ "$rc" != 0 ] || [ "${KEEP_E2E:-}" ]; then
        keep_logs compose
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT

static_checks() {
    ensure_apt docker-compose docker-compose
    log "docker-compose config --quiet (compose.yml, and with docker/compose.local.yml)"
    docker-compose -f compose.yml config --quiet
    # The local build context is made by scripts/images.sh; a fresh clone has none yet,
    # and docker-compose refuses a missing build path even when only checking the file.
    APP_CONTEXT="$ROOT" docker-compose -f compose.yml -f docker/compose.local.yml config --quiet
    log "files and settings the Docker side refers to, the topology options rendered"
    # Debian's python3 has PyYAML (a docker-compose dependency).
    /usr/bin/python3 "$ROOT/scripts/check-compose.py" "$ROOT"
    log "settings the container stacks refuse, before touching anything"
    check "STACK=compose refuses REDIS_TOPOLOGY=cluster, saying what it runs" \
        refuses "REDIS_TOPOLOGY=cluster is not available with STACK=compose: it runs single" STACK=compose REDIS_TOPOLOGY=cluster
    check "STACK=compose refuses REPLICAS=0" \
        refuses "REPLICAS is a number of app replicas per color (1 or more), not '0'" STACK=compose REPLICAS=0
    check "STACK=swarm refuses REDIS_TOPOLOGY=sentinel, naming the stack that runs it" \
        refuses "REDIS_TOPOLOGY=sentinel is not available with STACK=swarm" STACK=swarm REDIS_TOPOLOGY=sentinel
}

# refuses TEXT SETTING...: `stack.sh status` with the SETTINGs fails saying TEXT (status: a
# setting let through would start nothing).
refuses() {
    local text=$1 out
    shift
    out=$(env "$@" STACK_DIR="$WORK/refused" COMPOSE_PROJECT="$PROJECT-refused" "$ROOT/scripts/stack.sh" status 2>&1) && return 1
    grep -qF "$text" <<<"$out" || { printf '    %s\n' "$out" >&2; return 1; }
}

# status_names PRIMARY: `stack.sh status` names PRIMARY as the Redis primary in use.
status_names() {
    local out
    out=$("$ROOT/scripts/stack.sh" status 2>&1)
    grep -qF "primary in use: $1" <<<"$out" || { grep -F 'primary in use' <<<"$out" >&2; return 1; }
}

engine_answers() { command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; }

# project_objects: every container, network and volume of the test's compose project.
project_objects() {
    local label=com.docker.compose.project=$PROJECT
    docker ps -aq --filter "label=$label"
    docker network ls -q --filter "label=$label"
    docker volume ls -q --filter "label=$label"
}

service_containers() { docker ps -aq --filter "label=com.docker.compose.project=$PROJECT" --filter "label=com.docker.compose.service=$1"; }
running_containers() { docker ps -q --filter "label=com.docker.compose.project=$PROJECT" --filter "label=com.docker.compose.service=$1"; }

# drained_cleanly COLOR: every replica of COLOR has stopped, each with exit status 0.
drained_cleanly() {
    local container any=""
    for container in $(service_containers "app_$1"); do
        [ "$(docker inspect -f '{{.State.Running}} {{.State.ExitCode}}' "$container")" = "false 0" ] || return 1
        any=1
    done
    [ -n "$any" ]
}

# prometheus_scrapes COLOR N: Prometheus has N healthy targets of COLOR.
prometheus_scrapes() {
    curl -fsS --max-time 2 "http://127.0.0.1:$PROMETHEUS_PORT/api/v1/query" \
        --data-urlencode "query=sum(up{job=\"switchyard\",color=\"$1\"})" |
        python3 -c 'import json,sys; r=json.load(sys.stdin)["data"]["result"]; sys.exit(0 if r and int(float(r[0]["value"][1])) == int(sys.argv[1]) else 1)' "$2"
}

# scrapes_within SECONDS COLOR N: prometheus_scrapes, waited for; on a timeout, what
# Prometheus has for that color.
scrapes_within() {
    wait_until "$1" "Prometheus to scrape $3 $2" prometheus_scrapes "$2" "$3" && return 0
    curl -sS --max-time 2 "http://127.0.0.1:$PROMETHEUS_PORT/api/v1/targets?state=active" |
        python3 -c 'import json,sys; [print("    target", t["scrapeUrl"], t["health"], t["lastError"]) for t in json.load(sys.stdin)["data"]["activeTargets"] if t["labels"].get("color") == sys.argv[1]]' "$2" >&2 || true
    return 1
}

bring_up() {
    TRAEFIK_PORT=$(free_port) TRAEFIK_API_PORT=$(free_port) PROMETHEUS_PORT=$(free_port) ALERTMANAGER_PORT=$(free_port)
    export TRAEFIK_PORT TRAEFIK_API_PORT PROMETHEUS_PORT ALERTMANAGER_PORT
    local began=$SECONDS
    "$ROOT/scripts/stack.sh" up >"$WORK/stack-up.log" 2>&1 || { cat "$WORK/stack-up.log" >&2; die "the compose stack did not come up"; }
    grep -E 'images ready|: built|imported' "$WORK/stack-up.log" | sed 's/^/    /' >&2 || true
    log "compose project $PROJECT up in $((SECONDS - began)) s: Traefik :$TRAEFIK_PORT, API :$TRAEFIK_API_PORT, Prometheus :$PROMETHEUS_PORT"
}

# kill_one_replica COLOR: docker kill one running replica of COLOR; its clients must come back
# through Traefik on the surviving one.
kill_one_replica() {
    local victim closes_before deadline
    victim=$(running_containers "app_$1" | head -n 1)
    closes_before=$(closes_so_far)
    docker kill "$victim" >/dev/null
    log "  killed $(docker inspect -f '{{.Name}}' "$victim" | sed 's|^/||')"
    deadline=$((SECONDS + 20))
    until [ "$(closes_so_far)" -gt "$closes_before" ]; do
        [ $SECONDS -lt $deadline ] || { log "  no client noticed the kill within 20 s"; return 1; }
        sleep 0.1
    done
    let_traffic_flow
    [ "$(running_containers "app_$1" | wc -l)" = 1 ]
}

# swarm_test: the same files on a one-node Swarm (STACK=swarm): a promote under load, nothing
# lost, and `down` leaves the stack and (if it started one) the swarm gone.
swarm_test() {
    local swarm_before gwbridge_before
    swarm_before=$(docker info -f '{{.Swarm.LocalNodeState}}')
    gwbridge_before=$(gwbridge)
    export STACK=swarm COMPOSE_PROJECT=$PROJECT-swarm REPLICAS=1
    CLIENTS=$SWARM_CLIENTS
    log "Swarm (engine's swarm: $swarm_before), REPLICAS=1"
    bring_up
    check "Swarm runs one blue replica (REPLICAS=1)" test "$(swarm_tasks app_blue)" = 1
    start_clients "ws://127.0.0.1:$TRAEFIK_PORT/ws/chat/" "exec:$(docker ps -q --filter "label=com.docker.swarm.service.name=${COMPOSE_PROJECT}_redis")"
    let_traffic_flow
    check "promote to green through Swarm succeeds" promote_ok green
    check "Swarm runs one green replica (REPLICAS=1)" test "$(swarm_tasks app_green)" = 1
    let_traffic_flow
    stop_clients
    check "every client reconnected (Swarm promote)" test "$(result reconnects)" -ge "$CLIENTS"
    check_no_failed_connect
    check_nothing_lost
    log "Swarm reconnects: p50 $(result reconnect_latency.p50_ms) ms, p99 $(result reconnect_latency.p99_ms) ms"
    "$ROOT/scripts/stack.sh" down >"$WORK/swarm-down.log" 2>&1 || { cat "$WORK/swarm-down.log" >&2; die "stack.sh down (swarm) failed"; }
    check "Swarm down leaves no container, network or volume of the stack" \
        test -z "$(docker ps -aq --filter "label=com.docker.stack.namespace=$COMPOSE_PROJECT")$(docker network ls -q --filter "label=com.docker.stack.namespace=$COMPOSE_PROJECT")$(docker volume ls -q --filter "label=com.docker.stack.namespace=$COMPOSE_PROJECT")"
    check "the engine's swarm is as it was ($swarm_before)" test "$(docker info -f '{{.Swarm.LocalNodeState}}')" = "$swarm_before"
    check "the engine's docker_gwbridge is as it was (${gwbridge_before:-absent})" test "$(gwbridge)" = "$gwbridge_before"
}

# swarm_tasks SERVICE: how many containers of the swarm stack's SERVICE run.
swarm_tasks() { docker ps -q --filter "label=com.docker.swarm.service.name=${COMPOSE_PROJECT}_$1" | wc -l; }

# gwbridge: the id of the network `docker swarm init` creates, if it exists.
gwbridge() { docker network ls -q --filter name=^docker_gwbridge$; }

static_checks
if ! engine_answers; then
    [ -z "${REQUIRE_DOCKER:-}" ] || die "REQUIRE_DOCKER is set but no Docker engine answers 'docker info'"
    log "SKIPPED the live compose test: no Docker engine answers 'docker info' (static checks passed)"
    echo "1 passed, 0 failed, 1 skipped"
    exit 0
fi

ensure_venv
build_server_and_checker
bring_up
# Redis is on the internal `store` network only: its sessions are counted with redis-cli inside
# its container, as on Swarm.
start_clients "ws://127.0.0.1:$TRAEFIK_PORT/ws/chat/" "exec:$(running_containers redis)"

check "status names the Redis in use (single: compose.yml's redis)" status_names "redis:6379 (single)"
log "Prometheus scrapes every replica"
check "Prometheus scrapes both blue replicas" scrapes_within 30 blue 2
check "Prometheus scrapes both green replicas" scrapes_within 30 green 2

log "promote blue → green under load (STACK=compose)"
let_traffic_flow
check "promote to green succeeds" promote_ok green
check "both blue replicas drained and exited 0" drained_cleanly blue
log "promote green → blue under load"
let_traffic_flow
check "promote back to blue succeeds" promote_ok blue
check "both green replicas drained and exited 0" drained_cleanly green
let_traffic_flow

check "zero failed connects through both promotes" test "$(failed_connects_so_far)" = 0

# A killed replica is a fault, not a deploy: until Traefik's health check marks it down, a
# reconnect can still be sent to it and time out; the client tries again. Counted, not failed.
log "docker kill one blue replica under load"
check "its clients resume on the surviving replica" kill_one_replica blue

stop_clients
check "every client reconnected at least twice (two promotes)" test "$(result reconnects)" -ge $((CLIENTS * 2))
log "failed connect attempts after the kill, each retried: $(result failed_connects)"
check_nothing_lost
log "reconnects: p50 $(result reconnect_latency.p50_ms) ms, p99 $(result reconnect_latency.p99_ms) ms, max $(result reconnect_latency.max_ms) ms"

log "down"
"$ROOT/scripts/stack.sh" down >"$WORK/down.log" 2>&1 || { cat "$WORK/down.log" >&2; die "stack.sh down failed"; }
check "down leaves no container, network or volume of the project" test -z "$(project_objects)"

swarm_test

log "the Sentinel option: a Redis failover across container hosts (scripts/failover-hosts.sh)"
check "STACK=compose REDIS_TOPOLOGY=sentinel: the primary killed, then cut off; nothing lost or doubled" \
    "$ROOT/scripts/failover-hosts.sh"
check_summary "compose e2e"
