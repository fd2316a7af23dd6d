"""Static checks of the Docker side, for a machine without a Docker engine (docker-compose, or
docker compose, renders the files: no engine needed): every file that
compose.yml, docker/Dockerfile, Prometheus and Grafana provisioning refer to exists, and the
configuration files parse; the hardening holds (Redis only on the internal network, limits and
read-only root filesystems, the app's health check); Prometheus loads the alert rules and sends
to Alertmanager; the logs files (docker/compose.logs.yml) label every line with its color and
instance, and the dashboard's logs panel reads a provisioned datasource; the topology options
render as stack-compose.sh runs them: REPLICAS sets each color's deploy.replicas and
DESIRED_REPLICAS, and docker/compose.sentinel.yml turns the one Redis into 3 nodes and 3
sentinels on the store network with the apps and migrate switched to them. Prints one line per
check; exits 1 if any fails.

usage: check-compose.py REPO_ROOT
"""

import json
import os
import pathlib
import re
import shutil
import subprocess
import sys

import yaml

root = pathlib.Path(sys.argv[1])
failures = []


def check(ok, what):
    print(f"  {'ok' if ok else 'FAIL'}: {what}")
    if not ok:
        failures.append(what)


compose = yaml.safe_load((root / "compose.yml").read_text())
services = compose["services"]
check({"redis", "traefik", "app_blue", "app_green", "prometheus", "alertmanager", "grafana"} <= set(services), "compose has every service")
check("--appendonly" in " ".join(services["redis"]["command"]) and "yes" in services["redis"]["command"], "redis keeps an append-only file")
for name in ("app_blue", "app_green"):
    check("replicas" in services[name].get("deploy", {}), f"{name} has deploy: replicas for Swarm")
    check(services[name]["environment"]["COLOR"] == name.split("_")[1], f"{name} announces its color")

# Hardening. Services whose root filesystem stays writable, and why.
WRITABLE = {"grafana": "writes outside its data volume"}
networks = compose.get("networks", {})
check((networks.get("store") or {}).get("internal") is True, "the store network is internal")
check(services["redis"].get("networks") == ["store"], "redis is only on the store network")
check("store" not in services["traefik"].get("networks", ["default"]), "traefik cannot reach the store network")
for name in ("app_blue", "app_green"):
    check(set(services[name].get("networks", [])) == {"default", "store"}, f"{name} is on the default and store networks")
    test = (services[name].get("healthcheck") or {}).get("test", [])
    check(test[-2:] == ["switchyard", "healthcheck"], f"{name} has the switchyard healthcheck")
    check(services[name].get("labels", {}).get("org.switchyard.color") == name.split("_")[1], f"{name}'s containers are labelled with its color (logs)")


def check_hardened(name, service):
    limits = (service.get("deploy") or {}).get("resources", {}).get("limits", {})
    check({"cpus", "memory"} <= set(limits), f"{name} has CPU and memory limits")
    if name in WRITABLE:
        check(service.get("read_only") is False, f"{name}: writable root declared ({WRITABLE[name]})")
    else:
        check(service.get("read_only") is True, f"{name} has a read-only root filesystem")


for name, service in services.items():
    check_hardened(name, service)

dockerfiles = set()
for name, service in services.items():
    build = service.get("build")
    if build:
        context = root / build["context"]
        check(context.is_dir(), f"{name}: build context {build['context']} exists")
        dockerfiles.add((context, context / build["dockerfile"]))
    for volume in service.get("volumes", []):
        source = volume.split(":")[0]
        if source.startswith("."):
            check((root / source).exists(), f"{name}: mounted {source} exists")

for context, dockerfile in sorted(dockerfiles):
    check(dockerfile.is_file(), f"{dockerfile.relative_to(root)} exists")
    stages = set()
    for line in dockerfile.read_text().splitlines():
        words = line.split()
        if words[:1] == ["FROM"] and "AS" in words:
            stages.add(words[words.index("AS") + 1])
        if words[:1] == ["COPY"] and not any(w.startswith("--from=") for w in words):
            for source in words[1:-1]:
                check((context / source).exists(), f"Dockerfile COPY {source} exists")
    check({"build"} <= stages, "Dockerfile is multi-stage")

prometheus = yaml.safe_load((root / "docker/prometheus.yml").read_text())
jobs = {job["job_name"] for job in prometheus["scrape_configs"]}
check({"switchyard-blue", "switchyard-green", "traefik"} <= jobs, "Prometheus scrapes both colors and Traefik")
for color in ("blue", "green"):
    names = [name for job in prometheus["scrape_configs"] for sd in job.get("dns_sd_configs", []) for name in sd["names"]]
    check(f"app_{color}" in names, f"Prometheus discovers every replica of app_{color} by DNS")

