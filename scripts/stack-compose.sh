# shellcheck shell=bash
# STACK=compose: the stack of compose.yml on a Docker host, for stack.sh (up, down, status,
# logs), promote.sh and monitor.sh. Sourced by use_stack (stack-lib.sh) in place of
# stack-local.sh: it implements every function of STACK_FUNCTIONS.
#
# By default it runs on images made here without a registry (COMPOSE_IMAGES=local:
# scripts/images.sh, docker/compose.local.yml); COMPOSE_IMAGES=official runs compose.yml as
# written (official images pulled, the app built by docker/Dockerfile, Grafana included).
# Traefik's dynamic file lives in STACK_DIR/compose/dynamic (mounted into the container), so
# promotes leave the checkout alone; images are switchyard:blue and switchyard:green, and
# switchyard:previous is kept for --rollback.
#
# REPLICAS (2) is each color's replica count (compose.yml's deploy.replicas and the apps'
# DESIRED_REPLICAS); REDIS_TOPOLOGY is single (compose.yml's one Redis) or sentinel (3 nodes
# and 3 sentinels: docker/compose.sentinel.yml on top, see compose()). Both are recorded in
# the stack's state with the other settings, since every compose call interpolates them again.

COMPOSE_STATE=$STACK_DIR/${STACK:-compose}
COMPOSE_ENV_FILE=$COMPOSE_STATE/stack.env

load_stack_env() {
    # shellcheck disable=SC1090
    [ -f "$COMPOSE_ENV_FILE" ] && . "$COMPOSE_ENV_FILE"
    COMPOSE_PROJECT=${COMPOSE_PROJECT:-switchyard}
    COMPOSE_IMAGES=${COMPOSE_IMAGES:-local}
    TRAEFIK_PORT=${TRAEFIK_PORT:-8080}
    TRAEFIK_API_PORT=${TRAEFIK_API_PORT:-8081}
    PROMETHEUS_PORT=${PROMETHEUS_PORT:-9090}
    ALERTMANAGER_PORT=${ALERTMANAGER_PORT:-9093}
    HEALTH_INTERVAL=${HEALTH_INTERVAL:-2s}
    SWITCHYARD_BIN=${SWITCHYARD_BIN:-$ROOT/target/release/switchyard}
    REPLICAS=${REPLICAS:-2}
    REDIS_TOPOLOGY=${REDIS_TOPOLOGY:-single}
    REDIS_MIN_REPLICAS_ACKED=${REDIS_MIN_REPLICAS_ACKED:-}
    # With sentinel: the store network's /24 (its first three octets), picked by `up` if unset.
    STORE_PREFIX=${STORE_PREFIX:-}
    DYNAMIC_DIR=$COMPOSE_STATE/dynamic
    # Same filesystem as the watched directory, outside it.
    STAGING_DIR=$COMPOSE_STATE/staging
    APP_CONTEXT=$COMPOSE_STATE/app
    # compose.yml's (and docker/compose.sentinel.yml's) variables.
    export TRAEFIK_PORT TRAEFIK_API_PORT PROMETHEUS_PORT ALERTMANAGER_PORT APP_CONTEXT REPLICAS
    export TRAEFIK_DYNAMIC_DIR=$DYNAMIC_DIR
    case "$COMPOSE_IMAGES" in
        local) export REDIS_IMAGE=switchyard-redis:local ;;
        official) export REDIS_IMAGE=redis:7.2-bookworm ;;
        *) die "COMPOSE_IMAGES is local or official, not '$COMPOSE_IMAGES'" ;;
    esac
    [[ "$REPLICAS" =~ ^[1-9][0-9]*$ ]] || die "REPLICAS is a number of app replicas per color (1 or more), not '$REPLICAS'"
    check_topology
    # Unset, the server's default for the topology (1 with Sentinel: the overlay's default).
    if [ -n "$REDIS_MIN_REPLICAS_ACKED" ]; then
        [[ "$REDIS_MIN_REPLICAS_ACKED" =~ ^[0-9]+$ ]] || die "REDIS_MIN_REPLICAS_ACKED is a number, not '$REDIS_MIN_REPLICAS_ACKED'"
        export REDIS_MIN_REPLICAS_ACKED
    fi
    if [ -n "$STORE_PREFIX" ]; then
        [[ "$STORE_PREFIX" =~ ^[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}$ ]] ||
            die "STORE_PREFIX is the store network's first three octets (e.g. 10.213.7), not '$STORE_PREFIX'"
        export STORE_PREFIX
    fi
}

