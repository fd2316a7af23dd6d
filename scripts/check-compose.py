"""Static checks of the Docker side, for a machine without a Docker engine: every file that
compose.yml, docker/Dockerfile, Prometheus and Grafana provisioning refer to exists, and the
configuration files parse. Prints one line per check; exits 1 if any fails.

usage: check-compose.py REPO_ROOT
"""

import json
import pathlib
import re
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
check({"redis", "traefik", "app_blue", "app_green", "prometheus", "grafana"} <= set(services), "compose has every service")
check("--appendonly" in " ".join(services["redis"]["command"]) and "yes" in services["redis"]["command"], "redis keeps an append-only file")
for name in ("app_blue", "app_green"):
    check("deploy" in services[name] and services[name]["deploy"].get("replicas", 0) >= 1, f"{name} has deploy: replicas for Swarm")
    check(services[name]["environment"]["COLOR"] == name.split("_")[1], f"{name} announces its color")

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

provisioning = root / "docker/grafana/provisioning"
for path in provisioning.rglob("*.yml"):
    check(isinstance(yaml.safe_load(path.read_text()), dict), f"{path.relative_to(root)} parses")
dashboard = json.loads((root / "docker/grafana/dashboards/switchyard.json").read_text())
exprs = " ".join(t["expr"] for p in dashboard["panels"] for t in p["targets"])
for metric in ("connections_active", "messages_total", "message_duration_seconds", "heartbeat_fanout_seconds", "draining"):
    check(f"switchyard_{metric}" in exprs, f"the dashboard charts switchyard_{metric}")

for path in (root / "traefik/dynamic").glob("*.yml"):
    dynamic = yaml.safe_load(path.read_text())
    routers = dynamic["http"]["routers"]
    check({"switchyard", "switchyard-blue", "switchyard-green"} <= set(routers), f"{path.name} has the active and direct routers")
    check(re.search(r"^# active color: (blue|green)$", path.read_text(), re.M) is not None, f"{path.name} records the active color")

print(f"compose static checks: {len(failures)} failed")
sys.exit(1 if failures else 0)