rule_files = prometheus.get("rule_files", [])
check(rule_files != [], "Prometheus loads alert rules")
mounts = dict(v.split(":")[:2] for v in services["prometheus"]["volumes"])
for rule_file in rule_files:
    local = next((root / src / pathlib.PurePosixPath(rule_file).relative_to(dst) for src, dst in mounts.items()
                  if rule_file.startswith(dst.rstrip("/") + "/")), None)
    check(local is not None and local.is_file(), f"Prometheus's rule file {rule_file} is a mounted file of the checkout")
targets = [t for am in prometheus.get("alerting", {}).get("alertmanagers", []) for sc in am.get("static_configs", []) for t in sc["targets"]]
check(targets and all(t.split(":")[0] in services for t in targets), "Prometheus sends alerts to the alertmanager service")
alertmanager = yaml.safe_load((root / "docker/alertmanager.yml").read_text())
hooks = [w for r in alertmanager["receivers"] for w in r.get("webhook_configs", [])]
check(hooks and all(w.get("send_resolved") for w in hooks), "Alertmanager routes to a webhook and says when alerts resolve")

logs = yaml.safe_load((root / "docker/compose.logs.yml").read_text())["services"]
check({"loki", "promtail"} <= set(logs), "the logs file has Loki and Promtail")
for name, service in logs.items():
    check_hardened(name, service)
    for volume in service.get("volumes", []):
        source = volume.split(":")[0]
        if source.startswith("."):
            check((root / source).exists(), f"{name}: mounted {source} exists")
promtail = yaml.safe_load((root / "docker/logs/promtail.yml").read_text())
labels = {r.get("target_label") for job in promtail["scrape_configs"] for r in job.get("relabel_configs", [])}
check({"color", "instance"} <= labels, "Promtail labels every line with its color and instance")
check(all(c["url"].startswith("http://loki:") for c in promtail["clients"]), "Promtail pushes to the loki service")
check(isinstance(yaml.safe_load((root / "docker/logs/loki.yml").read_text()), dict), "docker/logs/loki.yml parses")

provisioning = root / "docker/grafana/provisioning"
for path in provisioning.rglob("*.yml"):
    check(isinstance(yaml.safe_load(path.read_text()), dict), f"{path.relative_to(root)} parses")
dashboard = json.loads((root / "docker/grafana/dashboards/switchyard.json").read_text())
exprs = " ".join(t["expr"] for p in dashboard["panels"] for t in p["targets"])
datasources = {d["uid"]: d for path in (provisioning / "datasources").glob("*.yml")
               for d in yaml.safe_load(path.read_text())["datasources"]}
for panel in dashboard["panels"]:
    uid = panel["datasource"]["uid"]
    check(uid in datasources and datasources[uid]["type"] == panel["datasource"]["type"],
          f"panel '{panel['title']}' reads a provisioned {panel['datasource']['type']} datasource")
logs_panels = [p for p in dashboard["panels"] if p["type"] == "logs"]
check(any(p["datasource"]["uid"] == "loki" and "color" in p["targets"][0]["expr"] for p in logs_panels),
      "the dashboard has a logs panel of Loki by color")
for metric in ("connections_active", "messages_total", "message_duration_seconds", "heartbeat_fanout_seconds", "draining"):
    check(f"switchyard_{metric}" in exprs, f"the dashboard charts switchyard_{metric}")

for path in (root / "traefik/dynamic").glob("*.yml"):
    dynamic = yaml.safe_load(path.read_text())
    routers = dynamic["http"]["routers"]
    check({"switchyard", "switchyard-blue", "switchyard-green"} <= set(routers), f"{path.name} has the active and direct routers")
    check(re.search(r"^# active color: (blue|green)$", path.read_text(), re.M) is not None, f"{path.name} records the active color")

# The topology options, rendered by docker-compose (or docker compose) as stack-compose.sh runs
# them: the caller's own settings left out, the local build context pointed at the checkout.
TOPOLOGY_VARIABLES = ("REPLICAS", "REDIS_TOPOLOGY", "REDIS_MIN_REPLICAS_ACKED", "REDIS_IMAGE", "STORE_PREFIX")
LOCAL = ["compose.yml", "docker/compose.local.yml"]
SENTINEL = "docker/compose.sentinel.yml"
APPS = ("app_blue", "app_green")


def compose_tool():
    if shutil.which("docker") and subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0:
        return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    sys.exit("check-compose: needs docker-compose or docker compose to render the files (apt-get install -y docker-compose)")


def render(files, **variables):
    """`config` on FILES with VARIABLES, parsed ({} when it does not render)."""
    env = {k: v for k, v in os.environ.items() if k not in TOPOLOGY_VARIABLES}
    env.update(APP_CONTEXT=str(root), **variables)
    args = compose_tool() + ["--project-directory", str(root)]
    for file in files:
        args += ["-f", str(root / file)]
    done = subprocess.run(args + ["config"], env=env, capture_output=True, text=True, cwd=root)
    what = " + ".join(files) + "".join(f" {k}={v}" for k, v in variables.items())
    check(done.returncode == 0, f"{what} renders{': ' + done.stderr.strip() if done.returncode else ''}")
    return yaml.safe_load(done.stdout) if done.returncode == 0 else {}