# free_store_prefix: 10.213.X of a /24 that no Docker network and no route of this host uses,
# for the Sentinel stack's store network (its nodes and sentinels have fixed addresses).
free_store_prefix() {
    local used third
    # shellcheck disable=SC2046 # one word per network
    used=$(docker network inspect -f '{{range .IPAM.Config}}{{.Subnet}} {{end}}' $(docker network ls -q); ip route 2>/dev/null || true)
    for third in $(shuf -i 1-254); do
        grep -q "10\.213\.$third\." <<<"$used" || { echo "10.213.$third"; return; }
    done
    die "no 10.213.X.0/24 is free for the Sentinel stack's store network: set STORE_PREFIX"
}

# check_topology: the REDIS_TOPOLOGY this stack runs (STACK=swarm replaces it).
check_topology() {
    case "$REDIS_TOPOLOGY" in
        single | sentinel) ;;
        cluster) die "REDIS_TOPOLOGY=cluster is not available with STACK=$STACK: it runs single (compose.yml's one Redis, the default) or sentinel (docker/compose.sentinel.yml); a Redis Cluster runs on the process stack (STACK=local REDIS_TOPOLOGY=cluster)" ;;
        *) die "REDIS_TOPOLOGY is single or sentinel with STACK=$STACK, not '$REDIS_TOPOLOGY'" ;;
    esac
}

save_stack_env() {
    write_env "$COMPOSE_ENV_FILE" COMPOSE_PROJECT COMPOSE_IMAGES TRAEFIK_PORT TRAEFIK_API_PORT \
        PROMETHEUS_PORT ALERTMANAGER_PORT HEALTH_INTERVAL SWITCHYARD_BIN REPLICAS REDIS_TOPOLOGY \
        REDIS_MIN_REPLICAS_ACKED STORE_PREFIX
}

# compose ARGS...: docker compose (v2) or docker-compose (v1) on this stack's files and project;
# v1's notes about Swarm-only keys and the legacy builder are left out of its stderr.
compose() {
    local files=(-f "$ROOT/compose.yml") tool=(docker-compose)
    [ "$COMPOSE_IMAGES" = local ] && files+=(-f "$ROOT/docker/compose.local.yml")
    [ "$REDIS_TOPOLOGY" = sentinel ] && files+=(-f "$ROOT/docker/compose.sentinel.yml")
    docker compose version >/dev/null 2>&1 && tool=(docker compose)
    { "${tool[@]}" -p "$COMPOSE_PROJECT" "${files[@]}" "$@" 2>&1 1>&3 3>&- |
        { grep -v -e 'sub-keys are not supported' -e DEPRECATED -e buildx -e '^ *$' >&2 || true; }; } 3>&1
}

# The services `up` starts: Grafana has no image without a registry.
stack_services() {
    echo redis
    [ "$REDIS_TOPOLOGY" = sentinel ] && echo redis2 redis3 sentinel1 sentinel2 sentinel3
    echo migrate app_blue app_green traefik prometheus alertmanager
    [ "$COMPOSE_IMAGES" = official ] && echo grafana
    return 0
}

check_engine() {
    command -v docker >/dev/null 2>&1 || die "STACK=compose needs the docker CLI (apt-get install -y docker.io)"
    docker info >/dev/null 2>&1 || die "no Docker engine answers 'docker info'"
    command -v docker-compose >/dev/null 2>&1 || docker compose version >/dev/null 2>&1 ||
        die "STACK=compose needs docker-compose (apt-get install -y --no-install-recommends docker-compose)"
}

