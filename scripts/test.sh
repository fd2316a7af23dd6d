#!/usr/bin/env bash
# The one test command (README, .ci/run): installs what is missing, checks formatting and
# lints, runs the Rust unit and integration tests, then each area's end-to-end test
# (scripts/test-*.sh: browser, blue-green, load smoke). Stops at the first failure.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$ROOT"

STARTED=$SECONDS
SUMMARY=()

step() { # step NAME COMMAND...
    local name=$1 began=$SECONDS
    shift
    log "── $name"
    if ! "$@"; then
        SUMMARY+=("FAILED  $name ($((SECONDS - began)) s)")
        print_summary
        die "$name failed"
    fi
    SUMMARY+=("ok      $name ($((SECONDS - began)) s)")
}

print_summary() {
    local passed failed
    passed=$(printf '%s\n' "${SUMMARY[@]}" | grep -c '^ok' || true)
    failed=$(printf '%s\n' "${SUMMARY[@]}" | grep -c '^FAILED' || true)
    log "── summary ($((SECONDS - STARTED)) s)"
    printf '   %s\n' "${SUMMARY[@]}" >&2
    echo "test steps: $passed passed, $failed failed"
}

check_prerequisites() {
    command -v cargo >/dev/null 2>&1 || die "cargo is missing: install Rust with rustup (https://rustup.rs)"
    ensure_redis
}

check_format() { cargo fmt --all -- --check; }
check_lints() { cargo clippy --workspace --all-targets --locked -- -D warnings; }
run_rust_tests() { cargo test --workspace --locked; }

step "prerequisites (redis-server)" check_prerequisites
step "cargo fmt --check" check_format
step "cargo clippy -D warnings" check_lints
step "cargo test (unit + integration)" run_rust_tests
for area in "$ROOT"/scripts/test-*.sh; do
    [ -e "$area" ] || continue
    step "$(basename "$area")" bash "$area"
done
print_summary
