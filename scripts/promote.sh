#!/usr/bin/env bash
# Deploy the current build to the idle color and move traffic to it, with no failed connect:
#   find active → migrate → start idle → wait until ready → smoke test (direct route)
#   → switch Traefik (atomic rename) → confirm via Traefik's API → drain the old color.
# Any failed step rolls back: Traefik keeps (or regains) the old color, the new one is stopped,
# and the script exits 1 naming the step.
#
# usage: scripts/promote.sh [--to blue|green] [--dry-run] [--rollback]
#   --to COLOR   promote to COLOR (default: the idle one)
#   --dry-run    print the plan and change nothing
#   --rollback   switch back to the previous color, restarting it on the build it ran
# environment: STACK_DIR (the stack of scripts/stack.sh), READY_TIMEOUT (30 s),
#   CONFIRM_TIMEOUT (10 s), DRAIN_WAIT (40 s), PROMOTE_ENV ("VAR=VALUE ..." for the new color)
set -Eeuo pipefail
. "$(dirname "$0")/stack-lib.sh"

READY_TIMEOUT=${READY_TIMEOUT:-30}
CONFIRM_TIMEOUT=${CONFIRM_TIMEOUT:-10}
DRAIN_WAIT=${DRAIN_WAIT:-40}
TARGET=""
DRY_RUN=""
ROLLBACK=""
STARTED_AT=$(now_ms)
STEP=""
SWITCHED=""

usage() {
    sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'
    exit "${1:-0}"
}

while [ $# -gt 0 ]; do
    case "$1" in
        --to) TARGET=${2:-}; shift 2 ;;
        --dry-run) DRY_RUN=1; shift ;;
        --rollback) ROLLBACK=1; shift ;;
        -h | --help) usage 0 ;;
        *) echo "promote: unknown argument '$1'" >&2; usage 2 >&2 ;;
    esac
done
case "$TARGET" in "" | blue | green) ;; *) die "--to takes blue or green, not '$TARGET'" ;; esac

step() {
    STEP=$1
    STEP_AT=$(now_ms)
    log "▶ $STEP"
}

step_done() { log "  ✓ $STEP ($(($(now_ms) - STEP_AT)) ms)"; }

find_active() {
    step find_active
    [ -f "$ENV_FILE" ] || die "no stack in $STACK_DIR: run scripts/stack.sh up first"
    OLD=$(active_color)
    if [ -n "$ROLLBACK" ]; then
        NEW=$(cat "$STACK_DIR/previous" 2>/dev/null) || die "no previous color to roll back to"
        [ -x "$STACK_DIR/bin/previous" ] || die "no saved build of $NEW to roll back to"
    else
        NEW=${TARGET:-$(other_color "$OLD")}
    fi
    [ "$NEW" != "$OLD" ] || die "$NEW is already active"
    NEW_PORT=$(color_port "$NEW")
    OLD_PORT=$(color_port "$OLD")
    log "  active: $OLD (:$OLD_PORT) → new: $NEW (:$NEW_PORT)$([ -n "$ROLLBACK" ] && echo ', rollback to its previous build')"
    step_done
}

migrate() {
    step migrate
    if "$SWITCHYARD_BIN" --help | grep -q migrate; then
        REDIS_URL="$REDIS_URL" "$SWITCHYARD_BIN" migrate
    else
        log "  this build has no migrations"
    fi
    step_done
}

start_new() {
    step start_new
    stop_component "$NEW" "$DRAIN_WAIT"
    if [ -n "$ROLLBACK" ]; then
        cp -p "$STACK_DIR/bin/previous" "$STACK_DIR/bin/switchyard-$NEW"
    else
        install_build "$NEW"
    fi
    # shellcheck disable=SC2086 # PROMOTE_ENV is a list of VAR=VALUE words
    start_color "$NEW" ${PROMOTE_ENV:-}
    log "  $NEW started (pid $(pid_of "$NEW"))"
    step_done
}

wait_ready() {
    step wait_ready
    wait_until "$READY_TIMEOUT" "$NEW /readyz" http_ok "http://127.0.0.1:$NEW_PORT/readyz"
    # A color that was stopped stays DOWN in Traefik until its next health probe.
    wait_until "$READY_TIMEOUT" "Traefik's health check to see $NEW up" traefik_sees_up "$NEW"
    step_done
}

