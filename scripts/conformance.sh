#!/usr/bin/env bash
# RFC 6455 conformance: the Autobahn|Testsuite fuzzing client (PyPI autobahntestsuite
# 25.10.1, Python 2 code, in .venv2 on a Python 2.7 interpreter) runs cases 1-7, 9 and 10
# against /ws/echo of a server started here (CONFORMANCE_ECHO=1, memory store) on a free
# loopback port. Fails on any case not OK, NON-STRICT or INFORMATIONAL, or whose close is
# not clean (behaviorClose not OK or INFORMATIONAL); prints a table per case group.
#
# Exit status: 0 every case passed; 1 a case failed or the run broke; 3 cannot run here
# (no Python 2.7 interpreter could be found or installed).
#
# Variables: SWITCHYARD_BIN (a built binary; default: build target/release/switchyard),
# PYTHON2 (a Python 2.7 interpreter; default: pyenv's 2.7.x, else python2.7 on PATH),
# CONFORMANCE_CASES (comma-separated, default 1.*,2.*,3.*,4.*,5.*,6.*,7.*,9.*,10.*),
# CONFORMANCE_TIMEOUT (seconds for the whole run, default 1200), CONFORMANCE_REPORT
# (report directory, default artifacts/conformance).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$ROOT"

case ${1:-} in -h | --help) print_help "$0"; exit 0 ;; esac

CANNOT_RUN=3
VENV2=$ROOT/.venv2
REQUIREMENTS=$ROOT/scripts/conformance-requirements.txt
# virtualenv's last line that still runs on Python 2.7; only used to create .venv2.
VIRTUALENV_PIN=virtualenv==20.15.1
CASES=${CONFORMANCE_CASES:-1.*,2.*,3.*,4.*,5.*,6.*,7.*,9.*,10.*}
TIMEOUT=${CONFORMANCE_TIMEOUT:-1200}
REPORT=${CONFORMANCE_REPORT:-$ROOT/artifacts/conformance}
WORK=$(mktemp -d /tmp/switchyard-conformance.XXXXXX)
SERVER_PID=""

