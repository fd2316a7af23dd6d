# shellcheck shell=bash
# The local stack's Redis in one of three topologies (REDIS_TOPOLOGY), started as processes on
# loopback from Debian's packages, each with its own directory and append-only file:
#   single    one redis-server on REDIS_PORT (or an existing one named by REDIS_URL);
#   sentinel  a primary and two replicas (REDIS_PORTS, 3) watched by three sentinels
#             (SENTINEL_PORTS, 3; quorum 2) under REDIS_MASTER_NAME; every node refuses writes
#             when no replica has acknowledged it for REDIS_MIN_REPLICAS_MAX_LAG seconds;
#   cluster   three primaries with CLUSTER_REPLICAS replicas each (1: REDIS_PORTS, 6; 2: 9;
#             their cluster bus on CLUSTER_BUS_PORTS), made by `redis-cli --cluster create
#             --cluster-replicas CLUSTER_REPLICAS`.
# Sourced by stack-local.sh, which loads (REDIS_PORT first) and saves these settings with the
# stack's.
# shellcheck disable=SC2153 # REDIS_PORT comes from stack-local.sh's load_stack_env

# shellcheck disable=SC2034 # saved by stack-local.sh's save_stack_env
REDIS_SETTINGS=(REDIS_TOPOLOGY REDIS_PORTS SENTINEL_PORTS CLUSTER_BUS_PORTS REDIS_MASTER_NAME
    REDIS_MIN_REPLICAS_ACKED REDIS_MIN_REPLICAS_MAX_LAG SENTINEL_DOWN_AFTER_MS
    SENTINEL_FAILOVER_TIMEOUT_MS CLUSTER_NODE_TIMEOUT_MS CLUSTER_REPLICAS)

# The variables the server reads to find its Redis: unset before each app starts, so only
# the stack's topology reaches it.
REDIS_CLIENT_VARIABLES=(REDIS_URL REDIS_TOPOLOGY REDIS_SENTINELS REDIS_MASTER_NAME
    REDIS_CLUSTER_NODES REDIS_MIN_REPLICAS_ACKED)

# port_run FIRST COUNT STEP: COUNT ports from FIRST, STEP apart.
port_run() { seq -s ' ' "$1" "$3" $(($1 + ($2 - 1) * $3)); }

# words LIST: LIST's words (commas or spaces between them), one per line.
words() { tr ', ' '\n' <<<"$1" | sed '/^$/d'; }

# numbered PREFIX LIST [BEFORE]: "PREFIX-N BEFOREPORT" for the Nth port of LIST, from 1.
numbered() { words "$2" | awk -v prefix="$1" -v before="${3:-}" '{ print prefix "-" NR " " before $0 }'; }

# want_ports NAME COUNT: the variable NAME holds COUNT port numbers, or the stack stops.
want_ports() {
    local name=$1 count=$2 port
    [ "$(words "${!name}" | wc -l)" = "$count" ] ||
        die "$name needs $count ports for REDIS_TOPOLOGY=$REDIS_TOPOLOGY, not '${!name}'"
    for port in $(words "${!name}"); do
        if ! [[ "$port" =~ ^[0-9]+$ ]] || [ "$port" -lt 1 ] || [ "$port" -gt 65535 ]; then die "$name has '$port', not a port"; fi
    done
}

