# shellcheck shell=bash
# Shared helpers for switchyard's scripts: logging, prerequisites, the project venv.
# Source it: `. "$(dirname "$0")/lib.sh"`.

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV=${SWITCHYARD_VENV:-$ROOT/.venv}

# print_help SCRIPT: the script's header comment (the lines after the shebang, up to the first
# line that is not a comment), without the leading "# ".
print_help() { sed -n '2,/^[^#]/{/^#/!q;s/^# \{0,1\}//;p}' "$1"; }

log() { printf '%s %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
# cargo_build_release: the workspace's release binaries (switchyard, switchyard-load), built
# the same way by every script. Building one package alone resolves the dependencies' features
# differently (the load generator's are not unified in), which compiles them all a second time.
cargo_build_release() {
    command -v cargo >/dev/null 2>&1 || die "cargo is missing: install Rust with rustup (https://rustup.rs)"
    (cd "$ROOT" && cargo build --release --quiet --workspace)
}

die() { log "error: $*"; exit 1; }

# ensure_apt COMMAND PACKAGE: install PACKAGE from Debian when COMMAND is missing (without
# its recommends: docker-compose would bring a whole Docker engine).
ensure_apt() {
    command -v "$1" >/dev/null 2>&1 && return 0
    [ "$(id -u)" = 0 ] || die "$1 is missing: install it with 'sudo apt-get install -y $2'"
    log "installing $2 (apt-get)"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$2" >/dev/null
    command -v "$1" >/dev/null 2>&1 || die "$2 installed but $1 is still not on PATH"
}

ensure_redis() { ensure_apt redis-server redis-server && ensure_apt redis-sentinel redis-sentinel; }

# ensure_venv: the project venv with every pin in scripts/requirements.txt,
# reinstalled only when that file changes.
ensure_venv() {
    local req="$ROOT/scripts/requirements.txt" stamp="$VENV/.requirements.sha"
    command -v python3 >/dev/null 2>&1 || die "python3 is missing: apt-get install -y python3 python3-venv"
    [ -x "$VENV/bin/python" ] || { log "creating venv $VENV"; python3 -m venv "$VENV"; }
    local want; want=$(sha256sum "$req" | cut -d' ' -f1)
    if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
        log "installing Python tools into $VENV (scripts/requirements.txt)"
        "$VENV/bin/pip" install -q --disable-pip-version-check -r "$req"
        echo "$want" >"$stamp"
    fi
}

# free_port: a TCP port free on every address, below the kernel's ephemeral range, so that
# a load test's many client sockets (which take ephemeral ports) never collide with it.
free_port() { free_ports 1; }

# free_ports N: N distinct such ports, separated by spaces.
free_ports() {
    python3 - "$1" <<'PY'
import random, socket, sys
low = int(open("/proc/sys/net/ipv4/ip_local_port_range").read().split()[0])
wanted, found = int(sys.argv[1]), []
for _ in range(200 * wanted):
    port = random.randint(max(1025, low - 12000), low - 1)
    if port in found:
        continue
    with socket.socket() as s:
        try:
            s.bind(("0.0.0.0", port))
        except OSError:
            continue
    found.append(port)
    if len(found) == wanted:
        print(*found)
        break
else:
    raise SystemExit("no free port found below the ephemeral range")
PY
}

# wait_for_http SECONDS URL WHAT: polls URL until it answers 2xx, or dies naming WHAT.
wait_for_http() {
    local deadline=$((SECONDS + $1))
    until curl -fs -o /dev/null --max-time 2 "$2"; do
        [ $SECONDS -lt $deadline ] || die "$3 did not answer $2 within $1 s"
        sleep 0.02
    done
}

# keep_logs AREA: copies the test's WORK directory to artifacts/AREA for a look after a failure.
keep_logs() {
    mkdir -p "$ROOT/artifacts/$1"
    cp -r "$WORK"/. "$ROOT/artifacts/$1/" 2>/dev/null || true
    log "logs kept in artifacts/$1/"
}

# stop_pid PID: SIGTERM to a process this script started, if any (an empty PID is none).
stop_pid() {
    if [ -n "${1:-}" ]; then kill "$1" 2>/dev/null || true; fi
}

# start_scratch_redis LOG: a throwaway redis-server (no persistence) on a free port, migrated;
# sets REDIS_PID, REDIS_PORT and REDIS_URL. The caller stops it by PID.
start_scratch_redis() {
    REDIS_PORT=$(free_port)
    redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no >"$1" 2>&1 &
    # shellcheck disable=SC2034 # the caller's, to stop it
    REDIS_PID=$!
    REDIS_URL=redis://127.0.0.1:$REDIS_PORT
    local deadline=$((SECONDS + 10))
    until redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1; do
        [ $SECONDS -lt $deadline ] || die "redis-server did not start (see $1)"
        sleep 0.05
    done
    REDIS_URL=$REDIS_URL "$ROOT/target/release/switchyard" migrate >/dev/null
}

# start_scratch_server LOG [VAR=VALUE...]: the release server on a free port against REDIS_URL,
# ready; sets SERVER_PID and PORT. The caller stops it by PID.
start_scratch_server() {
    local log_file=$1
    shift
    PORT=$(free_port)
    env PORT="$PORT" BIND=127.0.0.1 REDIS_URL="$REDIS_URL" "$@" "$ROOT/target/release/switchyard" serve >>"$log_file" 2>&1 &
    # shellcheck disable=SC2034 # the caller's, to stop it
    SERVER_PID=$!
    wait_for_http 10 "http://127.0.0.1:$PORT/readyz" "the server"
}
