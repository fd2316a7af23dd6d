#!/usr/bin/env bash
# The alert rules' tests (deploy/alerts): static, unit and live.
#   1. promtool check rules; every alert has a summary and a runbook_url naming a README section;
#      every alert has a firing and a silent case in deploy/alerts/tests.yml; promtool test rules.
#   2. amtool check-config and promtool check config of the compose stack's files.
#   3. Live, on loopback, no Docker: a private process stack (scripts/stack.sh, free ports), real
#      Prometheus and Alertmanager (Debian's packages) as local processes scraping its colors and
#      Traefik every second with the real rules (every `for:` cut to ALERT_FOR), Alertmanager
#      routing to a local webhook receiver (scripts/alert_webhook.py). The active color's process
#      is stopped: SwitchyardActiveColorNoReadyInstance (and Traefik's no-ready-backend alert)
#      must reach the webhook within ALERT_WAIT seconds; it is restarted: both must resolve.
# Everything it starts is stopped by PID on exit; logs go to artifacts/alerts/ on a failure.
set -euo pipefail
. "$(dirname "$0")/stack-lib.sh"

ALERT_FOR=${ALERT_FOR:-2s}
ALERT_WAIT=${ALERT_WAIT:-60}
RULES=$ROOT/deploy/alerts/switchyard.rules.yml
WORK=$(mktemp -d /tmp/switchyard-alerts.XXXXXX)
export STACK_DIR=$WORK/stack STACK=local
. "$ROOT/scripts/e2e-lib.sh"
PROMETHEUS_PID="" ALERTMANAGER_PID="" WEBHOOK_PID=""