# prepare_build: the app's build context (local images) holds the current release binary.
prepare_build() {
    [ "$COMPOSE_IMAGES" = local ] || return 0
    # shellcheck source=scripts/images.sh
    . "$ROOT/scripts/images.sh"
    prepare_app_context "$APP_CONTEXT"
}

# container_url CONTAINER: the app's address on the stack's default network (the one Traefik
# and Prometheus share with it; it is on `store` too), as the host reaches it.
container_url() {
    echo "http://$(docker inspect -f "{{(index .NetworkSettings.Networks \"${COMPOSE_PROJECT}_default\").IPAddress}}" "$1"):8000"
}

# compose_running SERVICE: the names of SERVICE's running containers, sorted, found by the
# labels compose puts on them (the project name as compose normalises it): `compose ps` starts
# docker-compose each time, seconds on a loaded machine, and monitor.sh asks every second.
compose_running() {
    local project=${COMPOSE_PROJECT,,}
    docker ps --filter "label=com.docker.compose.project=${project//[^a-z0-9_-]/}" \
        --filter "label=com.docker.compose.service=$1" --format '{{.Names}}' | sort
}

# color_instances COLOR: "NAME URL" for every running replica of COLOR.
color_instances() {
    local name
    for name in $(compose_running "app_$1"); do echo "$name $(container_url "$name")"; done
}

# redis_primaries: the Redis primary in use, as a ready replica of the active color reports it
# (/readyz's redis field: its topology and primary), for monitor.sh and status.
redis_primaries() {
    local name url
    while read -r name url; do
        [ -n "$name" ] || continue
        instance_get "$url" /readyz | python3 -c '
import json, sys
redis = json.load(sys.stdin).get("redis") or {}
if not redis.get("primaries"):
    sys.exit(1)
print("\n".join(p + " (" + redis["topology"] + ")" for p in redis["primaries"]))' 2>/dev/null && return 0
    done <<<"$(color_instances "$(active_color)")"
    echo "unknown (no $(active_color) replica names one)"
}

# color_of_url URL: the color a Traefik server URL belongs to.
color_of_url() {
    case "$1" in
        http://app_blue:8000) echo blue ;;
        http://app_green:8000) echo green ;;
        *) echo "$1" ;;
    esac
}

# ── stack.sh

cmd_up() {
    load_stack_env
    check_engine
    ensure_venv
    if [ "$COMPOSE_IMAGES" = local ]; then
        "$ROOT/scripts/images.sh"
        prepare_build
    fi
    if [ "$REDIS_TOPOLOGY" = sentinel ] && [ -z "$STORE_PREFIX" ]; then
        STORE_PREFIX=$(free_store_prefix)
        export STORE_PREFIX
    fi
    save_stack_env
    mkdir -p "$DYNAMIC_DIR"
    [ -f "$DYNAMIC_DIR/switchyard.yml" ] || write_dynamic blue
    log "compose project $COMPOSE_PROJECT: starting $(stack_services | tr '\n' ' ')"
    # shellcheck disable=SC2046 # one word per service
    compose up -d $(stack_services)
    wait_until 60 "Traefik to route to $(active_color)" answers_as "$(active_color)" ||
        { compose logs --tail 20 >&2; die "the compose stack did not become ready"; }
    print_addresses
}

print_addresses() {
    cat <<TEXT

switchyard $STACK stack is up (project $COMPOSE_PROJECT, images: $COMPOSE_IMAGES, state in $COMPOSE_STATE)
  app through Traefik   http://127.0.0.1:$TRAEFIK_PORT/        (active: $(active_color))
  WebSocket             ws://127.0.0.1:$TRAEFIK_PORT/ws/chat/
  each color            via Traefik: /blue/ and /green/
  Traefik dashboard     http://127.0.0.1:$TRAEFIK_API_PORT/dashboard/
  Prometheus            http://127.0.0.1:$PROMETHEUS_PORT/   (alerts: /alerts)
  Alertmanager          http://127.0.0.1:$ALERTMANAGER_PORT/
  replicas per color    $REPLICAS
  Redis primary         $(redis_primaries | paste -sd' ')
next: STACK=$STACK scripts/promote.sh, STACK=$STACK scripts/monitor.sh, STACK=$STACK scripts/stack.sh down
TEXT
}

cmd_down() {
    load_stack_env
    check_engine
    compose down -v --remove-orphans --timeout 40
    rm -rf "$COMPOSE_STATE"
    log "compose stack $COMPOSE_PROJECT is down (containers, network and volume removed)"
}

cmd_status() {
    local color name url ready
    load_stack_env
    [ -f "$COMPOSE_ENV_FILE" ] || { echo "no compose stack in $COMPOSE_STATE (STACK=compose scripts/stack.sh up)"; return 3; }
    check_engine
    echo "switchyard compose stack $COMPOSE_PROJECT (active: $(active_color), Traefik routes / to $(traefik_active_url 2>/dev/null || echo '?'))"
    echo "  $REPLICAS replica(s) per color; Redis $REDIS_TOPOLOGY, primary in use: $(redis_primaries | paste -sd' ')"
    compose ps
    for color in blue green; do
        while read -r name url; do
            [ -n "$name" ] || continue
            ready=$(instance_get "$url" /readyz || true)
            printf '  %-28s %s %s\n' "$name" "$url" "$ready"
        done <<<"$(color_instances "$color")"
    done
}

cmd_logs() {
    load_stack_env
    if [ "${1:-}" = "-f" ]; then compose logs --tail 20 -f; else compose logs --tail 20; fi
}

# ── promote.sh

stack_check() {
    check_engine
    [ -f "$COMPOSE_ENV_FILE" ] || die "no compose stack in $COMPOSE_STATE: run STACK=compose scripts/stack.sh up first"
}

active_color() { sed -n 's/^# active color: *\([a-z]*\).*/\1/p' "$DYNAMIC_DIR/switchyard.yml" 2>/dev/null | head -n 1; }
previous_color() { cat "$COMPOSE_STATE/previous" 2>/dev/null; }
has_previous_build() { docker image inspect switchyard:previous >/dev/null 2>&1; }

run_migrate() {
    prepare_build
    compose build -q migrate
    compose run --rm migrate
}

start_new_color() {
    compose stop -t "$DRAIN_WAIT" "app_$1"
    if [ -n "${ROLLBACK:-}" ]; then
        docker tag switchyard:previous "switchyard:$1"
    else
        prepare_build
        compose build -q "app_$1"
    fi
    compose up -d --no-deps --force-recreate "app_$1"
}

# color_ready COLOR: every replica of COLOR answers /readyz 200.
color_ready() {
    local name url any=""
    while read -r name url; do
        [ -n "$name" ] || continue
        instance_ready "$url" || return 1
        any=1
    done <<<"$(color_instances "$1")"
    [ -n "$any" ]
}

smoke_base() { echo "ws://127.0.0.1:$TRAEFIK_PORT/$1"; }

write_dynamic() {
    mkdir -p "$DYNAMIC_DIR" "$STAGING_DIR"
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
color_log() { echo "STACK=compose scripts/stack.sh logs (compose project $COMPOSE_PROJECT)"; }

# drain_color COLOR: `compose stop` sends SIGTERM and waits; every replica must exit 0.
drain_color() {
    local container status
    compose stop -t "$DRAIN_WAIT" "app_$1"
    for container in $(compose ps -q "app_$1"); do
        status=$(docker inspect -f '{{.State.ExitCode}}' "$container")
        [ "$status" = 0 ] || { log "  app_$1 container $container exited with status $status"; return 1; }
    done
    log "  app_$1 drained: every replica exited 0"
}
