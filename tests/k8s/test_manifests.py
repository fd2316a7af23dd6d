"""The invariants of deploy/k8s, checked on the rendered manifests (kubectl kustomize), and the
kubectl commands of `STACK=k8s scripts/promote.sh --dry-run` checked against those manifests.

Run by scripts/test-k8s.sh, which renders every overlay into K8S_RENDER_DIR (NAME.yaml) and
writes the dry-run plans into K8S_PLAN_DIR (promote.txt, rollback.txt).
"""

import json
import os
import pathlib
import re
import shlex

import pytest
import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
if "K8S_RENDER_DIR" not in os.environ:
    raise RuntimeError("tests/k8s needs the renders and plans scripts/test-k8s.sh makes: run that script")
RENDER_DIR = pathlib.Path(os.environ["K8S_RENDER_DIR"])
PLAN_DIR = pathlib.Path(os.environ["K8S_PLAN_DIR"])
# The environment promote.sh's plans were made for (K8S_OVERLAY's default).
ENVIRONMENT = "production"
# The release binary (test-k8s.sh builds it): every server's configuration is checked by it.
SWITCHYARD_BIN = os.environ.get("K8S_SWITCHYARD_BIN", str(ROOT / "target/release/switchyard"))
POD_KINDS = {"Deployment", "StatefulSet", "CronJob", "Job", "DaemonSet"}


def load(name):
    return [doc for doc in yaml.safe_load_all((RENDER_DIR / f"{name}.yaml").read_text()) if doc]


RENDERS = {path.stem: load(path.stem) for path in sorted(RENDER_DIR.glob("*.yaml"))}
ENVIRONMENTS = [name for name, docs in RENDERS.items() if any(d["kind"] == "Namespace" for d in docs)]


def of_kind(docs, kind):
    return [d for d in docs if d["kind"] == kind]


def named(docs, kind, name):
    found = [d for d in docs if d["kind"].lower() == kind.lower() and d["metadata"]["name"] == name]
    assert found, f"no {kind}/{name} in the render"
    return found[0]


