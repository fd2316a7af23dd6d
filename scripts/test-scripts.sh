#!/usr/bin/env bash
# The shell side's own checks: shellcheck on every script (settings in .shellcheckrc), every
# user-facing script's --help, and the README's list of promote steps against promote.sh's
# own list (STEPS), so the two cannot drift apart; and a stack lacking a function promote
# needs is refused before anything changes.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$ROOT"

FAILED=0
fail() { log "FAILED: $*"; FAILED=$((FAILED + 1)); }

ensure_apt shellcheck shellcheck
log "shellcheck scripts/*.sh ($(shellcheck --version | sed -n 's/^version: //p'))"
shellcheck scripts/*.sh || fail "shellcheck found problems"

for script in stack promote monitor images bench; do
    help=$(bash "scripts/$script.sh" --help 2>&1) || { fail "$script.sh --help exited non-zero"; continue; }
    grep -q "^usage: scripts/$script.sh" <<<"$help" || fail "$script.sh --help has no usage line"
    # A help text is the header comment: no shell code may leak into it.
    if grep -nE '^(set -|\. |if |for |[a-z_]+\(\) \{)' <<<"$help"; then fail "$script.sh --help prints code"; fi
done
log "--help of stack, promote, monitor, images, bench"

steps=$(bash scripts/promote.sh --steps)
# shellcheck disable=SC2016 # the backquotes are Markdown's
documented=$(sed -n '/^### Deploying: `scripts\/promote.sh`/,/^### /p' README.md | sed -n 's/^[0-9]*\. `\([a-z_]*\)`.*/\1/p')
if [ "$steps" != "$documented" ]; then
    fail "README's promote steps differ from promote.sh --steps"
    diff <(echo "$steps") <(echo "$documented") >&2 || true
fi
log "README's promote steps match promote.sh ($(echo "$steps" | wc -l) steps)"

# A stack without one of the functions promote needs is refused before anything changes: a
# copy of the scripts whose local stack lacks drain_color, run against an empty STACK_DIR.
refuses_an_incomplete_stack() {
    local copy status=0 output
    copy=$(mktemp -d /tmp/switchyard-scripts.XXXXXX)
    cp -r "$ROOT/scripts" "$copy/"
    sed -i '/^drain_color() {/,/^}/d' "$copy/scripts/stack-local.sh"
    output=$(STACK=local STACK_DIR="$copy/stack" bash "$copy/scripts/promote.sh" --to green 2>&1) || status=$?
    [ "$status" -ne 0 ] && grep -q "STACK=local lacks drain_color" <<<"$output" && [ ! -e "$copy/stack" ]
    local verdict=$?
    [ "$verdict" -eq 0 ] || echo "$output" >&2
    rm -rf "$copy"
    return "$verdict"
}
if refuses_an_incomplete_stack; then
    log "a stack lacking drain_color is refused before any change"
else
    fail "promote.sh did not refuse a stack lacking drain_color"
fi

[ "$FAILED" -eq 0 ] || die "$FAILED script check(s) failed"
log "script checks passed"
