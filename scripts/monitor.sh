#!/usr/bin/env bash
# A live view of the blue-green stack: each instance's readiness, open connections, message
# rate and drain state (from /readyz and /metrics), one row per replica of each color, the
# color Traefik routes to, and the Redis primary (or, on a cluster, primaries) in use, as the
# sentinels or the cluster report it. STACK=compose watches the containerised stack.
#
# usage: scripts/monitor.sh [--once] [--interval SECONDS]
#   --once        print one snapshot (rates need two samples: measured over 1 s) and exit
#   --interval N  refresh every N seconds (default 1); Ctrl-C to stop
set -euo pipefail
. "$(dirname "$0")/stack-lib.sh"

ONCE=""
INTERVAL=1
while [ $# -gt 0 ]; do
    case "$1" in
        --once) ONCE=1; shift ;;
        --interval) INTERVAL=${2:-}; shift 2 ;;
        -h | --help) print_help "$0"; exit 0 ;;
        *) echo "monitor: unknown argument '$1'" >&2; exit 2 ;;
    esac
done
[[ "$INTERVAL" =~ ^[0-9]+([.][0-9]+)?$ ]] || die "--interval takes a number of seconds, not '$INTERVAL'"

use_stack
load_stack_env
stack_check

# sample URL: "ready connections messages draining" from an instance's endpoints ("-" when down).
sample() {
    local metrics ready
    metrics=$(instance_get "$1" /metrics 2>/dev/null) || true
    if [ -z "$metrics" ]; then
        echo "down - - -"
        return
    fi
    ready=$(instance_get "$1" /readyz 2>/dev/null |
        python3 -c 'import json,sys; r=json.load(sys.stdin); print("ready" if r["status"] == "ready" else r.get("code","not_ready"))' 2>/dev/null || echo not_ready)
    awk -v ready="$ready" '
        /^switchyard_connections_active / { conns = $2 }
        /^switchyard_messages_total\{result="(counted|duplicate)"\}/ { msgs += $2 }
        /^switchyard_draining / { draining = $2 }
        END { printf "%s %d %d %s\n", ready, conns, msgs, (draining == 1 ? "yes" : "no") }' <<<"$metrics"
}

routed_color() {
    local url
    url=$(traefik_active_url 2>/dev/null) || { echo "traefik down"; return; }
    color_of_url "$url"
}

# instances: "COLOR NAME URL" for every instance of both colors ("COLOR - -" for a color
# with none running).
instances() {
    local color name url
    for color in blue green; do
        local found=""
        while read -r name url; do
            [ -n "$name" ] || continue
            echo "$color $name $url"
            found=1
        done <<<"$(color_instances "$color")"
        [ -n "$found" ] || echo "$color - -"
    done
}

declare -A LAST_MSGS
clock_ms LAST_AT

draw() {
    local now elapsed color name url ready conns msgs draining rate
    clock_ms now
    elapsed=$((now - LAST_AT))
    [ "$elapsed" -gt 0 ] || elapsed=1
    printf 'switchyard  %s   Traefik :%s routes to: %s\n' "$(date +%H:%M:%S)" "$TRAEFIK_PORT" "$(routed_color)"
    redis_primaries | sed '1s/^/Redis primary in use: /; 2,$s/^/                      /'
    echo
    printf '  %-6s %-24s %-18s %12s %10s %9s\n' color instance state connections "msgs/s" draining
    while read -r color name url; do
        if [ "$url" = - ]; then ready=down conns=- msgs=- draining=-; else read -r ready conns msgs draining <<<"$(sample "$url")"; fi
        if [ "$msgs" = - ] || [ "${LAST_MSGS[$name]:--}" = - ]; then rate=-; else rate=$(((msgs - LAST_MSGS[$name]) * 1000 / elapsed)); fi
        LAST_MSGS[$name]=$msgs
        printf '  %-6s %-24s %-18s %12s %10s %9s\n' "$color" "$name" "$ready" "$conns" "$rate" "$draining"
    done <<<"$(instances)"
    LAST_AT=$now
}

if [ -n "$ONCE" ]; then
    draw >/dev/null
    sleep 1
    draw
    exit 0
fi
draw >/dev/null
trap 'tput cnorm 2>/dev/null || true; echo; exit 0' INT TERM
tput civis 2>/dev/null || true
while true; do
    sleep "$INTERVAL"
    frame=$(draw)
    if [ -t 1 ]; then clear; fi
    echo "$frame"
done
