# shellcheck shell=bash
# STACK=k8s: the blue-green stack of deploy/k8s on a Kubernetes cluster, driven with kubectl,
# for promote.sh, stack.sh (status, logs) and monitor.sh. Sourced by use_stack (stack-lib.sh):
# it implements every function of STACK_FUNCTIONS.
#
# The cluster holds the state: the active color is the selector of the Service `switchyard`
# (the routing object promote switches), the color it replaced is that Service's annotation
# switchyard.dev/previous-color, and each color's build is its Deployment's image (the old
# color is scaled to 0, not changed, so --rollback scales it back up on the build it ran).
# Every kubectl call goes through `kube`; promote.sh --dry-run prints each step's calls
# (plan_commands) instead of running them, and needs no cluster: when none answers, the
# active color is K8S_ACTIVE, else the one the rendered manifests (K8S_OVERLAY) select.

K8S_STATE=$STACK_DIR/k8s
K8S_ENV_FILE=$K8S_STATE/stack.env
# A rollout may pull an image; the old color's drain is preStop (5 s) + DRAIN_TIMEOUT_SECS
# (25 s) within terminationGracePeriodSeconds (45 s); endpoints reach Traefik in seconds.
READY_TIMEOUT=${READY_TIMEOUT:-180}
DRAIN_WAIT=${DRAIN_WAIT:-60}
CONFIRM_TIMEOUT=${CONFIRM_TIMEOUT:-30}

load_stack_env() {
    # shellcheck disable=SC1090
    [ -f "$K8S_ENV_FILE" ] && . "$K8S_ENV_FILE"
    K8S_NAMESPACE=${K8S_NAMESPACE:-switchyard}
    K8S_CONTEXT=${K8S_CONTEXT:-}
    K8S_OVERLAY=${K8S_OVERLAY:-$ROOT/deploy/k8s/overlays/production}
    K8S_REPLICAS=${K8S_REPLICAS:-3}
    K8S_INGRESS_URL=${K8S_INGRESS_URL:-}
    K8S_INGRESS_HOST=${K8S_INGRESS_HOST:-}
    K8S_INGRESS_SERVICE=${K8S_INGRESS_SERVICE:-traefik/traefik}
    K8S_ACTIVE=${K8S_ACTIVE:-}
    IMAGE=${IMAGE:-}
    if [ -z "${KUBECTL:-}" ]; then
        KUBECTL=$(command -v kubectl 2>/dev/null || echo "$VENV/bin/kubectl")
    fi
    # monitor.sh prints the entry point it watches.
    # shellcheck disable=SC2034 # read by monitor.sh
    TRAEFIK_PORT=${K8S_INGRESS_URL:-"ingress (svc/$K8S_INGRESS_SERVICE)"}
    [[ "$K8S_REPLICAS" =~ ^[1-9][0-9]*$ ]] || die "K8S_REPLICAS is a number of replicas, not '$K8S_REPLICAS'"
    case "$K8S_ACTIVE" in "" | blue | green) ;; *) die "K8S_ACTIVE is blue or green, not '$K8S_ACTIVE'" ;; esac
    K8S_FORWARDS=$K8S_STATE/port-forward.$$
    trap stop_port_forwards EXIT
}

save_stack_env() {
    write_env "$K8S_ENV_FILE" K8S_NAMESPACE K8S_CONTEXT K8S_OVERLAY K8S_REPLICAS K8S_INGRESS_URL \
        K8S_INGRESS_HOST K8S_INGRESS_SERVICE
}

# ── kubectl, run or planned

# shell_words WORD...: the words as one command line a shell reads back (quoted only if needed).
shell_words() {
    local word line=""
    for word in "$@"; do
        if [[ "$word" =~ ^[A-Za-z0-9_./=:,@%+-]+$ ]]; then line+=" $word"; else line+=" '${word//\'/\'\\\'\'}'"; fi
    done
    echo "${line# }"
}

# run_or_plan COMMAND...: runs COMMAND; under KUBE_PLAN it prints it on fd 3 instead (fd 3,
# so a planned command inside $(...) still reaches the plan) and succeeds with no output.
run_or_plan() {
    if [ -n "${KUBE_PLAN:-}" ]; then
        shell_words "${1/#"$KUBECTL"/kubectl}" "${@:2}" >&3
        return 0
    fi
    "$@"
}

kube_global() { [ -z "$K8S_CONTEXT" ] || echo "--context=$K8S_CONTEXT"; }