# redis_settings: the topology's settings from the environment (or stack.env), checked.
redis_settings() {
    REDIS_TOPOLOGY=${REDIS_TOPOLOGY:-single}
    REDIS_MASTER_NAME=${REDIS_MASTER_NAME:-switchyard}
    REDIS_MIN_REPLICAS_ACKED=${REDIS_MIN_REPLICAS_ACKED:-}
    REDIS_MIN_REPLICAS_MAX_LAG=${REDIS_MIN_REPLICAS_MAX_LAG:-2}
    SENTINEL_DOWN_AFTER_MS=${SENTINEL_DOWN_AFTER_MS:-1000}
    SENTINEL_FAILOVER_TIMEOUT_MS=${SENTINEL_FAILOVER_TIMEOUT_MS:-5000}
    CLUSTER_NODE_TIMEOUT_MS=${CLUSTER_NODE_TIMEOUT_MS:-2000}
    CLUSTER_REPLICAS=${CLUSTER_REPLICAS:-1}
    case "$REDIS_TOPOLOGY" in
        single)
            REDIS_PORTS=$REDIS_PORT SENTINEL_PORTS="" CLUSTER_BUS_PORTS=""
            ;;
        sentinel)
            REDIS_PORTS=${REDIS_PORTS:-$(port_run "$REDIS_PORT" 3 1)}
            SENTINEL_PORTS=${SENTINEL_PORTS:-$(port_run $((REDIS_PORT + 20000)) 3 1)}
            CLUSTER_BUS_PORTS=""
            want_ports REDIS_PORTS 3
            want_ports SENTINEL_PORTS 3
            ;;
        cluster)
            [[ "$CLUSTER_REPLICAS" =~ ^[12]$ ]] || die "CLUSTER_REPLICAS is 1 or 2 (replicas per primary), not '$CLUSTER_REPLICAS'"
            REDIS_PORTS=${REDIS_PORTS:-$(port_run "$REDIS_PORT" "$(cluster_size)" 1)}
            want_ports REDIS_PORTS "$(cluster_size)"
            CLUSTER_BUS_PORTS=${CLUSTER_BUS_PORTS:-$(for port in $(words "$REDIS_PORTS"); do echo $((port + 10000)); done | paste -sd' ')}
            SENTINEL_PORTS=""
            want_ports CLUSTER_BUS_PORTS "$(cluster_size)"
            ;;
        *) die "REDIS_TOPOLOGY is single, sentinel or cluster, not '$REDIS_TOPOLOGY'" ;;
    esac
    [[ "$REDIS_MIN_REPLICAS_ACKED" =~ ^[0-9]*$ ]] || die "REDIS_MIN_REPLICAS_ACKED is a number, not '$REDIS_MIN_REPLICAS_ACKED'"
}

# cluster_size: the cluster's nodes, 3 primaries and CLUSTER_REPLICAS replicas of each.
cluster_size() { echo $((3 * (1 + ${CLUSTER_REPLICAS:-1}))); }

# redis_nodes: "NAME PORT" for every redis-server of the topology (sentinels apart).
redis_nodes() {
    if [ "$REDIS_TOPOLOGY" = single ]; then
        echo "redis $REDIS_PORT"
        return
    fi
    numbered redis "$REDIS_PORTS"
}

# sentinel_nodes: "NAME PORT" for every sentinel (none outside the sentinel topology).
sentinel_nodes() { numbered sentinel "$SENTINEL_PORTS"; }

# joined LIST: 127.0.0.1:PORT for each port of LIST, separated by commas.
joined() { words "$1" | sed 's/^/127.0.0.1:/' | paste -sd,; }

# redis_app_env: the VAR=VALUE words that point an app (or `switchyard migrate`) at the
# topology, in the server's configuration contract.
redis_app_env() {
    case "$REDIS_TOPOLOGY" in
        single) echo "REDIS_URL=$REDIS_URL" ;;
        sentinel) echo "REDIS_TOPOLOGY=sentinel REDIS_SENTINELS=$(joined "$SENTINEL_PORTS") REDIS_MASTER_NAME=$REDIS_MASTER_NAME" ;;
        cluster) echo "REDIS_TOPOLOGY=cluster REDIS_CLUSTER_NODES=$(joined "$REDIS_PORTS")" ;;
    esac
    if [ -n "$REDIS_MIN_REPLICAS_ACKED" ]; then echo "REDIS_MIN_REPLICAS_ACKED=$REDIS_MIN_REPLICAS_ACKED"; fi
}

