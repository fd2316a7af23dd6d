#!/usr/bin/env bash
# Redis Sentinel failover across hosts, on containers: 1 Redis primary + 2 replicas + 3
# sentinels + 2 app replicas, each in its own container with its own address on a private
# network made here (docker/compose.sentinel.yml, images from scripts/images.sh). Clients of
# the one checker (`switchyard-load clients`) talk to each app replica directly, then:
#   (a) the primary's container is killed (docker kill): the sentinels elect a replica, the
#       clients keep going; the killed node is started again and must come back as a replica;
#   (b) the new primary is cut off (docker network disconnect) while it still runs: it must
#       stop accepting writes (min-replicas-to-write 1, min-replicas-max-lag 2 s) and never
#       acknowledge one (no replica answers its WAIT); the sentinels elect another; reconnected,
#       it must come back as a replica.
# Asserted for each fault: 0 lost, 0 doubled, every session accounted for (counted on the
# primary the sentinels name at the end), every reconnect resumed; reported: the time from the
# fault to acknowledgements flowing again, the clients' longest gap between acknowledgements
# (p50/p99), and after how long the partitioned primary refused writes.
#
# usage: scripts/failover-hosts.sh [--help]
# environment: HOSTS_CLIENTS (clients per app replica, 50), HOSTS_PROJECT (container and network
#   name prefix, switchyard-hosts-PID), HOSTS_MIN_REPLICAS_ACKED (the apps'
#   REDIS_MIN_REPLICAS_ACKED, 1; 0 runs them without it — see the README for why the
#   clients' verdict passes either way here),
#   KEEP_E2E=1 keeps the logs in artifacts/failover-hosts.
# Needs root and a Docker engine; builds the images (scripts/images.sh) and the release binaries
# when missing. About 2 minutes. Removes every container and the network it made, by name.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/images.sh" # prepare_app_context
case "${1:-}" in
    "") ;;
    -h | --help) print_help "$0"; exit 0 ;;
    *) echo "failover-hosts: unknown argument '$1'" >&2; print_help "$0" >&2; exit 2 ;;
esac
cd "$ROOT"

CLIENTS=${HOSTS_CLIENTS:-50}
export HOSTS_PROJECT=${HOSTS_PROJECT:-switchyard-hosts-$$}
export HOSTS_NETWORK=$HOSTS_PROJECT-net
COUNTS=$HOSTS_PROJECT-counts
# The app image of this run, from this checkout's release binary (switchyard:latest is shared
# with whatever else runs scripts/images.sh on this engine).
export HOSTS_APP_IMAGE=$HOSTS_PROJECT-app:latest
COMPOSE_FILE=$ROOT/docker/compose.sentinel.yml
WORK=$(mktemp -d /tmp/switchyard-hosts.XXXXXX)
RUN_DIR=$WORK
GROUPS_PIDS=()
. "$ROOT/scripts/e2e-lib.sh"

compose() { docker-compose -p "$HOSTS_PROJECT" -f "$COMPOSE_FILE" "$@"; }

cleanup() {
    local rc=$?
    local pid
    for pid in "${GROUPS_PIDS[@]}"; do stop_pid "$pid"; done
    if [ "$FAILURES" -gt 0 ] || [ "$rc" != 0 ] || [ "${KEEP_E2E:-}" ]; then
        compose logs --no-color >"$RUN_DIR/compose.log" 2>&1 || true
        WORK=$RUN_DIR keep_logs failover-hosts
    fi
    docker rm -f "$COUNTS" >/dev/null 2>&1 || true
    compose down --remove-orphans --timeout 5 >/dev/null 2>&1 || true
    docker network rm "$HOSTS_NETWORK" >/dev/null 2>&1 || true
    docker image rm "$HOSTS_APP_IMAGE" >/dev/null 2>&1 || true
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

# make_network: a /24 no Docker network and no host route uses; sets NET_PREFIX.
make_network() {
    local third
    for third in $(shuf -i 1-250 -n 40); do
        ip route | grep -q "^10\.213\.$third\." && continue
        if docker network create --driver bridge --subnet "10.213.$third.0/24" "$HOSTS_NETWORK" >/dev/null 2>&1; then
            export NET_PREFIX=10.213.$third
            return
        fi
    done
    die "no free 10.213.X.0/24 subnet for $HOSTS_NETWORK"
}

node_of() { # node_of IP: the container name of the Redis node at IP
    case "$1" in
        "$NET_PREFIX.11") echo "$HOSTS_PROJECT-redis1" ;;
        "$NET_PREFIX.12") echo "$HOSTS_PROJECT-redis2" ;;
        "$NET_PREFIX.13") echo "$HOSTS_PROJECT-redis3" ;;
        *) die "no Redis node of this stack at '$1'" ;;
    esac
}

