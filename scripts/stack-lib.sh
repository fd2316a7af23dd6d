# shellcheck shell=bash
# What every blue-green stack shares (Traefik's API, the dynamic file's shape, waiting), and
# use_stack, which loads the one stack STACK names and checks that it has every function
# stack.sh, promote.sh and monitor.sh call (STACK_FUNCTIONS).

. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

STACK_DIR=${STACK_DIR:-$ROOT/.stack}

# clock_ms VAR: the wall clock in milliseconds, into VAR, without a subshell: a Ctrl-C that
# kills a $(...) in the middle of an arithmetic expansion ends a script before its traps run.
clock_ms() { printf -v "$1" '%d' "$((${EPOCHREALTIME/./} / 1000))"; }

other_color() { [ "$1" = blue ] && echo green || echo blue; }

# write_env FILE NAME...: the named variables as a file the shell can source (values quoted).
write_env() {
    local file=$1 name
    shift
    mkdir -p "$(dirname "$file")"
    for name in "$@"; do printf '%s=%q\n' "$name" "${!name}"; done >"$file"
}

# wait_until SECONDS WHAT COMMAND...: polls COMMAND every 50 ms until it succeeds.
wait_until() {
    local limit=$1 what=$2 deadline now
    shift 2
    clock_ms now
    deadline=$((now + limit * 1000))
    # A subshell, so the quieting redirection is not in force when a trap of the caller runs.
    until ("$@") >/dev/null 2>&1; do
        clock_ms now
        [ "$now" -lt "$deadline" ] || { log "timed out after ${limit}s waiting for $what"; return 1; }
        sleep 0.05
    done
}

http_ok() { curl -fsS -o /dev/null --max-time 2 "$1"; }

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
$(# shellcheck disable=SC2034 # used in the heredoc
for service in active:"$active_url" blue:"$blue" green:"$green"; do cat <<SERVICE
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

# answers_as COLOR: Traefik's entry point is answered by COLOR.
answers_as() { curl -fsS --max-time 2 "http://127.0.0.1:$TRAEFIK_PORT/readyz" | grep -q "\"$1\""; }

# instance_get URL PATH: the body of an instance's answer to GET PATH, whatever its status
# (fails only when nothing answers). STACK=swarm reaches instances through `docker exec`.
instance_get() { curl -s --max-time 2 "$1$2"; }

# instance_ready URL: the instance answers /readyz with status ready.
instance_ready() { instance_get "$1" /readyz | grep -q '"status":"ready"'; }

# The functions a stack provides; use_stack refuses a stack that lacks one, before anything
# runs. Shared ones above (answers_as, traefik_sees_up, instance_get) count when not replaced.
STACK_FUNCTIONS=(
    # settings and stack.sh
    load_stack_env save_stack_env cmd_up cmd_down cmd_status cmd_logs print_addresses
    # monitor.sh
    color_instances color_of_url instance_get
    # promote.sh, in the order of its steps
    stack_check active_color previous_color has_previous_build run_migrate start_new_color
    color_ready traefik_sees_up smoke_base write_dynamic traefik_routes_to_color answers_as
    record_switch drain_color
    # promote.sh's rollback
    record_active stop_color color_log
)

# use_stack: loads the stack STACK names — local (scripts/stack-local.sh, the default),
# compose (stack-compose.sh), swarm (stack-swarm.sh on top of stack-compose.sh) or k8s
# (stack-k8s.sh: kubectl on a cluster with deploy/k8s applied) — and
# checks it has every function of STACK_FUNCTIONS.
use_stack() {
    case "${STACK:=local}" in
        local)
            # shellcheck source=scripts/stack-local.sh
            . "$ROOT/scripts/stack-local.sh"
            ;;
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
        k8s)
            # shellcheck source=scripts/stack-k8s.sh
            . "$ROOT/scripts/stack-k8s.sh"
            ;;
        *) die "STACK is local, compose, swarm or k8s, not '$STACK'" ;;
    esac
    local name missing=()
    for name in "${STACK_FUNCTIONS[@]}"; do
        declare -F "$name" >/dev/null || missing+=("$name")
    done
    [ ${#missing[@]} -eq 0 ] || die "STACK=$STACK lacks ${missing[*]} (see STACK_FUNCTIONS in scripts/stack-lib.sh)"
}