cleanup() {
    if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT

is_python27() { [ -x "$1" ] && "$1" -c 'import sys; sys.exit(sys.version_info[:2] != (2, 7))' 2>/dev/null; }

# find_python2: prints a Python 2.7 interpreter, installing one with pyenv if pyenv is here.
find_python2() {
    local candidate pyenv_root
    if [ -n "${PYTHON2:-}" ]; then
        is_python27 "$PYTHON2" && { echo "$PYTHON2"; return 0; }
        log "PYTHON2=$PYTHON2 is not a Python 2.7 interpreter"
        return 1
    fi
    pyenv_root=$(pyenv root 2>/dev/null || echo "$HOME/.pyenv")
    for candidate in "$pyenv_root"/versions/2.7*/bin/python "$(command -v python2.7 || true)"; do
        is_python27 "$candidate" && { echo "$candidate"; return 0; }
    done
    if command -v pyenv >/dev/null 2>&1; then
        log "no Python 2.7 found: trying 'pyenv install -s 2.7.18' (compiles it, minutes)"
        if timeout 1200 pyenv install -s 2.7.18 >"$WORK/pyenv-install.log" 2>&1 \
            && is_python27 "$pyenv_root/versions/2.7.18/bin/python"; then
            echo "$pyenv_root/versions/2.7.18/bin/python"
            return 0
        fi
        log "pyenv could not install Python 2.7.18 (see its log above)"
        tail -n 5 "$WORK/pyenv-install.log" >&2 || true
    fi
    return 1
}

# ensure_venv2 PYTHON: .venv2 on that interpreter with every pin, reinstalled only when the
# requirements change. virtualenv itself is unpacked into a scratch directory for the purpose.
ensure_venv2() {
    local python=$1 stamp=$VENV2/.requirements.sha want
    if ! is_python27 "$VENV2/bin/python"; then
        log "creating $VENV2 on $python"
        rm -rf "$VENV2"
        "$python" -m pip install -q --disable-pip-version-check --target "$WORK/virtualenv" "$VIRTUALENV_PIN"
        PYTHONPATH=$WORK/virtualenv "$python" -m virtualenv -q "$VENV2"
    fi
    want=$(sha256sum "$REQUIREMENTS" | cut -d' ' -f1)
    if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
        log "installing Autobahn|Testsuite into $VENV2 (scripts/conformance-requirements.txt)"
        "$VENV2/bin/pip" install -q --disable-pip-version-check -r "$REQUIREMENTS"
        echo "$want" >"$stamp"
    fi
}

start_server() {
    local bin=$1 port
    port=$(free_port)
    # Autobahn's largest messages (case 9) are 16 MiB.
    env PORT="$port" BIND=127.0.0.1 STORE=memory CONFORMANCE_ECHO=1 MAX_MESSAGE_BYTES=16777216 \
        LOG_FORMAT=json RUST_LOG=warn "$bin" serve >"$REPORT/server.log" 2>&1 &
    SERVER_PID=$!
    wait_for_http 10 "http://127.0.0.1:$port/readyz" "the server"
    PORT=$port
}

# judge INDEX_JSON: a table per case group; exit 1 if any case failed.
judge() {
    python3 - "$1" <<'PY'
import collections, json, sys
report = json.load(open(sys.argv[1]))
cases = next(iter(report.values()))
passing = {"OK", "NON-STRICT", "INFORMATIONAL"}
clean = {"OK", "INFORMATIONAL"}
def key(case):
    return tuple(int(part) for part in case.split("."))
groups = collections.OrderedDict()
failed = []
notable = []
for case in sorted(cases, key=key):
    result = cases[case]
    behavior, close = result["behavior"], result["behaviorClose"]
    group = groups.setdefault(case.split(".")[0], collections.Counter())
    group[behavior] += 1
    if behavior not in passing or close not in clean:
        failed.append("%s: %s, close %s (code %s)" % (case, behavior, close, result.get("remoteCloseCode")))
    elif behavior != "OK":
        notable.append("%s %s" % (case, behavior))
print("| group | cases | OK | NON-STRICT | INFORMATIONAL | failed |")
print("| --- | --- | --- | --- | --- | --- |")
for name, counts in groups.items():
    total = sum(counts.values())
    bad = total - sum(counts[b] for b in passing)
    print("| %s | %d | %d | %d | %d | %d |" % (name, total, counts["OK"], counts["NON-STRICT"], counts["INFORMATIONAL"], bad))
print("%d cases, %d failed" % (len(cases), len(failed)))
if notable:
    print("not plain OK: " + ", ".join(notable))
for line in failed:
    print("FAILED " + line)
sys.exit(1 if failed else 0)
PY
}

PY2=$(find_python2) || { log "cannot run here: no Python 2.7 interpreter (set PYTHON2, or install pyenv)"; exit $CANNOT_RUN; }
ensure_venv2 "$PY2"
BIN=${SWITCHYARD_BIN:-}
if [ -z "$BIN" ]; then
    log "building the release binary"
    cargo_build_release
    BIN=$ROOT/target/release/switchyard
fi
rm -rf "$REPORT"
mkdir -p "$REPORT"
start_server "$BIN"
python3 - "$WORK/spec.json" "$REPORT" "$PORT" "$CASES" <<'PY'
import json, sys
path, outdir, port, cases = sys.argv[1:]
json.dump({
    "outdir": outdir,
    "servers": [{"agent": "switchyard", "url": "ws://127.0.0.1:%s/ws/echo" % port}],
    "cases": cases.split(","),
    "exclude-cases": [],
    "exclude-agent-cases": {},
}, open(path, "w"), indent=2)
PY
log "Autobahn fuzzingclient, cases $CASES, against ws://127.0.0.1:$PORT/ws/echo (at most $TIMEOUT s)"
began=$SECONDS
# The suite writes into the current directory as well: run it in the scratch directory.
if ! (cd "$WORK" && timeout "$TIMEOUT" "$VENV2/bin/wstest" -m fuzzingclient -s "$WORK/spec.json" >"$REPORT/wstest.log" 2>&1); then
    tail -n 20 "$REPORT/wstest.log" >&2
    die "wstest failed or took longer than $TIMEOUT s (log: ${REPORT#"$ROOT"/}/wstest.log)"
fi
log "suite finished in $((SECONDS - began)) s; report in ${REPORT#"$ROOT"/}/index.html"
kill -0 "$SERVER_PID" 2>/dev/null || die "the server died during the run (log: ${REPORT#"$ROOT"/}/server.log)"
judge "$REPORT/index.json"
