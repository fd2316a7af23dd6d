#!/usr/bin/env bash
# Redis Sentinel failover across hosts, on containers: the compose stack's Sentinel option
# (`STACK=compose REDIS_TOPOLOGY=sentinel scripts/stack.sh up`, docker/compose.sentinel.yml:
# 1 Redis primary + 2 replicas + 3 sentinels) with 2 app replicas per color, under a private
# project on free ports; every node, sentinel and replica in its own container with its own
# address on the project's `store` network (fixed by docker/compose.sentinel.yml). Clients of the one checker (`switchyard-load clients`)
# talk to each blue replica directly, then:
#   (a) the primary's container is killed (docker kill): the sentinels elect a replica, the
#       clients keep going, monitor.sh names the new primary; the killed node is started again
#       and must come back as a replica;
#   (b) the new primary is cut off (docker network disconnect from `store`, its only network)
#       while it still runs: it must stop accepting writes (min-replicas-to-write 1,
#       min-replicas-max-lag 2 s) and never acknowledge one (no replica answers its WAIT); the
#       sentinels elect another; reconnected at its address, it must come back as a replica.
# Asserted for each fault: 0 lost, 0 doubled, every session accounted for (counted on the
# primary the sentinels name at the end), every reconnect resumed; reported: the time from the
# fault to acknowledgements flowing again, the clients' longest gap between acknowledgements
# (p50/p99), and after how long the partitioned primary refused writes.
#
# usage: scripts/failover-hosts.sh [--help]
# environment: HOSTS_CLIENTS (clients per app replica, 50), HOSTS_PROJECT (the compose project,
#   switchyard-hosts-PID), HOSTS_MIN_REPLICAS_ACKED (the apps' REDIS_MIN_REPLICAS_ACKED, 1; 0
#   runs them without it — see the README for why the clients' verdict passes either way
#   here), KEEP_E2E=1 keeps the logs in artifacts/failover-hosts.
# Needs root and a Docker engine; builds the images (scripts/images.sh) and the release binaries
# when missing. About 2 minutes. `stack.sh down` removes the project's containers, networks and
# volumes.
set -euo pipefail
. "$(dirname "$0")/stack-lib.sh"
case "${1:-}" in
    "") ;;
    -h | --help) print_help "$0"; exit 0 ;;
    *) echo "failover-hosts: unknown argument '$1'" >&2; print_help "$0" >&2; exit 2 ;;
esac
cd "$ROOT"

CLIENTS=${HOSTS_CLIENTS:-50}
WORK=$(mktemp -d /tmp/switchyard-hosts.XXXXXX)
RUN_DIR=$WORK
export STACK=compose REDIS_TOPOLOGY=sentinel REPLICAS=2 COMPOSE_IMAGES=local HEALTH_INTERVAL=1s
export COMPOSE_PROJECT=${HOSTS_PROJECT:-switchyard-hosts-$$} STACK_DIR=$WORK/stack
export REDIS_MIN_REPLICAS_ACKED=${HOSTS_MIN_REPLICAS_ACKED:-1}
COUNTS=$COMPOSE_PROJECT-counts
GROUPS_PIDS=()
SENTINELS=()
declare -A CONTAINER NAME # a Redis node's address → its container id, its service name
. "$ROOT/scripts/e2e-lib.sh"

cleanup() {
    local rc=$?
    local pid
    for pid in "${GROUPS_PIDS[@]}"; do stop_pid "$pid"; done
    if [ -f "$STACK_DIR/$STACK/stack.env" ]; then
        if [ "$FAILURES" -gt 0 ] || [ "$rc" != 0 ] || [ "${KEEP_E2E:-}" ]; then
            "$ROOT/scripts/stack.sh" logs >"$RUN_DIR/compose.log" 2>&1 || true
        fi
        docker rm -f "$COUNTS" >/dev/null 2>&1 || true
        "$ROOT/scripts/stack.sh" down >"$RUN_DIR/down.log" 2>&1 || true
    fi
    if [ "$FAILURES" -gt 0 ] || [ "$rc" != 0 ] || [ "${KEEP_E2E:-}" ]; then
        WORK=$RUN_DIR keep_logs failover-hosts
    fi
    rm -rf "$RUN_DIR"
}
trap cleanup EXIT

# await SECONDS WHAT COMMAND...: polls COMMAND every 0.1 s until it succeeds, or dies naming WHAT.
await() {
    local secs=$1 what=$2
    local deadline=$((SECONDS + secs))
    shift 2
    until "$@"; do
        [ $SECONDS -lt $deadline ] || die "$what: not within $secs s"
        sleep 0.1
    done
}