cleanup() {
    stop_pid "$PROMETHEUS_PID"
    stop_pid "$ALERTMANAGER_PID"
    stop_pid "$WEBHOOK_PID"
    "$ROOT/scripts/stack.sh" down >/dev/null 2>&1 || true
    if [ "$FAILURES" -gt 0 ] || [ "${KEEP_ALERTS:-}" ]; then
        keep_logs alerts
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT

# ── 1 and 2: static checks

rules_are_documented_and_tested() {
    python3 - "$RULES" "$ROOT/deploy/alerts/tests.yml" "$ROOT/README.md" <<'PY'
import re, sys
rules, tests, readme = (open(p, encoding="utf-8").read() for p in sys.argv[1:])
alerts = re.findall(r"^\s+- alert: (\w+)$", rules, re.M)
anchors = {re.sub(r"[^a-z0-9 -]", "", h.strip().lower()).replace(" ", "-")
           for h in re.findall(r"^#+ (.*)$", readme, re.M)}
problems = []
for block in re.split(r"^\s+- alert: ", rules, flags=re.M)[1:]:
    name = block.split()[0]
    for key in ("summary", "description", "runbook_url"):
        if not re.search(rf"^\s+{key}: \S", block, re.M):
            problems.append(f"{name} has no {key}")
    url = re.search(r"runbook_url: \"README\.md#([\w-]+)\"", block)
    if not url or url.group(1) not in anchors:
        problems.append(f"{name}'s runbook_url names no README section")
cases = re.findall(r"alertname: (\w+)\n\s+exp_alerts:( \[\])?", tests)
for name in alerts:
    if (name, "") not in cases:
        problems.append(f"{name} has no firing case in tests.yml")
    if (name, " []") not in cases:
        problems.append(f"{name} has no silent case in tests.yml")
for problem in problems:
    print(problem, file=sys.stderr)
print(f"{len(alerts)} alerts, {len(cases)} test cases", file=sys.stderr)
sys.exit(1 if problems or not alerts else 0)
PY
}

# compose_configs_check: the compose stack's Prometheus configuration (its rule_files path
# pointed at the checkout) and Alertmanager configuration are valid.
compose_configs_check() {
    sed "s|/etc/prometheus/rules/|$ROOT/deploy/alerts/|" "$ROOT/docker/prometheus.yml" >"$WORK/compose-prometheus.yml"
    promtool check config "$WORK/compose-prometheus.yml" >&2 &&
        amtool check-config "$ROOT/docker/alertmanager.yml" >&2
}

# ── 3: the live test

# write_configs: Prometheus (1 s scrapes and evaluations, the real rules with short for:) and
# Alertmanager (1 s grouping, resolved notifications on) for the private stack.
write_configs() {
    sed -E "s/^( +for: ).*/\1$ALERT_FOR/" "$RULES" >"$WORK/rules.yml"
    cat >"$WORK/prometheus.yml" <<YAML
global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
rule_files: ["$WORK/rules.yml"]
alerting:
  alertmanagers:
    - static_configs: [{targets: ["127.0.0.1:$AM_PORT"]}]
scrape_configs:
  - job_name: switchyard
    static_configs:
      - {targets: ["127.0.0.1:$BLUE_PORT"], labels: {color: blue}}
      - {targets: ["127.0.0.1:$GREEN_PORT"], labels: {color: green}}
  - job_name: traefik
    static_configs: [{targets: ["127.0.0.1:$TRAEFIK_API_PORT"]}]
YAML
    cat >"$WORK/alertmanager.yml" <<YAML
route:
  receiver: webhook
  group_by: [alertname, color]
  group_wait: 1s
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: webhook
    webhook_configs:
      - url: http://127.0.0.1:$HOOK_PORT/alerts
        send_resolved: true
YAML
    promtool check config "$WORK/prometheus.yml" >/dev/null
    amtool check-config "$WORK/alertmanager.yml" >/dev/null
}

start_monitoring() {
    PROM_PORT=$(free_port) AM_PORT=$(free_port) HOOK_PORT=$(free_port)
    write_configs
    python3 "$ROOT/scripts/alert_webhook.py" "$HOOK_PORT" "$WORK/webhook.jsonl" 2>"$WORK/webhook.log" &
    WEBHOOK_PID=$!
    # No cluster listener: a lone Alertmanager (it would bind :9094 on every address otherwise).
    prometheus-alertmanager --config.file="$WORK/alertmanager.yml" --storage.path="$WORK/alertmanager" \
        --web.listen-address="127.0.0.1:$AM_PORT" --cluster.listen-address= >"$WORK/alertmanager.log" 2>&1 &
    ALERTMANAGER_PID=$!
    prometheus --config.file="$WORK/prometheus.yml" --storage.tsdb.path="$WORK/prometheus" \
        --web.listen-address="127.0.0.1:$PROM_PORT" >"$WORK/prometheus.log" 2>&1 &
    PROMETHEUS_PID=$!
    wait_for_http 20 "http://127.0.0.1:$HOOK_PORT/" "the webhook receiver"
    wait_for_http 30 "http://127.0.0.1:$AM_PORT/-/ready" "Alertmanager"
    wait_for_http 60 "http://127.0.0.1:$PROM_PORT/-/ready" "Prometheus"
    log "Prometheus :$PROM_PORT, Alertmanager :$AM_PORT, webhook :$HOOK_PORT (rules' for: $ALERT_FOR)"
}

# query_value EXPR: the first sample's value of an instant query ("" when the result is empty).
query_value() {
    curl -fsS --max-time 2 "http://127.0.0.1:$PROM_PORT/api/v1/query" --data-urlencode "query=$1" |
        python3 -c 'import json,sys; r=json.load(sys.stdin)["data"]["result"]; print(r[0]["value"][1] if r else "")'
}
query_is() { [ "$(query_value "$1")" = "$2" ]; }

# notified STATUS ALERT COLOR: the webhook got a notification of ALERT (for COLOR, or any) in STATUS.
notified() {
    python3 - "$WORK/webhook.jsonl" "$@" <<'PY'
import json, sys
path, status, alert, color = sys.argv[1:]
try:
    lines = open(path, encoding="utf-8").read().splitlines()
except FileNotFoundError:
    sys.exit(1)
for line in lines:
    for a in json.loads(line)["alerts"]:
        labels = a["labels"]
        if a["status"] == status and labels["alertname"] == alert and labels.get("color", color) == color:
            sys.exit(0)
sys.exit(1)
PY
}

not_notified() { ! notified "$@"; }

# timed WHAT COMMAND...: waits up to ALERT_WAIT s for COMMAND and logs how long it took.
timed() {
    local what=$1 began=$SECONDS
    shift
    wait_until "$ALERT_WAIT" "$what" "$@" || return 1
    log "    $what after $((SECONDS - began)) s"
}

ensure_apt promtool prometheus
ensure_apt prometheus-alertmanager prometheus-alertmanager
ensure_apt amtool prometheus-alertmanager
log "$(promtool --version 2>&1 | head -n 1); $(prometheus-alertmanager --version 2>&1 | head -n 1)"

check "promtool check rules" promtool check rules "$RULES"
check "every alert has a summary, a runbook section and a firing and a silent test" rules_are_documented_and_tested
check "promtool test rules (deploy/alerts/tests.yml)" promtool test rules "$ROOT/deploy/alerts/tests.yml"
check "the compose stack's Prometheus and Alertmanager configurations are valid" compose_configs_check

ensure_redis
ensure_venv
log "building the release binary"
cargo_build_release
start_topology_stack single 1
start_monitoring

active=$(active_color)
check "Prometheus scrapes both colors and Traefik" wait_until 30 "every target up" query_is 'sum(up)' 3
check "the rules see $active as the active color" wait_until 30 "the active color" \
    query_is "switchyard:active_color:info{color=\"$active\"}" 1
check "no alert fires while $active is ready" \
    query_is 'count(ALERTS{alertstate="firing",alertname=~"SwitchyardActiveColorNoReadyInstance|SwitchyardTraefikRoutesToNoReadyBackend"})' ""

log "stopping the active color ($active)"
stop_color "$active"
check "SwitchyardActiveColorNoReadyInstance reaches the webhook" \
    timed "the firing notification" notified firing SwitchyardActiveColorNoReadyInstance "$active"
check "SwitchyardTraefikRoutesToNoReadyBackend reaches the webhook" \
    timed "Traefik's alert" notified firing SwitchyardTraefikRoutesToNoReadyBackend "$active"

check "nothing resolved while $active is down" not_notified resolved SwitchyardActiveColorNoReadyInstance "$active"
log "restarting $active"
start_color "$active"
wait_until 20 "$active to be ready" color_ready "$active" || die "$active did not come back"
check "SwitchyardActiveColorNoReadyInstance resolves at the webhook" \
    timed "the resolved notification" notified resolved SwitchyardActiveColorNoReadyInstance "$active"
check "SwitchyardTraefikRoutesToNoReadyBackend resolves at the webhook" \
    timed "Traefik's alert resolved" notified resolved SwitchyardTraefikRoutesToNoReadyBackend "$active"

check_summary "alerts"