# redis_env_command: into the array REDIS_ENV, an `env` command line that sets the topology's
# variables and unsets the contract's others (whatever the caller's environment holds).
redis_env_command() {
    local name settings
    REDIS_ENV=(env)
    for name in "${REDIS_CLIENT_VARIABLES[@]}"; do REDIS_ENV+=(-u "$name"); done
    read -ra settings <<<"$(redis_app_env | paste -sd' ')"
    REDIS_ENV+=("${settings[@]}")
}

# with_redis_env COMMAND...: COMMAND pointed at the topology.
with_redis_env() {
    redis_env_command
    "${REDIS_ENV[@]}" "$@"
}

# server_reads_topology BINARY: the switchyard BINARY reads the variables of REDIS_TOPOLOGY
# (a single Redis, every build does).
server_reads_topology() {
    local help
    help=$("$1" serve --help 2>&1) || return 1
    case "$REDIS_TOPOLOGY" in
        single) return 0 ;;
        sentinel) grep -q REDIS_SENTINELS <<<"$help" ;;
        cluster) grep -q REDIS_CLUSTER_NODES <<<"$help" ;;
    esac
}

redis_ping() { redis-cli -p "$1" ping | grep -q PONG; }

# ── starting

# start_redis_node NAME PORT ARGS...: a redis-server with the stack's persistence, unless running.
start_redis_node() {
    local name=$1 port=$2
    shift 2
    if is_running "$name"; then
        log "$name: already running (pid $(pid_of "$name"))"
        return
    fi
    mkdir -p "$STACK_DIR/$name"
    launch "$name" ":$port" redis-server --port "$port" --bind 127.0.0.1 --dir "$STACK_DIR/$name" \
        --appendonly yes --save '' "$@"
}

# wait_nodes_answer: every redis-server of the topology answers PING.
wait_nodes_answer() {
    local name port
    while read -r name port; do
        wait_until 10 "$name to answer" redis_ping "$port" || die "$name did not start: see $LOG_DIR/$name.log"
    done <<<"$(redis_nodes)"
}

start_redis() {
    case "$REDIS_TOPOLOGY" in
        single) start_single_redis ;;
        sentinel) start_sentinel_redis ;;
        cluster) start_cluster_redis ;;
    esac
    log "redis ($REDIS_TOPOLOGY): primary $(redis_primaries | paste -sd\;)"
}

start_single_redis() {
    if [ -n "${REDIS_URL_GIVEN:-}" ]; then
        log "redis: using REDIS_URL=$REDIS_URL"
        return
    fi
    STACK_REDIS_STARTED=1
    start_redis_node redis "$REDIS_PORT"
    wait_nodes_answer
}