node_of() { # node_of IP: the container of the Redis node at IP
    [ -n "${CONTAINER[$1]:-}" ] || die "no Redis node of this stack at '$1'"
    echo "${CONTAINER[$1]}"
}
# sentinel N: the container of sentinelN.
sentinel() { docker ps -q --filter "label=com.docker.compose.project=$COMPOSE_PROJECT" --filter "label=com.docker.compose.service=sentinel$1"; }

# sentinel_names N: the primary sentinel N names (asked inside its container).
sentinel_names() {
    docker exec "${SENTINELS[$1]}" redis-cli -p 26379 SENTINEL get-master-addr-by-name switchyard | head -n1 | tr -d '\r'
}
# primary: the primary the first sentinel names.
primary() { sentinel_names 1; }
primary_is_not() { local ip; ip=$(primary) && [ -n "$ip" ] && [ "$ip" != "$1" ]; }
# every_sentinel_names IP: the three sentinels agree on the primary.
every_sentinel_names() {
    local s
    for s in 1 2 3; do [ "$(sentinel_names "$s")" = "$1" ] || return 1; done
}
# sentinels_see_all: every sentinel knows the 2 other sentinels and 2 healthy replicas (they
# learn replicas from the primary's INFO every 10 s: a fault before that leaves a replica
# unknown, never reconfigured, and a primary with min-replicas-to-write and no replica).
sentinels_see_all() {
    local s out
    for s in 1 2 3; do
        out=$(docker exec "${SENTINELS[$s]}" redis-cli -p 26379 SENTINEL master switchyard | tr -d '\r') || return 1
        [ "$(sed -n '/^num-other-sentinels$/{n;p}' <<<"$out")" = 2 ] || return 1
        out=$(docker exec "${SENTINELS[$s]}" redis-cli -p 26379 SENTINEL replicas switchyard | tr -d '\r') || return 1
        [ "$(sed -n '/^flags$/{n;p}' <<<"$out" | grep -cx slave)" = 2 ] || return 1
    done
}
# is_replica_of NODE IP: NODE replicates from IP with its link up.
is_replica_of() {
    local info
    info=$(docker exec "$1" redis-cli INFO replication 2>/dev/null | tr -d '\r') || return 1
    grep -qx "role:slave" <<<"$info" && grep -qx "master_host:$2" <<<"$info" &&
        grep -qx "master_link_status:up" <<<"$info"
}
# has_replicas NODE N: NODE has N replicas connected.
has_replicas() {
    [ "$(docker exec "$1" redis-cli INFO replication 2>/dev/null | tr -d '\r' | sed -n 's/^connected_slaves://p')" = "$2" ]
}
ready() { curl -fs -o /dev/null --max-time 2 "$1/readyz"; }

# The two client groups, one per app replica, each in its own folder under RUN_DIR/PHASE.
start_groups() {
    local phase=$1 i
    GROUPS_PIDS=()
    for i in 1 2; do
        mkdir -p "$RUN_DIR/$phase/app$i"
        WORK=$RUN_DIR/$phase/app$i start_clients "${APP_URLS[$((i - 1))]/http:/ws:}/ws/chat/" "exec:$COUNTS"
        GROUPS_PIDS+=("$CLIENTS_PID")
    done
    CLIENTS_PID=""
}
acked_total() {
    local i sum=0
    for i in 1 2; do sum=$((sum + $(WORK=$RUN_DIR/$PHASE/app$i acked_so_far))); done
    echo "$sum"
}
acked_beyond() { [ "$(acked_total)" -ge "$1" ]; }
flow() { # flow: every client has about five more acknowledgements
    local before
    before=$(acked_total)
    await 30 "clients making progress" acked_beyond $((before + 2 * CLIENTS * 5))
}
# stop_groups: counts are read through redis-cli in a container sharing the network of the
# primary the sentinels name now; then each group's verdict is checked.
stop_groups() {
    local primary i
    primary=$(node_of "$(primary)")
    docker rm -f "$COUNTS" >/dev/null 2>&1 || true
    docker run -d --name "$COUNTS" --network "container:$primary" --entrypoint sleep \
        switchyard-redis:local 600 >/dev/null
    for i in 1 2; do touch "$RUN_DIR/$PHASE/app$i/clients.stop"; done
    for i in 1 2; do
        # Not in a pipe: stop_clients waits for its child.
        WORK=$RUN_DIR/$PHASE/app$i CLIENTS_PID=${GROUPS_PIDS[$((i - 1))]} stop_clients
        WORK=$RUN_DIR/$PHASE/app$i check_nothing_lost
        log "  $PHASE app$i: acked $(WORK=$RUN_DIR/$PHASE/app$i result messages_acked), reconnects $(WORK=$RUN_DIR/$PHASE/app$i result reconnects), store errors $(WORK=$RUN_DIR/$PHASE/app$i result store_errors), longest ack gap p50 $(WORK=$RUN_DIR/$PHASE/app$i result longest_ack_gap.p50_ms) ms p99 $(WORK=$RUN_DIR/$PHASE/app$i result longest_ack_gap.p99_ms) ms"
    done
    GROUPS_PIDS=()
    docker rm -f "$COUNTS" >/dev/null
}

