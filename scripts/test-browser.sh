#!/usr/bin/env bash
# Browser area: unit tests of static/client.js (node --test, no packages), the Python clients'
# frame handling against the golden frames (tests/e2e/test_golden.py, pytest), then the page in
# headless Chromium against the real binary and a disposable Redis (tests/browser/test_page.py,
# pytest + the PyPI package playwright driving Debian's chromium; no npm, no browser download).
# Installs what is missing (chromium, redis-server, the project venv), bounds every wait,
# stops what it started by PID. Artifacts: artifacts/browser/.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

TESTS=$ROOT/tests/browser
ARTIFACTS=$ROOT/artifacts/browser
BIN=${SWITCHYARD_BIN:-$ROOT/target/release/switchyard}
REDIS_PID=""
UNIT=skipped
GOLDEN=skipped
BROWSER=skipped

stop_started() {
    # Servers the browser test started and could not stop itself (it was killed): by PID,
    # and only if that PID is still our binary.
    local pid pids=$ARTIFACTS/server.pids
    if [ -f "$pids" ]; then
        while read -r pid; do
            if [ "$(readlink "/proc/$pid/exe" 2>/dev/null)" = "$(readlink -f "$BIN")" ]; then
                log "stopping leftover server pid $pid"
                kill -9 "$pid" 2>/dev/null || true
            fi
        done <"$pids"
    fi
    if [ -n "$REDIS_PID" ] && kill -0 "$REDIS_PID" 2>/dev/null; then
        kill "$REDIS_PID" 2>/dev/null || true
        for _ in $(seq 50); do kill -0 "$REDIS_PID" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$REDIS_PID" 2>/dev/null || true
    fi
}

summary() {
    local rc=$?
    stop_started
    log "browser tests: unit ${UNIT}, golden ${GOLDEN}, browser ${BROWSER} (artifacts in ${ARTIFACTS#"$ROOT"/})"
    exit "$rc"
}
trap summary EXIT

ensure_node() {
    command -v node >/dev/null 2>&1 || die "node is missing: apt-get install -y nodejs (node >= 20)"
    local major; major=$(node -p 'process.versions.node.split(".")[0]')
    [ "$major" -ge 20 ] || die "node $(node --version) is too old: node >= 20 is needed for node --test"
}

ensure_chromium() {
    if [ -z "${CHROMIUM:-}" ]; then
        ensure_apt chromium chromium
        CHROMIUM=$(command -v chromium)
    fi
    [ -x "$CHROMIUM" ] || die "no Chromium at $CHROMIUM"
    export CHROMIUM
}

build_binary() {
    if [ -z "${SWITCHYARD_BIN:-}" ]; then
        command -v cargo >/dev/null 2>&1 || die "cargo is missing: install Rust (rustup) to build the server"
        log "building the release binary (cargo build --release)"
        cargo_build_release
    fi
    [ -x "$BIN" ] || die "no server binary at $BIN"
}

start_redis() {
    ensure_redis
    local port; port=$(free_port)
    redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no \
        --logfile "$ARTIFACTS/redis.log" --daemonize no &
    REDIS_PID=$!
    for _ in $(seq 100); do
        redis-cli -p "$port" ping 2>/dev/null | grep -q PONG && break
        kill -0 "$REDIS_PID" 2>/dev/null || die "redis-server exited; see $ARTIFACTS/redis.log"
        sleep 0.1
    done
    redis-cli -p "$port" ping 2>/dev/null | grep -q PONG || die "redis-server on port $port did not answer within 10 s"
    export REDIS_URL="redis://127.0.0.1:$port"
    log "redis-server pid $REDIS_PID on $REDIS_URL"
}

run_unit_tests() {
    log "client unit tests (node --test client.test.mjs)"
    UNIT=failed
    (cd "$TESTS" && timeout 120 node --test client.test.mjs)
    UNIT=passed
}

run_golden_tests() {
    log "Python clients against the golden frames (pytest tests/e2e/test_golden.py)"
    GOLDEN=failed
    (cd "$ROOT" && PYTHONDONTWRITEBYTECODE=1 timeout 120 \
        "$VENV/bin/python" -m pytest -q -p no:cacheprovider -p no:locust tests/e2e/test_golden.py)
    GOLDEN=passed
}

run_browser_test() {
    log "page in headless Chromium against $BIN"
    BROWSER=failed
    (cd "$ROOT" && SWITCHYARD_BIN=$BIN ARTIFACTS_DIR=$ARTIFACTS PYTHONDONTWRITEBYTECODE=1 timeout 240 \
        "$VENV/bin/python" -m pytest -v -s -p no:cacheprovider -p no:locust tests/browser/test_page.py)
    BROWSER=passed
}

main() {
    rm -rf "$ARTIFACTS" && mkdir -p "$ARTIFACTS"
    ensure_node
    run_unit_tests
    ensure_venv
    run_golden_tests
    ensure_chromium
    build_binary
    start_redis
    run_browser_test
}

main "$@"