# The primary a sentinel stack starts with: the one its sentinels name if any runs (a node
# restarted after a failover rejoins as a replica), else the one they named when the stack
# went down, else the first.
recorded_primary_port() {
    local port
    port=$(sentinel_primary 2>/dev/null) || port=$(cat "$STACK_DIR/sentinel-primary" 2>/dev/null) || true
    port=${port##*:}
    if words "$REDIS_PORTS" | grep -qx "${port:-none}"; then echo "$port"; else words "$REDIS_PORTS" | head -n 1; fi
}

start_sentinel_redis() {
    local primary name port replicas=()
    STACK_REDIS_STARTED=1
    primary=$(recorded_primary_port)
    replicas=(--min-replicas-to-write 1 --min-replicas-max-lag "$REDIS_MIN_REPLICAS_MAX_LAG")
    while read -r name port; do
        if [ "$port" = "$primary" ]; then
            start_redis_node "$name" "$port" "${replicas[@]}"
        else
            start_redis_node "$name" "$port" "${replicas[@]}" --replicaof 127.0.0.1 "$primary"
        fi
    done <<<"$(redis_nodes)"
    wait_nodes_answer
    wait_until 30 "both replicas to sync with 127.0.0.1:$primary" primary_has_replicas "$primary" 2 ||
        die "the replicas did not sync: see $LOG_DIR/redis-*.log"
    while read -r name port; do
        is_running "$name" && continue
        mkdir -p "$STACK_DIR/$name"
        cat >"$STACK_DIR/$name/sentinel.conf" <<CONF
port $port
bind 127.0.0.1
dir $STACK_DIR/$name
sentinel monitor $REDIS_MASTER_NAME 127.0.0.1 $primary 2
sentinel down-after-milliseconds $REDIS_MASTER_NAME $SENTINEL_DOWN_AFTER_MS
sentinel failover-timeout $REDIS_MASTER_NAME $SENTINEL_FAILOVER_TIMEOUT_MS
sentinel parallel-syncs $REDIS_MASTER_NAME 1
CONF
        launch "$name" ":$port" redis-sentinel "$STACK_DIR/$name/sentinel.conf"
    done <<<"$(sentinel_nodes)"
    while read -r name port; do
        wait_until 30 "$name to know the other sentinels and both replicas" sentinel_sees_all "$port" ||
            die "$name does not see the whole topology: see $LOG_DIR/$name.log"
    done <<<"$(sentinel_nodes)"
}

# primary_has_replicas PORT N: the node on PORT is a primary with N replicas online.
primary_has_replicas() {
    [ "$(redis-cli -p "$1" info replication | grep -c '^slave[0-9]*:.*state=online')" -ge "$2" ]
}

# sentinel_field PORT FIELD: FIELD of `SENTINEL MASTER` as the sentinel on PORT sees it.
sentinel_field() {
    redis-cli -p "$1" --raw sentinel master "$REDIS_MASTER_NAME" | awk -v f="$2" 'found { print; exit } $0 == f { found = 1 }'
}

sentinel_sees_all() {
    [ "$(sentinel_field "$1" num-other-sentinels)" = 2 ] && [ "$(sentinel_field "$1" num-slaves)" = 2 ]
}

start_cluster_redis() {
    local name port bus nodes=() first
    STACK_REDIS_STARTED=1
    # shellcheck disable=SC2046 # the bus ports, one per node in order
    set -- $(words "$CLUSTER_BUS_PORTS")
    while read -r name port; do
        bus=$1
        shift
        # A replica's full sync starts at once (Redis waits 5 s by default for more replicas
        # to share a diskless transfer): a restarted node is back as a replica seconds sooner.
        # The shards that keep their primary go on serving while a failed one is replaced.
        start_redis_node "$name" "$port" --cluster-enabled yes --cluster-config-file nodes.conf \
            --cluster-node-timeout "$CLUSTER_NODE_TIMEOUT_MS" --cluster-port "$bus" \
            --repl-diskless-sync-delay 0 --cluster-require-full-coverage no
        nodes+=("127.0.0.1:$port")
    done <<<"$(redis_nodes)"
    wait_nodes_answer
    first=$(words "$REDIS_PORTS" | head -n 1)
    if [ "$(cluster_info "$first" cluster_known_nodes)" != "$(cluster_size)" ]; then
        log "redis: creating the cluster (3 primaries, $CLUSTER_REPLICAS replicas each)"
        redis-cli --cluster create "${nodes[@]}" --cluster-replicas "$CLUSTER_REPLICAS" --cluster-yes >>"$LOG_DIR/cluster-create.log" 2>&1 ||
            die "redis-cli --cluster create failed: see $LOG_DIR/cluster-create.log"
    fi
    for port in $(words "$REDIS_PORTS"); do
        wait_until 30 "127.0.0.1:$port to report cluster_state:ok" cluster_ok "$port" ||
            die "the cluster did not become ok: see $LOG_DIR/redis-*.log"
        # A replica that never synced would not take over its primary's slots.
        wait_until 30 "127.0.0.1:$port to have its replicas, or its primary, in sync" node_in_sync "$port" ||
            die "127.0.0.1:$port did not sync with its primary or replica: see $LOG_DIR/redis-*.log"
    done
}

# node_in_sync PORT: a primary with its CLUSTER_REPLICAS replicas online, or a replica whose
# link is up.
node_in_sync() {
    case "$(node_role "$1")" in
        primary) primary_has_replicas "$1" "$CLUSTER_REPLICAS" ;;
        replica*) redis-cli -p "$1" info replication | grep -q '^master_link_status:up' ;;
        *) return 1 ;;
    esac
}