# recovered_after WHEN_MS ACKED: waits until acknowledgements have grown by two per client past
# ACKED, and reports the time since WHEN_MS (epoch ms).
recovered_after() {
    await 60 "acknowledgements flowing again after the $PHASE" acked_beyond $(($2 + 2 * CLIENTS * 2))
    log "  $PHASE: acknowledgements flowing again $(($(date +%s%3N) - $1)) ms after the fault"
}

up() {
    local service name url ip
    [ "$(id -u)" = 0 ] || die "needs root (Docker, debootstrap for the images)"
    ensure_apt docker-compose docker-compose
    docker info >/dev/null 2>&1 || die "no Docker engine answers 'docker info'"
    if [ ! -x "$LOAD" ] || [ ! -x "$ROOT/target/release/switchyard" ]; then build_server_and_checker; fi
    TRAEFIK_PORT=$(free_port) TRAEFIK_API_PORT=$(free_port) PROMETHEUS_PORT=$(free_port) ALERTMANAGER_PORT=$(free_port)
    export TRAEFIK_PORT TRAEFIK_API_PORT PROMETHEUS_PORT ALERTMANAGER_PORT
    use_stack
    load_stack_env
    # `up` builds an app image only when it is missing: blue runs this checkout's binary.
    docker image inspect switchyard-os:bookworm switchyard-redis:local >/dev/null 2>&1 ||
        "$ROOT/scripts/images.sh"
    prepare_build
    compose build -q app_blue >"$RUN_DIR/build.log" 2>&1 || { cat "$RUN_DIR/build.log" >&2; die "the build of app_blue failed"; }
    log "STACK=compose REDIS_TOPOLOGY=sentinel REPLICAS=$REPLICAS scripts/stack.sh up (project $COMPOSE_PROJECT)"
    "$ROOT/scripts/stack.sh" up >"$RUN_DIR/stack-up.log" 2>&1 || { tail -n 30 "$RUN_DIR/stack-up.log" >&2; die "the Sentinel compose stack did not come up"; }
    STORE=${COMPOSE_PROJECT}_store
    load_stack_env # the STORE_PREFIX `up` picked
    for service in redis redis2 redis3; do
        name=$(docker ps -q --filter "label=com.docker.compose.project=$COMPOSE_PROJECT" --filter "label=com.docker.compose.service=$service")
        ip=$(docker inspect -f "{{(index .NetworkSettings.Networks \"$STORE\").IPAddress}}" "$name")
        [ -n "$ip" ] || die "no running container of $service on $STORE"
        CONTAINER[$ip]=$name NAME[$ip]=$service
    done
    SENTINELS=("" "$(sentinel 1)" "$(sentinel 2)" "$(sentinel 3)")
    APP_URLS=()
    while read -r name url; do APP_URLS+=("$url"); done <<<"$(color_instances blue)"
    [ "${#APP_URLS[@]}" = 2 ] || die "2 blue replicas expected, found ${#APP_URLS[@]}: ${APP_URLS[*]}"
    await 30 "both replicas in sync with redis" has_replicas "$(node_of "$STORE_PREFIX.11")" 2
    await 30 "the three sentinels naming redis ($STORE_PREFIX.11)" every_sentinel_names "$STORE_PREFIX.11"
    await 30 "the sentinels seeing each other and both replicas" sentinels_see_all
    for url in "${APP_URLS[@]}"; do await 60 "blue replica $url ready" ready "$url"; done
    log "stack up: primary redis ($STORE_PREFIX.11), blue replicas ${APP_URLS[*]}"
}

# monitor_names IP: monitor.sh's snapshot names IP as the Redis primary in use (read whole
# first: a grep -q that stops early would fail monitor.sh's writes under pipefail).
monitor_names() {
    "$ROOT/scripts/monitor.sh" --once >"$RUN_DIR/monitor.txt" 2>&1
    grep -q "^Redis primary in use: $1:6379 (sentinel)" "$RUN_DIR/monitor.txt"
}

