# shellcheck shell=bash
# STACK=swarm: compose.yml deployed with `docker stack deploy` on a one-node Swarm (docker
# swarm init on 127.0.0.1 when the engine is not in one yet; `down` leaves it again only then).
# Sourced after stack-compose.sh: the same images, state folder (STACK_DIR/swarm), Traefik
# dynamic file and switch; these functions replace the ones that differ. docker/swarm.yml
# says why every service resolves by DNS round robin and ports are published in host mode.
# Replicas are reached with `docker exec … switchyard healthcheck` (the host has no route into
# the overlay network). REPLICAS per color as under compose; Redis is compose.yml's one Redis.

# check_topology: Swarm runs compose.yml's single Redis only (the Sentinel overlay's nodes keep
# per-container volumes and names that a replicated Swarm service does not give).
check_topology() {
    [ "$REDIS_TOPOLOGY" = single ] ||
        die "REDIS_TOPOLOGY=$REDIS_TOPOLOGY is not available with STACK=swarm, which runs single (compose.yml's one Redis); Sentinel runs with STACK=compose REDIS_TOPOLOGY=sentinel"
}

deploy_stack() {
    local files=(-c "$ROOT/compose.yml")
    [ "$COMPOSE_IMAGES" = local ] && files+=(-c "$ROOT/docker/compose.local.yml")
    files+=(-c "$ROOT/docker/swarm.yml")
    quiet docker stack deploy --resolve-image never "${files[@]}" "$COMPOSE_PROJECT"
}

service() { echo "${COMPOSE_PROJECT}_$1"; }

# quiet COMMAND...: runs COMMAND, showing its output only when it fails.
quiet() {
    local out
    out=$("$@" 2>&1) || { printf '%s\n' "$out" >&2; return 1; }
}

# build_color_image COLOR: switchyard:COLOR from the current release binary (local images).
build_color_image() {
    prepare_build
    quiet docker build -q --build-arg BASE=switchyard-os:bookworm -t "switchyard:$1" "$APP_CONTEXT"
}

color_instances() {
    local container
    for container in $(docker ps -q --filter "label=com.docker.swarm.service.name=$(service "app_$1")"); do
        echo "$(docker inspect -f '{{.Name}}' "$container" | sed 's|^/||' | cut -d. -f1,2) exec:$container"
    done
}

instance_get() {
    case "$1" in
        exec:*) docker exec "${1#exec:}" switchyard healthcheck --path "$2" --print --timeout-ms 2000 2>/dev/null || true ;;
        *) curl -s --max-time 2 "$1$2" ;;
    esac
}

cmd_up() {
    local tag
    load_stack_env
    check_engine
    ensure_venv
    mkdir -p "$COMPOSE_STATE"
    if [ "$(docker info -f '{{.Swarm.LocalNodeState}}')" != active ]; then
        log "docker swarm init (one node, advertised on 127.0.0.1)"
        quiet docker swarm init --advertise-addr 127.0.0.1
        touch "$COMPOSE_STATE/swarm-started"
    fi
    if [ "$COMPOSE_IMAGES" = local ]; then
        "$ROOT/scripts/images.sh"
        for tag in blue green; do
            docker image inspect "switchyard:$tag" >/dev/null 2>&1 || docker tag switchyard:latest "switchyard:$tag"
        done
    fi
    save_stack_env
    mkdir -p "$DYNAMIC_DIR"
    [ -f "$DYNAMIC_DIR/switchyard.yml" ] || write_dynamic blue
    log "docker stack deploy $COMPOSE_PROJECT"
    deploy_stack
    wait_until 90 "Traefik to route to $(active_color)" answers_as "$(active_color)" ||
        { docker stack ps "$COMPOSE_PROJECT" >&2; die "the swarm stack did not become ready"; }
    print_addresses
}