# kube ARGS...: kubectl on this stack's namespace (and context).
kube() {
    # shellcheck disable=SC2046 # one word or none
    run_or_plan "$KUBECTL" $(kube_global) -n "$K8S_NAMESPACE" "$@"
}

deployment() { echo "deployment/switchyard-$1"; }
pods_of() { echo "app.kubernetes.io/name=switchyard,app.kubernetes.io/component=server,color=$1"; }

# A promote needs the build to roll out; a plan shows where it goes.
image() {
    if [ -n "$IMAGE" ]; then echo "$IMAGE"; elif [ -n "${KUBE_PLAN:-}${DRY_RUN:-}" ]; then echo '<IMAGE>'; else
        die "STACK=k8s promotes the image IMAGE names (IMAGE=registry.example.com/switchyard:TAG): it is not set"
    fi
}

# ── port-forwards: promote's smoke test reaches the new color through its own Service, and
# (without K8S_INGRESS_URL) the ingress through the controller's Service. Each is started once
# per promote, kept in K8S_FORWARDS (its PID and local port) and stopped on exit.

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# port_forward NAMESPACE TARGET REMOTE_PORT: the local port of a port-forward to TARGET.
port_forward() {
    local namespace=$1 target=$2 remote=$3 file pid port
    if [ -n "${KUBE_PLAN:-}" ]; then
        # shellcheck disable=SC2046 # one word or none
        run_or_plan "$KUBECTL" $(kube_global) -n "$namespace" port-forward --address 127.0.0.1 "$target" "LOCAL_PORT:$remote"
        echo LOCAL_PORT
        return 0
    fi
    file=$K8S_FORWARDS/$namespace.${target//\//.}
    if [ -f "$file" ]; then
        read -r pid port <"$file"
        if kill -0 "$pid" 2>/dev/null; then echo "$port"; return 0; fi
    fi
    mkdir -p "$K8S_FORWARDS"
    port=$(free_port)
    # shellcheck disable=SC2046 # one word or none
    "$KUBECTL" $(kube_global) -n "$namespace" port-forward --address 127.0.0.1 "$target" "$port:$remote" \
        >"$file.log" 2>&1 </dev/null &
    echo "$! $port" >"$file"
    wait_until 20 "kubectl port-forward $target" port_open "$port" || { cat "$file.log" >&2; return 1; }
    echo "$port"
}

stop_port_forwards() {
    local file pid port
    [ -d "${K8S_FORWARDS:-}" ] || return 0
    for file in "$K8S_FORWARDS"/*; do
        case "$file" in *.log) continue ;; esac
        [ -f "$file" ] || continue
        read -r pid port <"$file"
        kill "$pid" 2>/dev/null || true
    done
    rm -rf "$K8S_FORWARDS"
}

# ingress_url: where the ingress answers (K8S_INGRESS_URL, else a port-forward to Traefik).
ingress_url() {
    [ -z "$K8S_INGRESS_URL" ] || { echo "$K8S_INGRESS_URL"; return 0; }
    echo "http://127.0.0.1:$(port_forward "${K8S_INGRESS_SERVICE%%/*}" "svc/${K8S_INGRESS_SERVICE#*/}" 80)"
}

# ── what the cluster says

# cluster_answers: the namespace's active Service can be read (bounded by 10 s).
cluster_answers() {
    # shellcheck disable=SC2046 # one word or none
    command -v "$KUBECTL" >/dev/null 2>&1 && "$KUBECTL" $(kube_global) -n "$K8S_NAMESPACE" --request-timeout=10s \
        get service switchyard -o name >/dev/null 2>&1
}

# rendered_active: the color the active Service of the rendered manifests selects (kustomize
# writes keys sorted, two spaces deep: kind, metadata.name, then spec.selector).
rendered_active() {
    command -v "$KUBECTL" >/dev/null 2>&1 || die "no kubectl ($KUBECTL) to render $K8S_OVERLAY: set K8S_ACTIVE"
    "$KUBECTL" kustomize "$K8S_OVERLAY" | awk '
        /^---/ { kind = ""; name = ""; part = ""; next }
        /^[a-z]/ { part = $1 }
        /^kind: / { kind = $2 }
        part == "metadata:" && /^  name: / { name = $2 }
        part == "spec:" && /^  [^ ]/ { selector = ($1 == "selector:") }
        part == "spec:" && selector && /^    color: / && kind == "Service" && name == "switchyard" { print $2 }'
}