smoke_test() {
    step smoke_test
    "$VENV/bin/python" "$ROOT/scripts/smoke.py" "ws://127.0.0.1:$TRAEFIK_PORT/$NEW" "$NEW"
    step_done
}

switch_traefik() {
    step switch_traefik
    write_dynamic "$NEW"
    SWITCHED=1
    step_done
}

confirm_switch() {
    step confirm_switch
    wait_until "$CONFIRM_TIMEOUT" "Traefik's API to show $NEW active" traefik_routes_to "$NEW_PORT"
    wait_until "$CONFIRM_TIMEOUT" "Traefik's entry point to answer as $NEW" answers_as "$NEW"
    echo "$OLD" >"$STACK_DIR/previous"
    echo "$NEW" >"$STACK_DIR/active"
    # The build the old color ran, for --rollback.
    cp -p "$STACK_DIR/bin/switchyard-$OLD" "$STACK_DIR/bin/previous"
    step_done
}

drain_old() {
    step drain_old
    local pid
    if ! pid=$(pid_of "$OLD"); then
        log "  $OLD was not running"
        step_done
        return
    fi
    kill -TERM "$pid"
    wait_until "$DRAIN_WAIT" "$OLD to drain and exit" bash -c "! kill -0 $pid 2>/dev/null"
    wait_until 5 "$OLD's exit status" test -s "$STACK_DIR/$OLD.exit"
    local status
    status=$(cat "$STACK_DIR/$OLD.exit")
    rm -f "$STACK_DIR/$OLD.pid"
    [ "$status" = 0 ] || { log "  $OLD exited with status $status"; return 1; }
    log "  $OLD drained and exited 0"
    step_done
}

roll_back() {
    local failed=$STEP
    trap - ERR
    log "✗ $failed failed: rolling back"
    if [ -n "$SWITCHED" ]; then
        write_dynamic "$OLD"
        wait_until "$CONFIRM_TIMEOUT" "Traefik to route to $OLD again" traefik_routes_to "$OLD_PORT" ||
            log "  Traefik did not confirm the rollback: check $LOG_DIR/traefik.log"
        echo "$OLD" >"$STACK_DIR/active"
    fi
    stop_component "$NEW" 10
    log "rolled back: Traefik routes to $OLD, $NEW stopped (its log: $LOG_DIR/$NEW.log)"
    die "promote failed at step '$failed' after $(($(now_ms) - STARTED_AT)) ms"
}

print_plan() {
    cat <<TEXT
promote plan (dry run, nothing changed):
  1. find_active     $OLD is active
  2. migrate         switchyard migrate against $REDIS_URL
  3. start_new       $NEW on :$NEW_PORT from $([ -n "$ROLLBACK" ] && echo "its saved build" || echo "$SWITCHYARD_BIN")
  4. wait_ready      GET http://127.0.0.1:$NEW_PORT/readyz, then Traefik's health check sees it UP (≤ ${READY_TIMEOUT}s each)
  5. smoke_test      ws://127.0.0.1:$TRAEFIK_PORT/$NEW/ws/chat/: new session, message, resume
  6. switch_traefik  rename a new dynamic file into $DYNAMIC_DIR
  7. confirm_switch  Traefik API shows http://127.0.0.1:$NEW_PORT and / answers as $NEW (≤ ${CONFIRM_TIMEOUT}s)
  8. drain_old       SIGTERM $OLD, wait for exit 0 (≤ ${DRAIN_WAIT}s)
TEXT
}

load_stack_env
find_active
if [ -n "$DRY_RUN" ]; then
    print_plan
    exit 0
fi
trap roll_back ERR
migrate
start_new
wait_ready
smoke_test
switch_traefik
confirm_switch
trap - ERR
# Traffic is on the new color now: a failed drain is reported, not rolled back.
drain_old || die "switched to $NEW, but $OLD did not drain cleanly (see $LOG_DIR/$OLD.log)"
log "promoted $NEW in $(($(now_ms) - STARTED_AT)) ms (rollback: scripts/promote.sh --rollback)"
