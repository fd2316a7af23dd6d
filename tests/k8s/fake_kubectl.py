"""A stand-in for kubectl against a pretend cluster kept in a JSON file, so that
scripts/test-k8s.sh can run STACK=k8s scripts/promote.sh for real (not only --dry-run) where
no cluster exists. It answers exactly the calls scripts/stack-k8s.sh makes, refuses any other
(exit 2, naming it), and logs each call to FAKE_KUBE_LOG.

The cluster: the active Service's selector and annotations, each color's Deployment (image,
replicas, ready), the migrate CronJob's image, the Jobs made from it, the pods of each color.
A port-forward to svc/switchyard-COLOR serves the WebSocket protocol's smoke path (new session,
count, resume) as COLOR (FAKE_SMOKE_COLOR overrides it: a smoke test that fails); one to
svc/traefik answers /readyz as the color the Service selects (FAKE_INGRESS_STALE=COLOR: as
that one, a switch that never lands). Each port-forward's PID is added to FAKE_KUBE_PIDS.

usage: fake_kubectl.py KUBECTL-ARGS...   (FAKE_KUBE_STATE, FAKE_KUBE_LOG in the environment)
"""

import asyncio
import json
import os
import re
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

STATE = os.environ["FAKE_KUBE_STATE"]
NAMESPACE = "switchyard"


def load():
    with open(STATE) as f:
        return json.load(f)


def save(state):
    with open(STATE + ".new", "w") as f:
        json.dump(state, f)
    os.replace(STATE + ".new", STATE)


def refuse(why):
    print(f"fake kubectl: {why}: {' '.join(sys.argv[1:])}", file=sys.stderr)
    sys.exit(2)


def not_found(what):
    print(f'Error from server (NotFound): {what} not found', file=sys.stderr)
    sys.exit(1)


def parse(argv):
    namespace, words, flags = None, [], {}
    args = iter(argv)
    for word in args:
        if word == "-n":
            namespace = next(args)
        elif word in ("-o", "-l", "-p", "-c", "--address"):
            flags[word] = next(args)
        elif word.startswith("--"):
            key, _, value = word.partition("=")
            flags[key] = value
        else:
            words.append(word)
    return namespace, words, flags


def color_of(name):
    match = re.fullmatch(r"(?:deployment/|svc/)?switchyard-(blue|green)", name)
    if not match:
        not_found(name)
    return match[1]


def selector_color(flags):
    return dict(pair.split("=", 1) for pair in flags["-l"].split(","))


def get(state, words, flags):
    what, out = words[1:], flags.get("-o", "")
    if what == ["service", "switchyard"]:
        if out == "name":
            print("service/switchyard")
        elif out == "jsonpath={.spec.selector.color}":
            print(state["selector"], end="")
        elif out == r"jsonpath={.metadata.annotations.switchyard\.dev/previous-color}":
            print(state["annotations"].get("switchyard.dev/previous-color", ""), end="")
        else:
            refuse("unknown output")
    elif len(what) == 1 and what[0].startswith("deployment/"):
        d = state["deployments"][color_of(what[0])]
        if out == "jsonpath={.spec.template.spec.containers[0].image}":
            print(d["image"], end="")
        elif out == "jsonpath={.status.readyReplicas} {.status.updatedReplicas} {.spec.replicas}":
            ready = d["ready"] or ""
            print(f"{ready} {ready} {d['replicas']}", end="")
        else:
            refuse("unknown output")
    elif what == ["endpointslices"]:
        service = selector_color(flags)["kubernetes.io/service-name"]
        if service == "switchyard":
            color = state["selector"]
            print("".join(f"{pod}\n" for pod in state["pods"][color] if state["deployments"][color]["ready"]), end="")
        else:
            d = state["deployments"][color_of(service)]
            print("true/false\n" * d["ready"], end="")
    elif what == ["pods"]:
        labels = selector_color(flags)
        if labels.get("app.kubernetes.io/component") != "server" or labels.get("app.kubernetes.io/name") != "switchyard":
            refuse("a selector that matches no server pod")
        print("".join(f"pod/{pod}\n" for pod in state["pods"][labels["color"]]), end="")
    else:
        refuse("unknown get")


