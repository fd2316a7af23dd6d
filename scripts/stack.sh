#!/usr/bin/env bash
# The whole switchyard stack on one machine, without Docker:
#   Redis, blue (:8001), green (:8002) and Traefik (:8080, API on 127.0.0.1:8081), routing to
#   blue (after a promote, to the color that was last active: `down` then `up` keeps it).
#
# usage: scripts/stack.sh up|down|status|logs [-f]
#
# REPLICAS=N (default 1) runs N instances per color (blue-1 … blue-N), each on its own port
# (BLUE_PORTS, GREEN_PORTS; by default BLUE_PORT, BLUE_PORT+2, … and GREEN_PORT, GREEN_PORT+2, …)
# and each a server of its color's service in Traefik, health-checked on its own.
# REDIS_TOPOLOGY picks Redis (processes on loopback, see scripts/stack-redis.sh):
#   single    one redis-server on REDIS_PORT (default), or an existing one: REDIS_URL;
#   sentinel  1 primary + 2 replicas (REDIS_PORTS, default REDIS_PORT..+2) and 3 sentinels
#             (SENTINEL_PORTS, default REDIS_PORT+20000..+2), master name REDIS_MASTER_NAME;
#   cluster   3 primaries + 3 replicas (REDIS_PORTS, default REDIS_PORT..+5; cluster bus
#             CLUSTER_BUS_PORTS, default each port + 10000); CLUSTER_REPLICAS=2: 3 + 6
#             (REDIS_PORT..+8).
# Every app gets the topology's variables (REDIS_TOPOLOGY, REDIS_SENTINELS, REDIS_MASTER_NAME,
# REDIS_CLUSTER_NODES, or REDIS_URL) and REDIS_MIN_REPLICAS_ACKED when set.
#
# STACK=compose runs the same stack in containers (compose.yml on the local Docker engine,
# images built without a registry by scripts/images.sh; see scripts/stack-compose.sh), with
# Traefik on the same ports; COMPOSE_PROJECT (switchyard) names it. STACK=k8s works on a
# cluster with deploy/k8s applied (status, logs; `up` and `down` say which kubectl to run).
#
# Ports and paths come from the environment (REDIS_PORT, BLUE_PORT, GREEN_PORT, TRAEFIK_PORT,
# TRAEFIK_API_PORT, STACK_DIR, SWITCHYARD_BIN for a prebuilt binary); `up` records them and
# the settings above in STACK_DIR/stack.env for the other commands and promote.sh.
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
