#!/usr/bin/env bash
# The whole switchyard stack on one machine, without Docker:
#   Redis, blue (:8001), green (:8002) and Traefik (:8080, API on 127.0.0.1:8081), routing to
#   blue (after a promote, to the color that was last active: `down` then `up` keeps it).
#
# usage: scripts/stack.sh up|down|status|logs [-f]
#
# STACK=compose runs the same stack in containers (compose.yml on the local Docker engine,
# images built without a registry by scripts/images.sh; see scripts/stack-compose.sh), with
# Traefik on the same ports; COMPOSE_PROJECT (switchyard) names it. STACK=k8s works on a
# cluster with deploy/k8s applied (status, logs; `up` and `down` say which kubectl to run).
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

use_stack
case "${1:-}" in
    up) cmd_up ;;
    down) cmd_down ;;
    status) cmd_status ;;
    logs) shift; cmd_logs "$@" ;;
    -h | --help | help) usage 0 ;;
    *) usage 2 >&2 ;;
esac