# cluster_info PORT FIELD: FIELD of CLUSTER INFO on the node on PORT.
cluster_info() { redis-cli -p "$1" cluster info 2>/dev/null | tr -d '\r' | sed -n "s/^$2://p"; }
cluster_ok() { [ "$(cluster_info "$1" cluster_state)" = ok ]; }

# ── the primaries in use

# sentinel_primary: HOST:PORT of the primary, from the first sentinel that answers.
sentinel_primary() {
    local name port addr
    while read -r name port; do
        addr=$(redis-cli -p "$port" --raw sentinel get-master-addr-by-name "$REDIS_MASTER_NAME" 2>/dev/null | paste -sd:)
        [[ "$addr" == *:* ]] && { echo "$addr"; return 0; }
    done <<<"$(sentinel_nodes)"
    return 1
}

# cluster_primaries: "HOST:PORT SLOTS" for every live primary, from the first node that answers.
cluster_primaries() {
    local port out
    for port in $(words "$REDIS_PORTS"); do
        out=$(redis-cli -p "$port" cluster nodes 2>/dev/null) || continue
        [ -n "$out" ] || continue
        awk '$3 ~ /master/ && $3 !~ /fail/ && NF >= 9 { sub(/@.*/, "", $2); slots = ""; for (i = 9; i <= NF; i++) slots = slots (slots ? "," : "") $i; print $2, "slots " slots }' <<<"$out" | sort
        return 0
    done
    return 1
}

# redis_primaries: the primary (or primaries) in use, one a line.
redis_primaries() {
    case "$REDIS_TOPOLOGY" in
        single) echo "${REDIS_URL#redis://}" ;;
        sentinel) sentinel_primary || echo "no sentinel answers" ;;
        cluster) cluster_primaries || echo "no cluster node answers" ;;
    esac
}

# ── stopping and status

stop_redis() {
    local name port pids=()
    [ -n "$STACK_REDIS_STARTED" ] || return 0
    if [ "$REDIS_TOPOLOGY" = sentinel ]; then
        port=$(sentinel_primary) && echo "${port##*:}" >"$STACK_DIR/sentinel-primary"
        while read -r name port; do stop_component "$name" 10; done <<<"$(sentinel_nodes)"
    fi
    [ "$REDIS_TOPOLOGY" != single ] || redis-cli -p "$REDIS_PORT" shutdown >/dev/null 2>&1 || true
    while read -r name port; do
        stop_component "$name" 20 &
        pids+=($!)
    done <<<"$(redis_nodes)"
    wait "${pids[@]}"
}

# node_role PORT: "primary" or "replica of HOST:PORT", as the node itself reports.
node_role() {
    redis-cli -p "$1" info replication 2>/dev/null | tr -d '\r' | awk -F: '
        $1 == "role" { role = $2 } $1 == "master_host" { host = $2 } $1 == "master_port" { port = $2 }
        END { if (role == "master") print "primary"; else if (role == "slave") print "replica of " host ":" port }'
}

redis_status() {
    local name port
    if [ -z "$STACK_REDIS_STARTED" ]; then
        echo "  redis    external $REDIS_URL"
        return
    fi
    while read -r name port; do component_line "$name" "127.0.0.1:$port $(node_role "$port")"; done <<<"$(redis_nodes)"
    while read -r name port; do
        [ -n "$name" ] && component_line "$name" "127.0.0.1:$port"
    done <<<"$(sentinel_nodes)"
    echo "  redis primary in use ($REDIS_TOPOLOGY): $(redis_primaries | paste -sd';' | sed 's/;/; /g')"
}