# primary_ip: the primary the first sentinel names (asked inside its container).
primary_ip() {
    docker exec "$HOSTS_PROJECT-sentinel1" redis-cli -p 26379 SENTINEL get-master-addr-by-name switchyard | head -n1
}
primary_is_not() { local ip; ip=$(primary_ip) && [ -n "$ip" ] && [ "$ip" != "$1" ]; }
# every_sentinel_names IP: the three sentinels agree on the primary.
every_sentinel_names() {
    local s
    for s in 1 2 3; do
        [ "$(docker exec "$HOSTS_PROJECT-sentinel$s" redis-cli -p 26379 SENTINEL get-master-addr-by-name switchyard | head -n1)" = "$1" ] || return 1
    done
}
# sentinels_see_all: every sentinel knows the 2 other sentinels and 2 healthy replicas (they
# learn replicas from the primary's INFO every 10 s: a fault before that leaves a replica
# unknown, never reconfigured, and a primary with min-replicas-to-write and no replica).
sentinels_see_all() {
    local s out
    for s in 1 2 3; do
        out=$(docker exec "$HOSTS_PROJECT-sentinel$s" redis-cli -p 26379 SENTINEL master switchyard | tr -d '\r') || return 1
        [ "$(sed -n '/^num-other-sentinels$/{n;p}' <<<"$out")" = 2 ] || return 1
        out=$(docker exec "$HOSTS_PROJECT-sentinel$s" redis-cli -p 26379 SENTINEL replicas switchyard | tr -d '\r') || return 1
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
ready() { curl -fs -o /dev/null --max-time 2 "http://$1:8000/readyz"; }

# The two client groups, one per app replica, each in its own folder under RUN_DIR/PHASE.
start_groups() {
    local phase=$1 i
    GROUPS_PIDS=()
    for i in 1 2; do
        mkdir -p "$RUN_DIR/$phase/app$i"
        WORK=$RUN_DIR/$phase/app$i start_clients "ws://$NET_PREFIX.2$i:8000/ws/chat/" "exec:$COUNTS"
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
    primary=$(node_of "$(primary_ip)")
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
    [ "$(id -u)" = 0 ] || die "needs root (Docker, debootstrap for the images)"
    ensure_apt docker-compose docker-compose
    docker info >/dev/null 2>&1 || die "no Docker engine answers 'docker info'"
    if [ ! -x "$LOAD" ] || [ ! -x "$ROOT/target/release/switchyard" ]; then build_server_and_checker; fi
    docker image inspect switchyard-os:bookworm switchyard-redis:local >/dev/null 2>&1 ||
        "$ROOT/scripts/images.sh"
    prepare_app_context "$RUN_DIR/app"
    docker build -q --build-arg BASE=switchyard-os:bookworm -t "$HOSTS_APP_IMAGE" "$RUN_DIR/app" \
        >/dev/null 2>"$RUN_DIR/app.err" || { cat "$RUN_DIR/app.err" >&2; die "docker build of $HOSTS_APP_IMAGE failed"; }
    make_network
    log "network $HOSTS_NETWORK ($NET_PREFIX.0/24); starting 3 Redis, 3 sentinels, 2 apps"
    compose up -d >"$RUN_DIR/up.log" 2>&1 || { cat "$RUN_DIR/up.log" >&2; die "docker-compose up failed"; }
    await 30 "both replicas in sync with redis1" has_replicas "$HOSTS_PROJECT-redis1" 2
    await 30 "the three sentinels naming redis1" every_sentinel_names "$NET_PREFIX.11"
    await 30 "the sentinels seeing each other and both replicas" sentinels_see_all
    await 60 "app1 ready" ready "$NET_PREFIX.21"
    await 30 "app2 ready" ready "$NET_PREFIX.22"
    log "stack up: primary $NET_PREFIX.11, apps $NET_PREFIX.21 and .22"
}

kill_phase() {
    PHASE="kill"
    local old node when acked
    old=$(primary_ip)
    node=$(node_of "$old")
    start_groups "$PHASE"
    flow
    acked=$(acked_total)
    when=$(date +%s%3N)
    log "(a) docker kill $node ($old) under $((2 * CLIENTS)) clients"
    docker kill "$node" >/dev/null
    await 30 "the sentinels electing a new primary" primary_is_not "$old"
    log "  sentinels elected $(primary_ip) $(($(date +%s%3N) - when)) ms after the kill"
    recovered_after "$when" "$acked"
    flow
    docker start "$node" >/dev/null
    local new
    new=$(primary_ip)
    await 60 "$node back as a replica of $new" is_replica_of "$node" "$new"
    log "  $node is back as a replica of $new"
    await 30 "the sentinels seeing $node as a healthy replica" sentinels_see_all
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
    old=$(primary_ip)
    node=$(node_of "$old")
    check "the primary $node acknowledges writes before the cut" test "$(probe_writes "$node" "$before_cut")" = acknowledged
    start_groups "$PHASE"
    flow
    acked=$(acked_total)
    when=$(date +%s%3N)
    log "(b) docker network disconnect $node ($old), still running, under $((2 * CLIENTS)) clients"
    docker network disconnect "$HOSTS_NETWORK" "$node"
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
    log "  sentinels elected $(primary_ip) $(($(date +%s%3N) - when)) ms after the cut"
    recovered_after "$when" "$acked"
    flow
    docker network connect --ip "$old" "$HOSTS_NETWORK" "$node"
    local new
    new=$(primary_ip)
    await 60 "$node back as a replica of $new" is_replica_of "$node" "$new"
    log "  $node reconnected: a replica of $new"
    await 30 "the sentinels seeing $node as a healthy replica" sentinels_see_all
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