def pod_spec(doc):
    if doc["kind"] == "CronJob":
        return doc["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    return doc["spec"]["template"]["spec"]


def pod_labels(doc):
    if doc["kind"] == "CronJob":
        return doc["spec"]["jobTemplate"]["spec"]["template"]["metadata"]["labels"]
    return doc["spec"]["template"]["metadata"]["labels"]


def selects(selector, labels):
    return all(labels.get(k) == v for k, v in selector.items())


def servers(docs):
    return [d for d in of_kind(docs, "Deployment") if pod_labels(d).get("app.kubernetes.io/component") == "server"]


def config(docs):
    return named(docs, "ConfigMap", "switchyard-config")["data"]


def memory_bytes(text):
    """Bytes of a Kubernetes memory quantity (256Mi, 1Gi, 134217728)."""
    match = re.fullmatch(r"(\d+)(Ki|Mi|Gi)?", str(text))
    assert match, f"unexpected memory quantity {text!r}"
    return int(match[1]) * {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, None: 1}[match[2]]


def kib_per_session():
    """The memory per idle session BENCHMARKS.md reports (its table, rewritten by bench.sh)."""
    match = re.search(r"(\d+(?:\.\d+)?) KiB each", (ROOT / "BENCHMARKS.md").read_text())
    assert match, "BENCHMARKS.md has no 'KiB each' figure for idle sessions"
    return float(match[1])


def test_every_overlay_rendered_and_an_environment_exists():
    assert {"blue", "green", ENVIRONMENT} <= set(RENDERS), sorted(RENDERS)
    assert ENVIRONMENT in ENVIRONMENTS


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_both_colors_three_replicas_and_their_color(env):
    docs = RENDERS[env]
    colors = {}
    for deployment in servers(docs):
        color = pod_labels(deployment)["color"]
        env_vars = {e["name"]: e.get("value") for e in pod_spec(deployment)["containers"][0]["env"]}
        assert env_vars["COLOR"] == color, deployment["metadata"]["name"]
        assert deployment["spec"]["replicas"] == 3
        assert deployment["spec"]["selector"]["matchLabels"]["color"] == color
        colors[color] = deployment["metadata"]["name"]
    assert colors == {"blue": "switchyard-blue", "green": "switchyard-green"}


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_grace_period_covers_prestop_and_drain(env):
    docs = RENDERS[env]
    drain = int(config(docs)["DRAIN_TIMEOUT_SECS"])
    for deployment in servers(docs):
        spec = pod_spec(deployment)
        command = spec["containers"][0]["lifecycle"]["preStop"]["exec"]["command"]
        assert command[0] == "sleep", command
        pre_stop = int(command[1])
        assert pre_stop >= 3, "endpoints need a few seconds to drop the pod"
        # A margin of at least 5 s for the drain's own end and the process exit.
        assert spec["terminationGracePeriodSeconds"] >= pre_stop + drain + 5, deployment["metadata"]["name"]
        assert int(config(docs)["DRAIN_SPREAD_MS"]) < drain * 1000


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_probes_on_the_right_paths_and_port(env):
    docs = RENDERS[env]
    port = int(config(docs)["PORT"])
    for deployment in servers(docs):
        container = pod_spec(deployment)["containers"][0]
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        assert ports == {"http": port}
        for probe, path in (("readinessProbe", "/readyz"), ("livenessProbe", "/healthz"), ("startupProbe", "/healthz")):
            get = container[probe]["httpGet"]
            assert get["path"] == path, probe
            assert ports.get(get["port"], get["port"]) == port, probe
        # /readyz answers within REDIS_TIMEOUT_MS: the probe waits longer.
        assert container["readinessProbe"]["timeoutSeconds"] * 1000 > int(config(docs)["REDIS_TIMEOUT_MS"])


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_hpa_and_pdb_per_color(env):
    docs = RENDERS[env]
    deployments = {d["metadata"]["name"]: d for d in servers(docs)}
    hpas = of_kind(docs, "HorizontalPodAutoscaler")
    assert sorted(h["spec"]["scaleTargetRef"]["name"] for h in hpas) == sorted(deployments)
    for hpa in hpas:
        assert hpa["spec"]["minReplicas"] == 3 and hpa["spec"]["maxReplicas"] == 10
        assert {m["resource"]["name"] for m in hpa["spec"]["metrics"]} == {"cpu", "memory"}
    pdbs = [p for p in of_kind(docs, "PodDisruptionBudget") if p["spec"]["selector"]["matchLabels"].get("app.kubernetes.io/name") == "switchyard"]
    assert len(pdbs) == len(deployments)
    for pdb in pdbs:
        assert pdb["spec"]["minAvailable"] == 2
        matched = [n for n, d in deployments.items() if selects(pdb["spec"]["selector"]["matchLabels"], pod_labels(d))]
        assert len(matched) == 1, f"{pdb['metadata']['name']} selects {matched}"


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_every_pod_is_non_root_read_only_without_capabilities_and_sized(env):
    pods = [d for d in RENDERS[env] if d["kind"] in POD_KINDS]
    assert len(pods) >= 3
    for doc in pods:
        spec = pod_spec(doc)
        assert spec["securityContext"]["runAsNonRoot"] is True, doc["metadata"]["name"]
        assert spec.get("automountServiceAccountToken") is False, doc["metadata"]["name"]
        for container in spec.get("initContainers", []) + spec["containers"]:
            where = f"{doc['metadata']['name']}/{container['name']}"
            context = container["securityContext"]
            assert context["readOnlyRootFilesystem"] is True, where
            assert context["allowPrivilegeEscalation"] is False, where
            assert context["capabilities"]["drop"] == ["ALL"], where
            assert "add" not in context["capabilities"], where
            for kind in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(container["resources"][kind]), f"{where} {kind}"


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_memory_request_holds_max_connections_sessions(env):
    docs = RENDERS[env]
    sessions = int(config(docs)["MAX_CONNECTIONS"]) * kib_per_session() * 1024
    for deployment in servers(docs):
        resources = pod_spec(deployment)["containers"][0]["resources"]
        assert memory_bytes(resources["requests"]["memory"]) > sessions
        assert memory_bytes(resources["limits"]["memory"]) >= memory_bytes(resources["requests"]["memory"])


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_configuration_names_only_variables_the_app_reads(env):
    sources = "".join(path.read_text() for path in (ROOT / "src").rglob("*.rs"))
    known = set(re.findall(r'env = "([A-Z_]+)"', sources))
    assert {"REDIS_URL", "DRAIN_TIMEOUT_SECS"} <= known, "the app's variables were not found in src/"
    data = config(RENDERS[env])
    assert set(data) <= known, f"unknown variables: {set(data) - known}"
    assert "COLOR" not in data, "COLOR is set per color, not shared"
    if data.get("REDIS_TOPOLOGY") == "sentinel":
        assert data["REDIS_MASTER_NAME"] and all(re.fullmatch(r"[\w.-]+:\d+", s) for s in data["REDIS_SENTINELS"].split(","))


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_the_app_accepts_every_servers_configuration(env):
    """What each server pod would get (the ConfigMap, then its own literal env), checked by the
    real binary's `serve --check-config`: a variable of another topology, a bad value or a
    missing one exits 2 there, as it would crash-loop the pods."""
    import subprocess

    for deployment in servers(RENDERS[env]):
        container = pod_spec(deployment)["containers"][0]
        environment = {"PATH": os.environ["PATH"], **config(RENDERS[env])}
        environment.update({e["name"]: e["value"] for e in container.get("env", []) if "value" in e})
        checked = subprocess.run(
            [SWITCHYARD_BIN, "serve", "--check-config"], env=environment, capture_output=True, text=True, timeout=20
        )
        name = deployment["metadata"]["name"]
        assert checked.returncode == 0, f"{env}/{name}: {checked.stderr}"
        assert f"color {environment['COLOR']}" in checked.stdout, checked.stdout
        assert f"REDIS_TOPOLOGY={environment.get('REDIS_TOPOLOGY', 'single')}" in checked.stdout, checked.stdout


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_routing_active_service_ingress_and_color_services(env):
    docs = RENDERS[env]
    labels = {d["metadata"]["name"]: pod_labels(d) for d in servers(docs)}
    active = named(docs, "Service", "switchyard")
    assert [n for n, l in labels.items() if selects(active["spec"]["selector"], l)] == ["switchyard-blue"]
    for color in ("blue", "green"):
        own = named(docs, "Service", f"switchyard-{color}")
        assert [n for n, l in labels.items() if selects(own["spec"]["selector"], l)] == [f"switchyard-{color}"]
    backend = named(docs, "Ingress", "switchyard")["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
    assert backend["name"] == "switchyard"
    assert backend["port"]["name"] in {p["name"] for p in active["spec"]["ports"]}


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_network_policies_let_only_the_ingress_in_and_only_redis_out(env):
    docs = RENDERS[env]
    policies = {p["metadata"]["name"]: p for p in of_kind(docs, "NetworkPolicy")}
    server_labels = [pod_labels(d) for d in servers(docs)]
    inbound = policies["switchyard-ingress"]["spec"]
    assert inbound["policyTypes"] == ["Ingress"]
    assert all(selects(inbound["podSelector"]["matchLabels"], l) for l in server_labels)
    (rule,) = inbound["ingress"]
    (peer,) = rule["from"]
    assert peer["namespaceSelector"]["matchLabels"] == {"kubernetes.io/metadata.name": "traefik"}
    assert peer["podSelector"]["matchLabels"] == {"app.kubernetes.io/name": "traefik"}
    outbound = policies["switchyard-egress"]["spec"]
    assert outbound["policyTypes"] == ["Egress"]
    assert all(selects(outbound["podSelector"]["matchLabels"], pod_labels(d)) for d in docs if d["kind"] in POD_KINDS and pod_labels(d).get("app.kubernetes.io/name") == "switchyard")
    ports = {p["port"] for rule in outbound["egress"] for p in rule["ports"]}
    assert ports == {53, 6379, 26379}
    redis = [d for d in docs if d["kind"] == "StatefulSet"]
    if redis:
        spec = policies["redis-sentinel"]["spec"]
        assert all(selects(spec["podSelector"]["matchLabels"], pod_labels(d)) for d in redis)
        peers = [p["podSelector"]["matchLabels"] for rule in spec["ingress"] for p in rule["from"]]
        assert all(p.get("app.kubernetes.io/name") in {"switchyard", "redis-sentinel"} for p in peers), peers


# ── the dry-run plans against the render


def plan(name):
    text = (PLAN_DIR / f"{name}.txt").read_text()
    steps = re.findall(r"^  \d+\. (\w+)", text, re.M)
    commands = [shlex.split(line.split("$ ", 1)[1]) for line in text.splitlines() if line.lstrip().startswith("$ ")]
    return text, steps, commands


def options(argv):
    """(namespace, positional words, {-l/--flag: value})"""
    namespace, words, flags = None, [], {}
    args = iter(argv[1:])
    for word in args:
        if word == "-n":
            namespace = next(args)
        elif word in ("-l", "-p", "-c", "--address"):
            flags[word] = next(args)
        elif word.startswith("--"):
            key, _, value = word.partition("=")
            flags[key] = value
        elif word == "--":
            break
        else:
            words.append(word)
    return namespace, words, flags


def check_command(argv, docs):
    namespaces = {d["metadata"]["name"] for d in of_kind(docs, "Namespace")}
    pods = [pod_labels(d) for d in docs if d["kind"] in POD_KINDS]
    if argv[0] == "curl":
        return
    assert argv[0] == "kubectl", argv
    namespace, words, flags = options(argv)
    if namespace == "traefik":
        # The ingress controller, outside these manifests: the one the NetworkPolicy admits.
        assert words[:2] == ["port-forward", "svc/traefik"], argv
        return
    assert namespace in namespaces, f"{argv}: namespace {namespace} is not in the render"
    assert all(d["metadata"]["namespace"] == namespace for d in docs if d["kind"] != "Namespace")
    verb, rest = words[0], words[1:]
    refs = []
    if verb in ("get", "patch", "annotate") and rest and "/" not in rest[0] and rest[0] not in ("pods", "endpointslices"):
        refs.append((rest[0], rest[1]))
    refs += [tuple(w.split("/", 1)) for w in rest if "/" in w and "=" not in w and not w.startswith("job/")]
    if "--from" in flags:
        refs.append(tuple(flags["--from"].split("/", 1)))
    for kind, name in refs:
        kind = {"svc": "service"}.get(kind, kind)
        named(docs, kind, name)
    if "-l" in flags:
        selector = dict(pair.split("=", 1) for pair in flags["-l"].split(","))
        if "kubernetes.io/service-name" in selector:
            named(docs, "Service", selector["kubernetes.io/service-name"])
        else:
            assert any(selects(selector, labels) for labels in pods), f"{argv}: -l selects no pod of the render"
    if verb == "set":
        kind, name = rest[1].split("/")
        container, _, image = rest[2].partition("=")
        assert container in {c["name"] for c in pod_spec(named(docs, kind, name))["containers"]}, argv
        assert image
    if verb == "patch":
        target = named(docs, *(rest[0].split("/") if "/" in rest[0] else rest[:2]))
        patch = json.loads(flags["-p"])
        if target["kind"] == "Service":
            selector = dict(target["spec"]["selector"], **patch["spec"]["selector"])
            assert sum(selects(selector, pod_labels(d)) for d in servers(docs)) == 1, f"{argv}: selects no color"
        else:
            containers = patch["spec"].get("template", {}).get("spec", {}).get("containers", [])
            assert {c["name"] for c in containers} <= {c["name"] for c in pod_spec(target)["containers"]}, argv
    if verb == "port-forward":
        service = named(docs, "Service", rest[0].split("/")[1])
        assert int(rest[1].split(":")[1]) in {p["port"] for p in service["spec"]["ports"]}, argv


@pytest.mark.parametrize("name", ["promote", "rollback"])
def test_dry_run_plan_lists_every_step_and_its_commands_match_the_render(name):
    text, steps, commands = plan(name)
    assert steps == (ROOT / "scripts/promote.sh").read_text().split("STEPS=(")[1].split(")")[0].split()
    assert len(commands) >= 15, text
    for argv in commands:
        check_command(argv, RENDERS[ENVIRONMENT])


def test_promote_plan_rolls_the_image_switches_the_selector_and_drains_the_old_color():
    text, _, commands = plan("promote")
    lines = [" ".join(c) for c in commands]
    image = os.environ["K8S_PLAN_IMAGE"]
    assert any("set image cronjob/switchyard-migrate migrate=" + image in l for l in lines)
    assert any("patch deployment/switchyard-green" in l and image in l for l in lines)
    assert any("rollout status deployment/switchyard-green" in l for l in lines)
    assert any("port-forward" in l and "svc/switchyard-green" in l for l in lines)
    switch = [c for c in commands if c[3:6] == ["patch", "service", "switchyard"]]
    assert len(switch) == 1 and json.loads(switch[0][-1]) == {"spec": {"selector": {"color": "green"}}}
    assert any("scale deployment/switchyard-blue --replicas=0" in l for l in lines)
    assert lines.index(next(l for l in lines if "scale deployment/switchyard-blue" in l)) > lines.index(" ".join(switch[0]))


def test_rollback_plan_scales_the_kept_color_back_without_a_new_image():
    text, _, commands = plan("rollback")
    lines = [" ".join(c) for c in commands]
    assert "green is active" in text
    start = [c for c in commands if c[3:5] == ["patch", "deployment/switchyard-blue"]]
    assert len(start) == 1 and json.loads(start[0][-1]) == {"spec": {"replicas": 3}}
    assert not any("set image" in l for l in lines)
    assert any("scale deployment/switchyard-green --replicas=0" in l for l in lines)