kill_phase() {
    PHASE="kill"
    local old node when acked
    old=$(primary)
    node=$(node_of "$old")
    check "monitor.sh names $old as the primary in use" wait_until 60 "monitor.sh naming $old" monitor_names "$old"
    start_groups "$PHASE"
    flow
    acked=$(acked_total)
    when=$(date +%s%3N)
    log "(a) docker kill ${NAME[$old]} ($old) under $((2 * CLIENTS)) clients"
    docker kill "$node" >/dev/null
    await 30 "the sentinels electing a new primary" primary_is_not "$old"
    log "  sentinels elected $(primary) $(($(date +%s%3N) - when)) ms after the kill"
    recovered_after "$when" "$acked"
    local new
    new=$(primary)
    # Once a ready blue replica has reconnected to it (the first one monitor.sh asks).
    check "monitor.sh names the new primary $new" wait_until 60 "monitor.sh naming $new" monitor_names "$new"
    flow
    docker start "$node" >/dev/null
    await 60 "${NAME[$old]} back as a replica of ${NAME[$new]}" is_replica_of "$node" "$new"
    log "  ${NAME[$old]} is back as a replica of ${NAME[$new]} ($new)"
    await 30 "the sentinels seeing ${NAME[$old]} as a healthy replica" sentinels_see_all
    flow
    stop_groups
}

# probe_writes NODE VALUE: SET failover-hosts:probe VALUE and a WAIT for one replica (300 ms) on
# one connection inside NODE: prints "refused" (NOREPLICAS), "unacknowledged" (applied, no
# replica has it) or "acknowledged".
probe_writes() {
    local out
    out=$(printf 'SET failover-hosts:probe %s\nWAIT 1 300\n' "$2" |
        docker exec -i "$1" redis-cli 2>&1 | tr -d '\r')
    case "$out" in
        *NOREPLICAS*) echo refused ;;
        OK$'\n'0) echo unacknowledged ;;
        OK$'\n'[12]) echo acknowledged ;;
        *) echo "unexpected: $out" ;;
    esac
}

partition_phase() {
    PHASE=partition
    local old node when acked probe first_refusal="" acked_after_cut=0 unacked=0
    local before_cut=before-$$ last_unacked="" last_accepted=none
    old=$(primary)
    node=$(node_of "$old")
    check "the primary ${NAME[$old]} ($old) acknowledges writes before the cut" test "$(probe_writes "$node" "$before_cut")" = acknowledged
    start_groups "$PHASE"
    flow
    acked=$(acked_total)
    when=$(date +%s%3N)
    log "(b) docker network disconnect $STORE ${NAME[$old]} ($old), still running, under $((2 * CLIENTS)) clients"
    docker network disconnect "$STORE" "$node"
    # A client on the old primary's side of the cut (redis-cli inside its container).
    local deadline=$((SECONDS + 15))
    while [ -z "$first_refusal" ] && [ $SECONDS -lt $deadline ]; do
        probe=$(probe_writes "$node" "after-$unacked")
        case "$probe" in
            refused) first_refusal=$(($(date +%s%3N) - when)) ;;
            unacknowledged)
                last_unacked=after-$unacked unacked=$((unacked + 1))
                last_accepted=$(($(date +%s%3N) - when))
                ;;
            acknowledged) acked_after_cut=$((acked_after_cut + 1)) ;;
            *) log "  probe: $probe" ;;
        esac
    done
    check "the cut-off primary acknowledged no write (WAIT 1 answered 0)" test "$acked_after_cut" = 0
    check "the cut-off primary refused writes (NOREPLICAS) within 15 s" test -n "$first_refusal"
    log "  cut-off primary: $unacked probe writes applied but unacknowledged, the last one answered $last_accepted ms after the cut; refused from ${first_refusal:-never} ms"
    await 30 "the sentinels electing a new primary" primary_is_not "$old"
    log "  sentinels elected $(primary) $(($(date +%s%3N) - when)) ms after the cut"
    recovered_after "$when" "$acked"
    flow
    docker network connect --ip "$old" "$STORE" "$node"
    local new
    new=$(primary)
    await 60 "${NAME[$old]} back as a replica of ${NAME[$new]}" is_replica_of "$node" "$new"
    log "  ${NAME[$old]} reconnected: a replica of ${NAME[$new]} ($new)"
    await 30 "the sentinels seeing ${NAME[$old]} as a healthy replica" sentinels_see_all
    # What the cut-off primary applied without acknowledging is gone everywhere; the last
    # acknowledged value is what the new primary and the rejoined node hold.
    check "the write acknowledged before the cut survived on the new primary" \
        test "$(docker exec "$(node_of "$new")" redis-cli GET failover-hosts:probe | tr -d '\r')" = "$before_cut"
    check "the rejoined node dropped the writes it applied while cut off (last: ${last_unacked:-none})" \
        test "$(docker exec "$node" redis-cli GET failover-hosts:probe | tr -d '\r')" = "$before_cut"
    flow
    stop_groups
}

up
kill_phase
partition_phase
check_summary failover-hosts
