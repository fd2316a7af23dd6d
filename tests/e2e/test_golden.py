"""The Python clients against the golden frames (tests/golden/frames.json): each handles every
server frame as the fixture says (its client_action), and checks the session frames it shows.

Run: python -m pytest -p no:cacheprovider tests/e2e/test_golden.py  (scripts/test-browser.sh)
"""

import asyncio
import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = json.loads((ROOT / "tests/golden/frames.json").read_text())
EXCHANGES = [case for case in GOLDEN["conversation"] + GOLDEN["store_failures"] if "client_action" in case]


def load(path):
    spec = importlib.util.spec_from_file_location(path.stem, ROOT / path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def example(value):
    """`value` with each placeholder replaced by the fixture's example of it."""
    if isinstance(value, str):
        return GOLDEN["placeholders"].get(value, {}).get("example", value)
    if isinstance(value, list):
        return [example(v) for v in value]
    if isinstance(value, dict):
        return {k: example(v) for k, v in value.items()}
    return value


smoke = load(Path("scripts/smoke.py"))
locustfile = load(Path("loadtest/locustfile.py"))


def one_in_flight(action):
    """What a client with one message in flight does: everything before it was acknowledged,
    so a seq_gap means an acknowledged message was lost, a failure to report."""
    return "report" if action == "resend_from_expected" else action


@pytest.mark.parametrize("case", EXCHANGES, ids=[c["name"] for c in EXCHANGES])
def test_smoke_resends_exactly_what_the_fixture_says(case):
    assert smoke.must_resend(example(case["server"])) == (case["client_action"] == "resend")


@pytest.mark.parametrize("case", EXCHANGES, ids=[c["name"] for c in EXCHANGES])
def test_locust_users_do_what_the_fixture_says(case):
    assert locustfile.action(example(case["server"])) == one_in_flight(case["client_action"])


class FakeSocket:
    """Plays the golden conversation's server side to smoke.py: a new session, then a resume."""

    def __init__(self, frames):
        self.frames = [json.dumps(f) for f in frames]
        self.sent = []

    async def recv(self):
        return self.frames.pop(0)

    async def send(self, text):
        self.sent.append(json.loads(text))

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc):
        return False


def test_smoke_accepts_the_golden_session_frames(monkeypatch):
    steps = GOLDEN["conversation"]
    new = example(next(s["server"] for s in steps if s.get("connect") == "new"))
    resumed = example(next(s["server"] for s in steps if s.get("connect") == "resume"))
    counted = example(next(s["server"] for s in steps if s.get("client_action") == "ack"))
    # smoke.py checks a first message counted 1 and a resume at count 1, last_seq 1.
    resumed.update(count=1, last_seq=1)
    counted.update(count=1)
    sockets = [FakeSocket([new, counted]), FakeSocket([resumed])]
    urls = []

    def connect(url, **_):
        urls.append(url)
        return sockets[len(urls) - 1]

    monkeypatch.setattr(smoke.websockets, "connect", connect)
    asyncio.run(smoke.smoke("ws://127.0.0.1:9", new["color"]))
    assert urls[1].endswith(f"session_id={new['session_id']}")
    assert sockets[0].sent == [{"seq": counted["seq"], "text": "smoke"}]
