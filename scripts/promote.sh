#!/usr/bin/env bash
# Deploy the current build to the idle color and move traffic to it, with no failed connect.
# The steps (STEPS below; --dry-run explains each) run in order; any failure or interrupt
# (Ctrl-C, SIGTERM) before the switch is confirmed rolls back: Traefik keeps (or regains) the
# old color, the new one is stopped, and the script exits 1 naming the step.
#
# usage: scripts/promote.sh [--to blue|green] [--dry-run] [--rollback] [--steps]
#   --to COLOR   promote to COLOR (default: the idle one)
#   --dry-run    print the plan and change nothing
#   --rollback   switch back to the previous color, restarting it on the build it ran
#   --steps      print the step names, one per line
# environment: STACK=local (scripts/stack.sh, default), compose or swarm (a Docker host), or
#   k8s (a cluster with deploy/k8s applied, through kubectl: IMAGE names the build, and
#   --dry-run lists every kubectl command, with no cluster needed; README: Kubernetes),
#   STACK_DIR, READY_TIMEOUT (30 s; k8s 180), CONFIRM_TIMEOUT (10 s; k8s 30),
#   DRAIN_WAIT (40 s; k8s 60), PROMOTE_ENV ("VAR=VALUE ..." for the new color; local only)
set -Eeuo pipefail
. "$(dirname "$0")/stack-lib.sh"
use_stack

READY_TIMEOUT=${READY_TIMEOUT:-30}
CONFIRM_TIMEOUT=${CONFIRM_TIMEOUT:-10}
DRAIN_WAIT=${DRAIN_WAIT:-40}
TARGET=""
DRY_RUN=""
ROLLBACK=""
clock_ms STARTED_AT
STEP=""
SWITCHED=""

# The steps, in order: each is a function below, and explain_STEP says what it does.
STEPS=(find_active migrate start_new wait_ready smoke_test switch_traefik confirm_switch drain_old)
# From this step on the switch stands: a failure is reported, not rolled back.
COMMITTED_AT=drain_old

usage() {
    print_help "$0"
    echo "steps: ${STEPS[*]}"
    exit "${1:-0}"
}

while [ $# -gt 0 ]; do
    case "$1" in
        --to) TARGET=${2:-}; shift 2 ;;
        --dry-run) DRY_RUN=1; shift ;;
        --rollback) ROLLBACK=1; shift ;;
        --steps) printf '%s\n' "${STEPS[@]}"; exit 0 ;;
        -h | --help) usage 0 ;;
        *) echo "promote: unknown argument '$1'" >&2; usage 2 >&2 ;;
    esac
done
case "$TARGET" in "" | blue | green) ;; *) die "--to takes blue or green, not '$TARGET'" ;; esac

# run_step STEP: runs the step's function, timed.
run_step() {
    local began now
    STEP=$1
    clock_ms began
    log "▶ $STEP"
    "$STEP"
    clock_ms now
    log "  ✓ $STEP ($((now - began)) ms)"
}

find_active() {
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
}

migrate() {
    run_migrate
}

start_new() {
    start_new_color "$NEW"
}

wait_ready() {
    wait_until "$READY_TIMEOUT" "$NEW /readyz" color_ready "$NEW"
    # A color that was stopped stays DOWN in Traefik until its next health probe.
    wait_until "$READY_TIMEOUT" "Traefik's health check to see $NEW up" traefik_sees_up "$NEW"
}

smoke_test() {
    "$VENV/bin/python" "$ROOT/scripts/smoke.py" "$(smoke_base "$NEW")" "$NEW"
}

switch_traefik() {
    # Marked first: an interrupt during the rename must still switch back.
    SWITCHED=1
    write_dynamic "$NEW"
}

confirm_switch() {
    wait_until "$CONFIRM_TIMEOUT" "Traefik's API to show $NEW active" traefik_routes_to_color "$NEW"
    wait_until "$CONFIRM_TIMEOUT" "Traefik's entry point to answer as $NEW" answers_as "$NEW"
    record_switch "$OLD" "$NEW"
}

drain_old() {
    drain_color "$OLD"
}

roll_back() {
    local failed=$STEP why=${1:-failed} now
    trap - ERR INT TERM
    log "✗ $failed $why: rolling back"
    if [ -n "$SWITCHED" ]; then
        write_dynamic "$OLD"
        wait_until "$CONFIRM_TIMEOUT" "Traefik to route to $OLD again" traefik_routes_to_color "$OLD" ||
            log "  Traefik did not confirm the rollback: check its log"
        record_active "$OLD"
    fi
    stop_color "$NEW"
    log "rolled back: Traefik routes to $OLD, $NEW stopped (its log: $(color_log "$NEW"))"
    clock_ms now
    die "promote $why at step '$failed' after $((now - STARTED_AT)) ms"
}

# After the switch is confirmed the new color serves and is recorded as active: an interrupt
# during the drain leaves it so, and says what to check.
interrupted_after_switch() {
    trap - INT TERM
    die "interrupted while draining $OLD: $NEW is active and recorded; check $OLD with scripts/stack.sh status"
}

explain_find_active() { echo "$OLD is active"; }
explain_migrate() { echo "switchyard migrate"; }
explain_start_new() { echo "$NEW from $([ -n "$ROLLBACK" ] && echo "its previous build" || echo "the current build")"; }
explain_wait_ready() { echo "$NEW's /readyz, then Traefik's health check sees it UP (≤ ${READY_TIMEOUT}s each)"; }
explain_smoke_test() { echo "$(smoke_base "$NEW")/ws/chat/: new session, message, resume"; }
explain_switch_traefik() { echo "rename a new dynamic file into Traefik's watched directory"; }
explain_confirm_switch() { echo "Traefik's API shows $NEW active and / answers as $NEW (≤ ${CONFIRM_TIMEOUT}s)"; }
explain_drain_old() { echo "stop $OLD with SIGTERM, wait for its exit with status 0 (≤ ${DRAIN_WAIT}s)"; }

# explain STEP: what STEP does, in the stack's words when it has its own (stack_explain_STEP).
explain() {
    if declare -F "stack_explain_$1" >/dev/null; then "stack_explain_$1"; else "explain_$1"; fi
}

print_plan() {
    local n=0 name
    echo "promote plan ($STACK stack, dry run, nothing changed):"
    for name in "${STEPS[@]}"; do
        n=$((n + 1))
        printf '  %d. %-15s %s\n' "$n" "$name" "$(explain "$name")"
        # A stack that can list the commands of a step (STACK=k8s) shows them under it.
        if declare -F plan_commands >/dev/null; then plan_commands "$name" | sed 's/^/       $ /'; fi
    done
}

# Every step and its explanation exist before anything runs.
for name in "${STEPS[@]}"; do
    declare -F "$name" "explain_$name" >/dev/null || die "promote.sh: step $name lacks its function or explain_$name"
done
load_stack_env
run_step find_active
if [ -n "$DRY_RUN" ]; then
    print_plan
    exit 0
fi
trap 'roll_back failed' ERR
trap 'roll_back interrupted' INT TERM
for name in "${STEPS[@]:1}"; do
    if [ "$name" = "$COMMITTED_AT" ]; then
        trap - ERR
        trap interrupted_after_switch INT TERM
        run_step "$name" || die "switched to $NEW, but $name failed (see $(color_log "$OLD"))"
    else
        run_step "$name"
    fi
done
clock_ms now
log "promoted $NEW in $((now - STARTED_AT)) ms (rollback: scripts/promote.sh --rollback)"
