#!/usr/bin/env bash
# A live view of the blue-green stack: each color's readiness, open connections, message
# rate and drain state (from /readyz and /metrics), and the color Traefik routes to.
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
        -h | --help) sed -n '2,8p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "monitor: unknown argument '$1'" >&2; exit 2 ;;
    esac
done
[[ "$INTERVAL" =~ ^[0-9]+([.][0-9]+)?$ ]] || die "--interval takes a number of seconds, not '$INTERVAL'"

load_stack_env
[ -f "$ENV_FILE" ] || die "no stack in $STACK_DIR: run scripts/stack.sh up first"

# sample COLOR: "ready connections messages draining" from the color's endpoints ("-" when down).
sample() {
    local port metrics ready
    port=$(color_port "$1")
    if ! metrics=$(curl -fsS --max-time 1 "http://127.0.0.1:$port/metrics" 2>/dev/null); then
        echo "down - - -"
        return
    fi
    ready=$(curl -s --max-time 1 -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/readyz")
    [ "$ready" = 200 ] && ready=ready || ready=$(curl -s --max-time 1 "http://127.0.0.1:$port/readyz" |
        python3 -c 'import json,sys; print(json.load(sys.stdin).get("reason","not_ready"))' 2>/dev/null || echo not_ready)
    awk -v ready="$ready" '
        /^switchyard_connections_active / { conns = $2 }
        /^switchyard_messages_total\{result="(counted|duplicate)"\}/ { msgs += $2 }
        /^switchyard_draining / { draining = $2 }
        END { printf "%s %d %d %s\n", ready, conns, msgs, (draining == 1 ? "yes" : "no") }' <<<"$metrics"
}

routed_color() {
    local url
    url=$(traefik_active_url 2>/dev/null) || { echo "traefik down"; return; }
    case "$url" in
        *":$BLUE_PORT") echo blue ;;
        *":$GREEN_PORT") echo green ;;
        *) echo "$url" ;;
    esac
}

declare -A LAST_MSGS
LAST_AT=$(now_ms)
for color in blue green; do LAST_MSGS[$color]=$(sample "$color" | cut -d' ' -f3); done

draw() {
    local now elapsed color ready conns msgs draining rate
    now=$(now_ms)
    elapsed=$((now - LAST_AT))
    [ "$elapsed" -gt 0 ] || elapsed=1
    printf 'switchyard  %s   Traefik :%s routes to: %s\n\n' "$(date +%H:%M:%S)" "$TRAEFIK_PORT" "$(routed_color)"
    printf '  %-6s %-18s %12s %10s %9s\n' color state connections "msgs/s" draining
    for color in blue green; do
        read -r ready conns msgs draining <<<"$(sample "$color")"
        if [ "$msgs" = - ] || [ "${LAST_MSGS[$color]}" = - ]; then rate=-; else rate=$(((msgs - LAST_MSGS[$color]) * 1000 / elapsed)); fi
        LAST_MSGS[$color]=$msgs
        printf '  %-6s %-18s %12s %10s %9s\n' "$color" "$ready" "$conns" "$rate" "$draining"
    done
    LAST_AT=$now
}

if [ -n "$ONCE" ]; then
    sleep 1
    draw
    exit 0
fi
trap 'tput cnorm 2>/dev/null || true; echo; exit 0' INT TERM
tput civis 2>/dev/null || true
while true; do
    sleep "$INTERVAL"
    frame=$(draw)
    if [ -t 1 ]; then clear; fi
    echo "$frame"
done
