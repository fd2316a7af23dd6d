# shellcheck shell=bash
# promote.sh's steps for STACK=compose: the stack of compose.yml on a Docker host. Traefik's
# dynamic file is traefik/dynamic/switchyard.yml (mounted into the container); images are
# switchyard:blue and switchyard:green, and switchyard:previous is kept for --rollback.
# Sourced by promote.sh after stack-lib.sh, whose local-stack functions these replace.

COMPOSE_FILE=${COMPOSE_FILE:-$ROOT/compose.yml}
COMPOSE_STATE=$ROOT/.stack/compose

compose() {
    if docker compose version >/dev/null 2>&1; then
        docker compose -f "$COMPOSE_FILE" "$@"
    else
        docker-compose -f "$COMPOSE_FILE" "$@"
    fi
}

load_stack_env() {
    TRAEFIK_PORT=${TRAEFIK_PORT:-8080}
    TRAEFIK_API_PORT=${TRAEFIK_API_PORT:-8081}
    HEALTH_INTERVAL=${HEALTH_INTERVAL:-2s}
    DYNAMIC_DIR=$ROOT/traefik/dynamic
    # Same filesystem as the watched directory, outside it.
    STAGING_DIR=$ROOT/traefik/.staging
    mkdir -p "$COMPOSE_STATE"
}

stack_check() {
    command -v docker >/dev/null 2>&1 || die "STACK=compose needs the docker CLI"
    docker info >/dev/null 2>&1 || die "no Docker engine answers 'docker info'"
    [ -f "$DYNAMIC_DIR/switchyard.yml" ] || die "no $DYNAMIC_DIR/switchyard.yml: is this the compose stack's checkout?"
}

active_color() { sed -n 's/^# active color: *\([a-z]*\).*/\1/p' "$DYNAMIC_DIR/switchyard.yml" | head -n 1; }
previous_color() { cat "$COMPOSE_STATE/previous" 2>/dev/null; }
has_previous_build() { docker image inspect switchyard:previous >/dev/null 2>&1; }

run_migrate() {
    compose build migrate
    compose run --rm migrate
}

start_new_color() {
    compose stop -t "$DRAIN_WAIT" "app_$1"
    if [ -n "${ROLLBACK:-}" ]; then
        docker tag switchyard:previous "switchyard:$1"
    else
        compose build "app_$1"
    fi
    compose up -d --no-deps --force-recreate "app_$1"
}

color_ready() { http_ok "http://127.0.0.1:$TRAEFIK_PORT/$1/readyz"; }
smoke_base() { echo "ws://127.0.0.1:$TRAEFIK_PORT/$1"; }

write_dynamic() {
    mkdir -p "$STAGING_DIR"
    render_dynamic "$1" http://app_blue:8000 http://app_green:8000 >"$STAGING_DIR/switchyard.yml"
    mv "$STAGING_DIR/switchyard.yml" "$DYNAMIC_DIR/switchyard.yml"
}

traefik_routes_to_color() { [ "$(traefik_active_url)" = "http://app_$1:8000" ]; }

# The dynamic file itself records the active color.
record_active() { :; }

record_switch() {
    echo "$1" >"$COMPOSE_STATE/previous"
    docker tag "switchyard:$1" switchyard:previous
}

stop_color() { compose stop -t 10 "app_$1"; }
color_log() { echo "docker compose logs app_$1"; }

# drain_color COLOR: `compose stop` sends SIGTERM and waits; every replica must exit 0.
drain_color() {
    local container status
    compose stop -t "$DRAIN_WAIT" "app_$1"
    for container in $(compose ps -a -q "app_$1"); do
        status=$(docker inspect -f '{{.State.ExitCode}}' "$container")
        [ "$status" = 0 ] || { log "  app_$1 container $container exited with status $status"; return 1; }
    done
    log "  app_$1 drained and exited 0"
}