cmd_down() {
    load_stack_env
    check_engine
    docker stack rm "$COMPOSE_PROJECT" >/dev/null 2>&1 || true
    wait_until 90 "the stack's containers and network to go" stack_gone ||
        log "the stack $COMPOSE_PROJECT still has containers or a network left"
    # `docker stack rm` keeps the named volumes (Redis's data among them), as compose's
    # `down -v` does not: removed here too.
    docker volume ls -q --filter "label=com.docker.stack.namespace=$COMPOSE_PROJECT" | xargs -r docker volume rm >/dev/null ||
        log "the stack $COMPOSE_PROJECT still has volumes left"
    if [ -f "$COMPOSE_STATE/swarm-started" ]; then
        log "docker swarm leave --force (this stack started the swarm)"
        quiet docker swarm leave --force
        # `swarm init` made the engine's docker_gwbridge network; leaving keeps it.
        docker network rm docker_gwbridge >/dev/null 2>&1 || true
    fi
    rm -rf "$COMPOSE_STATE"
    log "swarm stack $COMPOSE_PROJECT is down"
}

stack_gone() {
    [ -z "$(docker ps -aq --filter "label=com.docker.stack.namespace=$COMPOSE_PROJECT")" ] &&
        [ -z "$(docker network ls -q --filter "label=com.docker.stack.namespace=$COMPOSE_PROJECT")" ]
}

cmd_status() {
    local color name url
    load_stack_env
    [ -f "$COMPOSE_ENV_FILE" ] || { echo "no swarm stack in $COMPOSE_STATE (STACK=swarm scripts/stack.sh up)"; return 3; }
    check_engine
    echo "switchyard swarm stack $COMPOSE_PROJECT (active: $(active_color), Traefik routes / to $(traefik_active_url 2>/dev/null || echo '?'))"
    echo "  $REPLICAS replica(s) per color; Redis primary in use: $(redis_primaries | paste -sd' ')"
    docker stack services "$COMPOSE_PROJECT"
    for color in blue green; do
        while read -r name url; do
            [ -n "$name" ] || continue
            printf '  %-28s %s\n' "$name" "$(instance_get "$url" /readyz)"
        done <<<"$(color_instances "$color")"
    done
}

cmd_logs() {
    local name
    load_stack_env
    for name in redis app_blue app_green traefik prometheus alertmanager; do
        docker service logs --tail 20 "$(service "$name")" 2>&1
    done
}

run_migrate() {
    if [ "$COMPOSE_IMAGES" = local ]; then
        prepare_build
        quiet docker build -q --build-arg BASE=switchyard-os:bookworm -t switchyard:latest "$APP_CONTEXT"
    fi
    docker run --rm --network "${COMPOSE_PROJECT}_store" -e REDIS_URL=redis://redis:6379 switchyard:latest migrate
}

# start_new_color COLOR: COLOR's service on the current build (or the previous one), at its
# replica count; returns once Swarm has every new task running.
start_new_color() {
    if [ -n "${ROLLBACK:-}" ]; then
        docker tag switchyard:previous "switchyard:$1"
    else
        build_color_image "$1"
    fi
    quiet timeout "$READY_TIMEOUT" docker service update --detach=false --force --no-resolve-image \
        --image "switchyard:$1" --replicas "$REPLICAS" "$(service "app_$1")"
}

stop_color() { quiet docker service scale --detach=false "$(service "app_$1")=0"; }
color_log() { echo "docker service logs $(service "app_$1")"; }

# drain_color COLOR: scaling to 0 sends every task SIGTERM; each must exit 0.
drain_color() {
    local containers container status
    containers=$(docker ps -q --filter "label=com.docker.swarm.service.name=$(service "app_$1")")
    quiet timeout "$DRAIN_WAIT" docker service scale --detach=false "$(service "app_$1")=0"
    for container in $containers; do
        status=$(docker inspect -f '{{.State.Running}} {{.State.ExitCode}}' "$container")
        [ "$status" = "false 0" ] || { log "  $(service "app_$1") task $container: running/exit $status"; return 1; }
    done
    log "  $(service "app_$1") drained: every replica exited 0"
}