# active_color: the active Service's selector; without a cluster (dry run only), K8S_ACTIVE
# or the rendered manifests' selector.
active_color() {
    local color
    if [ -n "${KUBE_PLAN:-}" ] || [ -z "${K8S_OFFLINE:-}" ]; then
        color=$(kube get service switchyard -o 'jsonpath={.spec.selector.color}')
        [ -z "${KUBE_PLAN:-}" ] || return 0
    elif [ -n "$K8S_ACTIVE" ]; then
        color=$K8S_ACTIVE
    else
        color=$(rendered_active)
    fi
    case "$color" in
        blue | green) echo "$color" ;;
        *) die "the active Service switchyard (namespace $K8S_NAMESPACE) selects color '$color', not blue or green" ;;
    esac
}

previous_color() {
    if [ -n "${K8S_OFFLINE:-}" ]; then other_color "$(active_color)"; return 0; fi
    local color
    color=$(kube get service switchyard -o 'jsonpath={.metadata.annotations.switchyard\.dev/previous-color}')
    [ -n "$color" ] && echo "$color"
}

# The previous color's Deployment still has the image it ran (it was only scaled to 0).
has_previous_build() {
    [ -z "${K8S_OFFLINE:-}" ] || return 0
    [ -n "$(kube get "$(deployment "$(previous_color)")" -o 'jsonpath={.spec.template.spec.containers[0].image}')" ]
}

# color_instances COLOR: "POD exec:POD" for every running pod of COLOR.
color_instances() {
    local pod
    for pod in $(kube get pods -l "$(pods_of "$1")" --field-selector=status.phase=Running \
        -o 'jsonpath={range .items[*]}{.metadata.name}{"\n"}{end}' 2>/dev/null); do
        echo "$pod exec:$pod"
    done
}

# instance_get exec:POD PATH: the pod's answer, asked from inside it (the image has no curl:
# `switchyard healthcheck --print`).
instance_get() {
    case "$1" in
        exec:*) kube exec "${1#exec:}" -c app -- switchyard healthcheck --path "$2" --print --timeout-ms 2000 2>/dev/null || true ;;
        *) curl -s --max-time 2 "$1$2" ;;
    esac
}

# What monitor.sh shows as "routes to": the active Service's selector.
traefik_active_url() { active_color; }
color_of_url() { echo "$1"; }

# ── stack.sh: the cluster and its manifests are not this script's to create or remove.

# cmd_up: records the K8S_* settings (STACK_DIR/k8s/stack.env) for promote, status and
# monitor, and says what to apply: the cluster and the manifests are not this script's.
cmd_up() {
    load_stack_env
    save_stack_env
    log "STACK=k8s settings recorded in $K8S_ENV_FILE (namespace $K8S_NAMESPACE${K8S_CONTEXT:+, context $K8S_CONTEXT})"
    die "STACK=k8s starts no cluster: apply the manifests with 'kubectl apply -k ${K8S_OVERLAY#"$ROOT"/}' (README: Kubernetes), then deploy with 'STACK=k8s IMAGE=... scripts/promote.sh'"
}

cmd_down() {
    load_stack_env
    die "STACK=k8s removes nothing by itself: 'kubectl delete -k ${K8S_OVERLAY#"$ROOT"/}' deletes what apply made"
}

cmd_status() {
    load_stack_env
    cluster_answers || { echo "no cluster answers for namespace $K8S_NAMESPACE (kubectl: $KUBECTL)"; return 3; }
    echo "switchyard on Kubernetes, namespace $K8S_NAMESPACE: active $(active_color), previous $(previous_color || echo none)"
    kube get deployments,services,hpa,pdb,pods -l app.kubernetes.io/name=switchyard -o wide
}

cmd_logs() {
    load_stack_env
    local follow=()
    [ "${1:-}" != "-f" ] || follow=(-f)
    kube logs -l app.kubernetes.io/name=switchyard --prefix --tail 20 --max-log-requests 20 "${follow[@]}"
}