def patch(state, words, flags):
    body = json.loads(flags["-p"])
    if words[1:] == ["service", "switchyard"] and flags.get("--type") == "merge":
        color = body["spec"]["selector"]["color"]
        if color not in ("blue", "green"):
            refuse("a selector that matches no color")
        state["selector"] = color
    elif words[1].startswith("deployment/") and flags.get("--type") == "strategic":
        color = color_of(words[1])
        d = state["deployments"][color]
        d["replicas"] = body["spec"]["replicas"]
        for container in body["spec"].get("template", {}).get("spec", {}).get("containers", []):
            if container["name"] != "app":
                refuse("no such container")
            d["image"] = container["image"]
        d["ready"] = 0
    else:
        refuse("unknown patch")


def run(argv):
    namespace, words, flags = parse(argv)
    if namespace != NAMESPACE and "svc/traefik" not in words:
        not_found(f"namespace {namespace}")
    state = load()
    verb = words[0]
    if verb == "get":
        get(state, words, flags)
        return
    if verb == "port-forward":
        port_forward(state, words)
        return
    if verb == "patch":
        patch(state, words, flags)
    elif verb == "set" and words[1:3] == ["image", "cronjob/switchyard-migrate"] and words[3].startswith("migrate="):
        state["cronjob_image"] = words[3].split("=", 1)[1]
    elif verb == "create" and words[1] == "job" and flags.get("--from") == "cronjob/switchyard-migrate":
        state["jobs"].append({"name": words[2], "image": state["cronjob_image"]})
    elif verb == "wait" and flags.get("--for") == "condition=complete":
        if not any(f"job/{job['name']}" == words[1] for job in state["jobs"]):
            not_found(words[1])
    elif verb == "rollout" and words[1] == "status":
        d = state["deployments"][color_of(words[2])]
        d["ready"] = d["replicas"]
        color = color_of(words[2])
        state["pods"][color] = [f"switchyard-{color}-{d['image'][-1]}-{i}" for i in range(d["replicas"])]
    elif verb == "annotate" and words[1:3] == ["service", "switchyard"] and "--overwrite" in flags:
        key, value = words[3].split("=", 1)
        state["annotations"][key] = value
    elif verb == "scale":
        d = state["deployments"][color_of(words[1])]
        d["replicas"] = int(flags["--replicas"])
        d["ready"] = min(d["ready"], d["replicas"])
    elif verb == "wait" and flags.get("--for") == "delete":
        color = selector_color(flags)["color"]
        if state["deployments"][color]["replicas"] != 0:
            refuse("waiting for the pods of a color that is not scaled to 0")
        state["pods"][color] = []
    else:
        refuse("unknown call")
    save(state)


# ── port-forwards


def port_forward(state, words):
    target, ports = words[1], words[2]
    local = int(ports.split(":")[0])
    with open(os.environ["FAKE_KUBE_PIDS"], "a") as pids:
        pids.write(f"{os.getpid()}\n")
    if target == "svc/traefik":
        serve_ingress(local)
    else:
        serve_smoke(local, os.environ.get("FAKE_SMOKE_COLOR") or color_of(target))


def serve_ingress(port):
    class Ingress(BaseHTTPRequestHandler):
        def do_GET(self):
            color = os.environ.get("FAKE_INGRESS_STALE") or load()["selector"]
            body = json.dumps({"status": "ready", "color": color}).encode()
            self.send_response(200 if self.path == "/readyz" else 404)
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    ThreadingHTTPServer(("127.0.0.1", port), Ingress).serve_forever()


def serve_smoke(port, color):
    from websockets.asyncio.server import serve

    async def session(ws):
        if "session_id=" in ws.request.path:
            await ws.send(json.dumps({"type": "session", "session_id": "s1", "color": color, "resumed": True, "count": 1, "last_seq": 1}))
            return
        await ws.send(json.dumps({"type": "session", "session_id": "s1", "color": color, "resumed": False, "count": 0, "last_seq": 0}))
        message = json.loads(await ws.recv())
        await ws.send(json.dumps({"type": "count", "count": 1, "seq": message["seq"]}))
        await ws.wait_closed()

    async def main():
        async with serve(session, "127.0.0.1", port):
            await asyncio.Future()

    asyncio.run(main())


if __name__ == "__main__":
    with open(os.environ["FAKE_KUBE_LOG"], "a") as log:
        log.write(" ".join(sys.argv[1:]) + "\n")
    run(sys.argv[1:])
