#!/usr/bin/env bash
# Deploy the current build to the idle color and move traffic to it, with no failed connect:
#   find_active → migrate → start_new → wait_ready → smoke_test (direct route)
#   → switch_traefik (atomic rename) → confirm_switch (Traefik's API) → drain_old.
# Any failed step before the switch is confirmed rolls back: Traefik keeps (or regains) the
# old color, the new one is stopped, and the script exits 1 naming the step.
#
# usage: scripts/promote.sh [--to blue|green] [--dry-run] [--rollback]
#   --to COLOR   promote to COLOR (default: the idle one)
#   --dry-run    print the plan and change nothing
#   --rollback   switch back to the previous color, restarting it on the build it ran
# environment: STACK=local (scripts/stack.sh, default) or compose (compose.yml on a Docker host),
#   STACK_DIR, READY_TIMEOUT (30 s), CONFIRM_TIMEOUT (10 s), DRAIN_WAIT (40 s),
#   PROMOTE_ENV ("VAR=VALUE ..." for the new color; local stack only)
set -Eeuo pipefail
. "$(dirname "$0")/stack-lib.sh"
use_stack

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
    print_help "$0"
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
    stack_check
    OLD=$(active_color)
    if [ -n "$ROLLBACK" ]; then
        NEW=$(previous_color) || die "no previous color to roll back to"
        has_previous_build || die "no saved build of $NEW to roll back to"
    else
        NEW=${TARGET:-$(other_color "$OLD")}
    fi
    [ "$NEW" != "$OLD" ] || die "$NEW is already active"
    log "  active: $OLD → new: $NEW$([ -n "$ROLLBACK" ] && echo ', rolling back to its previous build')"
    step_done
}

migrate() {
    step migrate
    run_migrate
    step_done
}

start_new() {
    step start_new
    start_new_color "$NEW"
    step_done
}

wait_ready() {
    step wait_ready
    wait_until "$READY_TIMEOUT" "$NEW /readyz" color_ready "$NEW"
    # A color that was stopped stays DOWN in Traefik until its next health probe.
    wait_until "$READY_TIMEOUT" "Traefik's health check to see $NEW up" traefik_sees_up "$NEW"
    step_done
}

smoke_test() {
    step smoke_test
    "$VENV/bin/python" "$ROOT/scripts/smoke.py" "$(smoke_base "$NEW")" "$NEW"
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
    wait_until "$CONFIRM_TIMEOUT" "Traefik's API to show $NEW active" traefik_routes_to_color "$NEW"
    wait_until "$CONFIRM_TIMEOUT" "Traefik's entry point to answer as $NEW" answers_as "$NEW"
    record_switch "$OLD" "$NEW"
    step_done
}

drain_old() {
    step drain_old
    drain_color "$OLD"
    step_done
}

roll_back() {
    local failed=$STEP
    trap - ERR
    log "✗ $failed failed: rolling back"
    if [ -n "$SWITCHED" ]; then
        write_dynamic "$OLD"
        wait_until "$CONFIRM_TIMEOUT" "Traefik to route to $OLD again" traefik_routes_to_color "$OLD" ||
            log "  Traefik did not confirm the rollback: check its log"
        record_active "$OLD"
    fi
    stop_color "$NEW"
    log "rolled back: Traefik routes to $OLD, $NEW stopped (its log: $(color_log "$NEW"))"
    die "promote failed at step '$failed' after $(($(now_ms) - STARTED_AT)) ms"
}

print_plan() {
    cat <<TEXT
promote plan ($STACK stack, dry run, nothing changed):
  1. find_active     $OLD is active
  2. migrate         switchyard migrate
  3. start_new       $NEW from $([ -n "$ROLLBACK" ] && echo "its previous build" || echo "the current build")
  4. wait_ready      $NEW's /readyz, then Traefik's health check sees it UP (≤ ${READY_TIMEOUT}s each)
  5. smoke_test      $(smoke_base "$NEW")/ws/chat/: new session, message, resume
  6. switch_traefik  rename a new dynamic file into Traefik's watched directory
  7. confirm_switch  Traefik's API shows $NEW active and / answers as $NEW (≤ ${CONFIRM_TIMEOUT}s)
  8. drain_old       SIGTERM $OLD, wait for its exit with status 0 (≤ ${DRAIN_WAIT}s)
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
drain_old || die "switched to $NEW, but $OLD did not drain cleanly (see $(color_log "$OLD"))"
log "promoted $NEW in $(($(now_ms) - STARTED_AT)) ms (rollback: scripts/promote.sh --rollback)"