def script(service):
    """A service's command as the shell sees it (compose writes $ as $$)."""
    return " ".join(service.get("command") or []).replace("$$", "$")


for replicas in (None, "1", "3"):
    rendered = render(LOCAL, **({"REPLICAS": replicas} if replicas else {})).get("services", {})
    want = int(replicas or 2)
    for name in APPS:
        service = rendered.get(name, {})
        check(service.get("deploy", {}).get("replicas") == want and service.get("environment", {}).get("DESIRED_REPLICAS") == str(want),
              f"REPLICAS={replicas or 'unset'}: {name} runs {want} replica(s) (deploy.replicas) and tells the app (DESIRED_REPLICAS)")

sentinel_config = render(LOCAL + [SENTINEL], STORE_PREFIX="10.213.7")
sentinel = sentinel_config.get("services", {})
NODES = ("redis", "redis2", "redis3")
SENTINELS = ("sentinel1", "sentinel2", "sentinel3")
check(set(NODES + SENTINELS) <= set(sentinel), "sentinel: 3 Redis nodes and 3 sentinels")
check("store" not in sentinel.get("traefik", {}).get("networks", {}), "sentinel: traefik cannot reach the store network")
address = {}
data_volumes = set()
for name in NODES + SENTINELS:
    service = sentinel.get(name, {})
    networks = service.get("networks", {})
    address[name] = (networks.get("store") or {}).get("ipv4_address")
    check(list(networks) == ["store"] and address[name] is not None and address[name].startswith("10.213.7."),
          f"sentinel: {name} is only on the store network, at a fixed address of STORE_PREFIX")
    check_hardened(f"sentinel {name}", service)
    check(service.get("environment", {}).get("SELF") == address[name], f"sentinel: {name} announces its own address")
    data_volumes |= {v.split(":")[0] for v in service.get("volumes", []) if ":/data" in v}
check(len(set(address.values())) == len(NODES + SENTINELS), "sentinel: every node and sentinel has an address of its own")
check(len(data_volumes) == len(NODES + SENTINELS), "sentinel: every node and sentinel keeps its configuration in a volume of its own")
for name in NODES:
    text = script(sentinel.get(name, {}))
    check(all(f"'{line}'" in text for line in ("min-replicas-to-write 1", "min-replicas-max-lag 2", "appendonly yes")) and
          "replica-announce-ip $SELF" in text, f"sentinel: {name} refuses writes without a replica within 2 s, announces its address, keeps an AOF")
primary = [n for n in NODES if "PRIMARY" not in sentinel.get(n, {}).get("environment", {})]
first = address.get(primary[0]) if len(primary) == 1 else None
check(first is not None and all(sentinel.get(n, {}).get("environment", {}).get("PRIMARY") == first for n in NODES if n not in primary),
      "sentinel: one node starts as primary, the others as its replicas")
masters = set()
for name in SENTINELS:
    service = sentinel.get(name, {})
    monitor = re.search(r"sentinel monitor (\S+) \$PRIMARY 6379 (\d+)", script(service))
    check(monitor is not None and monitor[2] == "2" and service.get("environment", {}).get("PRIMARY") == first,
          f"sentinel: {name} monitors the first primary, quorum 2")
    check("sentinel announce-ip $SELF" in script(service), f"sentinel: {name} announces its address")
    masters.add(monitor[1] if monitor else None)
store = sentinel_config.get("networks", {}).get("store") or {}
check(store.get("internal") is True and [c.get("subnet") for c in store.get("ipam", {}).get("config", [])] == ["10.213.7.0/24"],
      "sentinel: the store network stays internal, on the /24 of STORE_PREFIX")
for name in APPS + ("migrate",):
    service = sentinel.get(name, {})
    env = service.get("environment", {})
    sentinels = {s.strip() for s in str(env.get("REDIS_SENTINELS", "")).split(",")}
    check(env.get("REDIS_TOPOLOGY") == "sentinel" and env.get("REDIS_URL") == "" and {env.get("REDIS_MASTER_NAME")} == masters and
          sentinels == {f"{address.get(s)}:26379" for s in SENTINELS},
          f"sentinel: {name} asks every sentinel for the monitored primary (REDIS_TOPOLOGY, REDIS_SENTINELS, REDIS_MASTER_NAME; no REDIS_URL)")
    check(set(SENTINELS) <= set(service.get("depends_on", {})), f"sentinel: {name} starts after the sentinels")
# COMPOSE_IMAGES=official: the nodes and sentinels run compose.yml's Redis image.
official = re.search(r"official\) export REDIS_IMAGE=(\S+) ;;", (root / "scripts/stack-compose.sh").read_text())
check(official is not None and official[1] == services["redis"]["image"],
      "stack-compose.sh's REDIS_IMAGE for official images is compose.yml's Redis image")

print(f"compose static checks: {len(failures)} failed")
sys.exit(1 if failures else 0)