print_addresses() {
    cat <<TEXT
switchyard on Kubernetes (namespace $K8S_NAMESPACE, manifests ${K8S_OVERLAY#"$ROOT"/})
  through the ingress   ${K8S_INGRESS_URL:-"kubectl -n ${K8S_INGRESS_SERVICE%%/*} port-forward svc/${K8S_INGRESS_SERVICE#*/} 8080:80"}
  each color            kubectl -n $K8S_NAMESPACE port-forward svc/switchyard-blue 8001:8000 (or -green)
next: STACK=k8s IMAGE=... scripts/promote.sh, STACK=k8s scripts/monitor.sh, STACK=k8s scripts/stack.sh status
TEXT
}

# ── promote.sh's steps

# stack_check: kubectl and the cluster answer; a dry run goes on without them (K8S_OFFLINE).
stack_check() {
    K8S_OFFLINE=""
    cluster_answers && return 0
    [ -n "${DRY_RUN:-}" ] ||
        die "no cluster answers for service/switchyard in namespace $K8S_NAMESPACE (kubectl: $KUBECTL): apply deploy/k8s first (README: Kubernetes)"
    K8S_OFFLINE=1
    log "  no cluster answers: the plan's active color is $([ -n "$K8S_ACTIVE" ] && echo "K8S_ACTIVE's" || echo "the one ${K8S_OVERLAY#"$ROOT"/} renders")"
}

# run_migrate: the migrate Job from the suspended CronJob's template, on the new build, once.
run_migrate() {
    local job new_image
    job=switchyard-migrate-$(date -u +%Y%m%d%H%M%S)
    if [ -z "${ROLLBACK:-}" ]; then
        # Before any change: a promote without IMAGE stops here.
        new_image=$(image)
        kube set image cronjob/switchyard-migrate "migrate=$new_image"
    fi
    kube create job "$job" --from=cronjob/switchyard-migrate
    kube wait --for=condition=complete "job/$job" --timeout="${READY_TIMEOUT}s"
}

# start_new_color COLOR: COLOR on the new build (or, rolling back, the build it kept), at
# K8S_REPLICAS (its HPA takes over from there), then waits for the rollout. The annotation
# makes new pods even when the image is the same.
start_new_color() {
    local patch new_image
    if [ -n "${ROLLBACK:-}" ]; then
        patch="{\"spec\":{\"replicas\":$K8S_REPLICAS}}"
    else
        new_image=$(image)
        patch="{\"spec\":{\"replicas\":$K8S_REPLICAS,\"template\":{\"metadata\":{\"annotations\":{\"switchyard.dev/promoted-at\":\"$(date -u +%FT%TZ)\"}},\"spec\":{\"containers\":[{\"name\":\"app\",\"image\":\"$new_image\"}]}}}}"
    fi
    kube patch "$(deployment "$1")" --type=strategic -p "$patch"
    kube rollout status "$(deployment "$1")" --timeout="${READY_TIMEOUT}s"
}

# color_ready COLOR: every replica of COLOR's Deployment is updated and ready.
color_ready() {
    local counts ready updated wanted
    counts=$(kube get "$(deployment "$1")" -o 'jsonpath={.status.readyReplicas} {.status.updatedReplicas} {.spec.replicas}')
    read -r ready updated wanted <<<"$counts"
    [ -n "$wanted" ] && [ "$wanted" -gt 0 ] && [ "${ready:-0}" = "$wanted" ] && [ "${updated:-0}" = "$wanted" ]
}

# traefik_sees_up COLOR: COLOR's own Service lists K8S_REPLICAS ready endpoints and none that
# is neither ready nor terminating (what Traefik and the smoke test see; an unset condition
# prints as empty).
traefik_sees_up() {
    local states
    states=$(kube get endpointslices -l "kubernetes.io/service-name=switchyard-$1" \
        -o 'jsonpath={range .items[*].endpoints[*]}{.conditions.ready}/{.conditions.terminating}{"\n"}{end}')
    [ "$(grep -c '^true/' <<<"$states")" -ge "$K8S_REPLICAS" ] && ! grep -qE '^false/(false)?$' <<<"$states"
}

# smoke_base COLOR: COLOR's own Service, through a port-forward (to one of its pods).
smoke_base() {
    local port
    if [ -n "${DRY_RUN:-}" ]; then echo "ws://127.0.0.1:LOCAL_PORT"; return 0; fi
    port=$(port_forward "$K8S_NAMESPACE" "svc/switchyard-$1" 8000) || return 1
    echo "ws://127.0.0.1:$port"
}

# write_dynamic COLOR: the switch: the active Service selects COLOR's pods.
write_dynamic() {
    kube patch service switchyard --type=merge -p "{\"spec\":{\"selector\":{\"color\":\"$1\"}}}"
}

# traefik_routes_to_color COLOR: the active Service selects COLOR and its endpoints are
# COLOR's pods only.
traefik_routes_to_color() {
    local selected pods
    selected=$(kube get service switchyard -o 'jsonpath={.spec.selector.color}')
    pods=$(kube get endpointslices -l kubernetes.io/service-name=switchyard \
        -o 'jsonpath={range .items[*].endpoints[*]}{.targetRef.name}{"\n"}{end}')
    [ "$selected" = "$1" ] && [ -n "$pods" ] && ! grep -qv "^switchyard-$1-" <<<"$pods"
}

# answers_as COLOR: /readyz through the ingress answers as COLOR.
answers_as() {
    local url headers=()
    url=$(ingress_url) || return 1
    [ -z "$K8S_INGRESS_HOST" ] || headers=(-H "Host: $K8S_INGRESS_HOST")
    run_or_plan curl -fsS --max-time 2 "${headers[@]}" "$url/readyz" | grep -q "\"$1\"" || [ -n "${KUBE_PLAN:-}" ]
}

# The selector is the record of the active color.
record_active() { :; }

# record_switch OLD NEW: OLD is kept (scaled to 0 by the drain, its image unchanged) for --rollback.
record_switch() {
    kube annotate service switchyard --overwrite "switchyard.dev/previous-color=$1"
}

stop_color() { kube scale "$(deployment "$1")" --replicas=0; }

color_log() { echo "kubectl -n $K8S_NAMESPACE logs -l color=$1 --prefix; kubectl -n $K8S_NAMESPACE describe $(deployment "$1")"; }

# drain_color COLOR: scaled to 0; each pod's preStop pause, then SIGTERM and the drain, all
# within its grace period; waits for every pod to be gone. Kubernetes deletes a pod once it
# exits, so its exit status is not kept: a drain cut by SIGKILL shows in the events
# (kubectl get events) and the app's log, not here.
drain_color() {
    kube scale "$(deployment "$1")" --replicas=0
    # `kubectl wait` fails on a selector that matches nothing: a color with no pod is drained.
    if [ -n "$(kube get pods -l "$(pods_of "$1")" -o name)" ] || [ -n "${KUBE_PLAN:-}" ]; then
        kube wait --for=delete pod -l "$(pods_of "$1")" --timeout="${DRAIN_WAIT}s"
    fi
    log "  $(deployment "$1") drained: no pod left"
}

# What the steps mean here, where promote.sh's words are Traefik's file provider's.
stack_explain_find_active() { echo "$OLD is active (the selector of service/switchyard$([ -n "${K8S_OFFLINE:-}" ] && echo ': no cluster answered, so K8S_ACTIVE or the render'))"; }
stack_explain_migrate() { echo "switchyard migrate, as a Job from the suspended CronJob switchyard-migrate (≤ ${READY_TIMEOUT}s)"; }
stack_explain_start_new() { echo "deployment/switchyard-$NEW on $(if [ -n "${ROLLBACK:-}" ]; then echo "the image it kept"; else image; fi) at $K8S_REPLICAS replicas, rolled out (≤ ${READY_TIMEOUT}s)"; }
stack_explain_wait_ready() { echo "every $NEW replica ready, then service/switchyard-$NEW has $K8S_REPLICAS ready endpoints (≤ ${READY_TIMEOUT}s each)"; }
stack_explain_switch_traefik() { echo "service/switchyard's selector to color=$NEW (one patch: the endpoints, and so Traefik, follow)"; }
stack_explain_confirm_switch() { echo "service/switchyard selects only $NEW pods, and /readyz through the ingress answers as $NEW (≤ ${CONFIRM_TIMEOUT}s)"; }
stack_explain_drain_old() { echo "scale $OLD to 0 (kept for --rollback): preStop, SIGTERM, drain; wait until its pods are gone (≤ ${DRAIN_WAIT}s)"; }

# plan_commands STEP: the commands STEP runs, one per line (promote.sh --dry-run).
plan_commands() {
    local KUBE_PLAN=1
    {
        case "$1" in
            find_active)
                active_color >/dev/null || :
                [ -z "${ROLLBACK:-}" ] || { previous_color >/dev/null || :; }
                ;;
            migrate) run_migrate || : ;;
            start_new) start_new_color "$NEW" || : ;;
            wait_ready) { color_ready "$NEW"; traefik_sees_up "$NEW"; } || : ;;
            smoke_test) port_forward "$K8S_NAMESPACE" "svc/switchyard-$NEW" 8000 >/dev/null ;;
            switch_traefik) write_dynamic "$NEW" || : ;;
            confirm_switch) { traefik_routes_to_color "$NEW"; answers_as "$NEW"; record_switch "$OLD" "$NEW"; } || : ;;
            drain_old) drain_color "$OLD" || : ;;
        esac
    } 3>&1 2>/dev/null
}
