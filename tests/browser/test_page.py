"""The page at `/` in headless Chromium against the real binary and a real Redis.

It opens a session and counts; the server is sent SIGTERM and a new one started on the same
port; the page reconnects by itself, shows "resumed", and the count goes on with nothing lost
or doubled (checked against Redis). Screenshots go to artifacts/browser/.

Needs: REDIS_URL (a disposable redis-server), SWITCHYARD_BIN (default
target/release/switchyard), CHROMIUM (default /usr/bin/chromium: Debian's, driven by the PyPI
package `playwright` through executable_path; no browser is downloaded). scripts/test-browser.sh
provides all of them. Run: python -m pytest tests/browser/test_page.py

The steps run in file order and share one server pair and one page; a step whose predecessor
failed is skipped rather than failing for a reason that is not its own.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import Page, sync_playwright

ROOT = Path(__file__).resolve().parents[2]
# Protocol v1 written once: the session key pattern and the refusal bodies come from here.
GOLDEN = json.loads((ROOT / "tests/golden/frames.json").read_text())
BIN = os.environ.get("SWITCHYARD_BIN") or str(ROOT / "target/release/switchyard")
CHROMIUM = os.environ.get("CHROMIUM") or "/usr/bin/chromium"
REDIS_URL = os.environ.get("REDIS_URL")
ARTIFACTS = Path(os.environ.get("ARTIFACTS_DIR") or ROOT / "artifacts/browser")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SESSION_ID = re.compile(r"^[0-9a-f-]{36}$")


class Server:
    """One switchyard process, owned by this test: started, stopped by PID, logs to artifacts/."""

    def __init__(self, color: str, port: int) -> None:
        self.color = color
        self.log_path = ARTIFACTS / f"server-{color}.log"
        self._log = open(self.log_path, "wb")
        env = {
            **os.environ,
            "COLOR": color,
            "BIND": "127.0.0.1",
            "PORT": str(port),
            "REDIS_URL": REDIS_URL or "",
            "STORE": "redis",
            "HEARTBEAT_INTERVAL_SECS": "1",
            "DRAIN_SPREAD_MS": "200",
            "DRAIN_TIMEOUT_SECS": "5",
            "LOG_FORMAT": "json",
            "RUST_LOG": os.environ.get("RUST_LOG") or "info",
        }
        self.proc = subprocess.Popen(
            [BIN, "serve"], env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
        # so scripts/test-browser.sh can stop it should this process be killed
        with open(ARTIFACTS / "server.pids", "a") as pids:
            pids.write(f"{self.proc.pid}\n")
        self.port: int | None = None
        self._listening = threading.Event()
        self._reader = threading.Thread(target=self._read, name=f"{color}-log", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        # Copies the server's output to its log and notes the port of its "listening" line;
        # runs until the process closes its output (it exited), which also wakes started().
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._log.write(line)
            self._log.flush()
            if self.port is None and b"listening" in line:
                try:
                    addr = json.loads(line).get("addr", "")
                except ValueError:
                    continue
                if addr:
                    self.port = int(addr.rsplit(":", 1)[1])
                    self._listening.set()
        self._listening.set()

    def started(self, timeout: float = 20) -> int:
        if not self._listening.wait(timeout):
            raise AssertionError(f'{self.color} did not log "listening" within {timeout} s; see {self.log_path}')
        if self.port is None:
            raise AssertionError(f"{self.color} exited ({self.proc.poll()}) before listening; see {self.log_path}")
        return self.port

    def terminate(self, timeout: float = 15) -> int:
        """SIGTERM and wait for the drain to finish; the exit status is returned."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"{self.color} did not exit within {timeout} s of SIGTERM; see {self.log_path}")

    def kill(self) -> None:
        """Last resort at the end of the test: SIGKILL by PID if still running."""
        if self.proc.poll() is None:
            self.proc.kill()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                pass
        self._reader.join(5)
        self._log.close()


@dataclass
class Run:
    """What the steps share: the servers, the page, and what an earlier step found."""

    servers: list[Server] = field(default_factory=list)
    page: Page | None = None
    base: str = ""
    port: int = 0
    page_errors: list[str] = field(default_factory=list)
    console: list[str] = field(default_factory=list)
    session_id: str = ""
    before: int = 0
    done: set[str] = field(default_factory=set)

    def needs(self, *steps: str) -> Page:
        missing = [s for s in steps if s not in self.done]
        if missing:
            pytest.skip(f"an earlier step did not pass: {', '.join(missing)}")
        assert self.page is not None
        return self.page


def http_get(url: str) -> tuple[int, dict[str, str], str]:
    """Status, headers (lower-case names) and body of a plain GET; an error status is an answer too."""
    try:
        with urllib.request.urlopen(url, timeout=5) as res:
            return res.status, {k.lower(): v for k, v in res.headers.items()}, res.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, {k.lower(): v for k, v in err.headers.items()}, err.read().decode()


def redis_session_count(session_id: str) -> int:
    out = subprocess.run(
        ["redis-cli", "-u", REDIS_URL or "", "HGET", GOLDEN["session_key"]["pattern"].replace("<uuid>", session_id), "count"],
        capture_output=True, text=True, timeout=5, check=True,
    ).stdout.strip()
    return int(out)


def text(page: Page, element_id: str) -> str:
    """Text of the page element with this id."""
    return page.locator(f"#{element_id}").text_content(timeout=5000) or ""


def wait_for(page: Page, what: str, expression: str, arg: object = None, ms: int = 15000) -> None:
    """Wait (at most `ms`) until the JavaScript predicate holds in the page; on a timeout, screenshot."""
    try:
        page.wait_for_function(expression, arg=arg, timeout=ms, polling=50)
    except PlaywrightError as err:
        shot = ARTIFACTS / ("failed-" + re.sub(r"\W+", "-", what) + ".png")
        try:
            page.screenshot(path=str(shot), timeout=5000)
        except PlaywrightError:
            pass
        raise AssertionError(f"page: timed out after {ms} ms waiting for {what} (screenshot {shot})\n{err}") from None


def by_id_is(element_id: str, value: str) -> str:
    return f"() => document.getElementById({json.dumps(element_id)}).textContent === {json.dumps(value)}"


@pytest.fixture(scope="module")
def run():
    assert REDIS_URL, "REDIS_URL must name a disposable redis-server (scripts/test-browser.sh starts one)"
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    state = Run()
    # `timeout` (scripts/test-browser.sh) ends a run that overstays with SIGTERM: unwind as on
    # Ctrl-C, so the teardown below still stops the servers and Chromium and removes the profile.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    profile = tempfile.mkdtemp(prefix="switchyard-chromium-")
    try:
        with sync_playwright() as pw:
            blue = Server("blue", int(os.environ.get("PORT") or 0))
            state.servers.append(blue)
            state.port = blue.started()
            state.base = f"http://127.0.0.1:{state.port}"
            context = pw.chromium.launch_persistent_context(
                profile,
                executable_path=CHROMIUM,
                headless=True,
                args=CHROMIUM_ARGS,
                viewport={"width": 720, "height": 640},
                timeout=30000,
            )
            try:
                page = context.pages[0] if context.pages else context.new_page()
                page.on("pageerror", lambda err: state.page_errors.append(str(err)))
                page.on("console", lambda msg: state.console.append(f"{msg.type}: {msg.text}"))
                page.add_init_script(
                    "window.__cspViolations = [];"
                    "document.addEventListener('securitypolicyviolation',"
                    " (e) => window.__cspViolations.push(`${e.violatedDirective} ${e.blockedURI}`));"
                )
                state.page = page
                yield state
            finally:
                (ARTIFACTS / "console.log").write_text("\n".join(state.console) + "\n")
                try:
                    context.close()
                except PlaywrightError:
                    pass
    finally:
        for server in state.servers:
            server.kill()
        shutil.rmtree(profile, ignore_errors=True)


def test_server_answers_what_the_page_relies_on(run: Run) -> None:
    status, headers, _ = http_get(f"{run.base}/")
    assert status == 200
    assert "script-src 'self'" in headers.get("content-security-policy", ""), "the page gets a CSP without inline scripts"
    assert headers.get("x-content-type-options") == "nosniff"
    for path in ("/client.js", "/page.js"):
        status, headers, _ = http_get(f"{run.base}{path}")
        assert status == 200, path
        assert "javascript" in headers.get("content-type", ""), f"{path} is served as JavaScript"
    # What the client's probe of a refused stored id depends on: a plain GET answers
    # 400 invalid_session_id for a bad id, and something else for a good one.
    status, _, body = http_get(f"{run.base}/ws/chat/?session_id=not-a-uuid")
    assert status == 400
    assert json.loads(body) == next(r["body"] for r in GOLDEN["refusals"] if r["code"] == "invalid_session_id")
    status, _, body = http_get(f"{run.base}/ws/chat/?session_id=0b6e4c2a-3f4d-4e5f-8a9b-0c1d2e3f4a5b")
    assert "invalid_session_id" not in body, f"a valid id is not refused as invalid ({status} {body})"


def test_page_opens_a_session_and_counts(run: Run) -> None:
    page = run.needs()
    page.goto(f"{run.base}/", timeout=15000)
    wait_for(page, "state open", by_id_is("state", "open"))
    assert text(page, "color") == "blue"
    assert text(page, "resumed") == "new"
    run.session_id = text(page, "session")
    assert SESSION_ID.match(run.session_id), run.session_id
    for _ in range(5):
        page.click("#send", timeout=5000)
    wait_for(page, "count 5", by_id_is("count", "5"))
    wait_for(page, "a heartbeat", "() => document.getElementById('heartbeat').textContent !== '–'", ms=5000)
    # auto-send fast, so messages are in flight when the server goes away
    page.fill("#interval", "40", timeout=5000)
    page.check("#auto", timeout=5000)
    wait_for(page, "count 20", "() => Number(document.getElementById('count').textContent) >= 20")
    page.screenshot(path=str(ARTIFACTS / "page-before-restart.png"), timeout=10000)
    run.before = int(text(page, "count"))
    run.done.add("open")


def test_sigterm_drains_and_a_new_server_on_the_same_port_takes_over(run: Run) -> None:
    page = run.needs("open")
    blue = run.servers[0]
    assert blue.terminate() == 0, f"blue exits 0 after its drain; see {blue.log_path}"
    wait_for(page, "state reconnecting", "() => document.getElementById('state').textContent !== 'open'", ms=5000)
    # A restart is not instant: the page meets a refused port and backs off. Wait until an
    # attempt made after blue exited has failed and the next one is scheduled.
    attempts = page.evaluate("() => window.switchyard.attempts")
    wait_for(page, "a failed attempt with no server", "(n) => window.switchyard.attempts > n", attempts, ms=15000)
    page.screenshot(path=str(ARTIFACTS / "page-reconnecting.png"), timeout=10000)
    green = Server("green", run.port)
    run.servers.append(green)
    assert green.started() == run.port
    wait_for(
        page,
        "green resumed",
        "() => document.getElementById('color').textContent === 'green'"
        " && document.getElementById('state').textContent === 'open'",
        ms=30000,
    )
    assert text(page, "resumed") == "resumed"
    assert text(page, "session") == run.session_id, "the same session goes on"
    assert int(text(page, "reconnects")) >= 1
    log = text(page, "log")
    assert "closed 1001 draining" in log, f"the page saw the drain's close code:\n{log}"
    assert re.search(r"reconnect attempt 2 ", log), f"the first attempt met no server and the page backed off:\n{log}"
    run.done.add("restart")


def test_the_count_goes_on_with_nothing_lost_or_doubled(run: Run) -> None:
    page = run.needs("open", "restart")
    wait_for(
        page,
        "count to grow after the restart",
        "(n) => Number(document.getElementById('count').textContent) >= n + 10",
        run.before,
    )
    page.uncheck("#auto", timeout=5000)
    wait_for(page, "nothing pending", by_id_is("pending", "0"))
    sent = int(text(page, "sent"))
    acked = int(text(page, "acked"))
    count = int(text(page, "count"))
    assert acked == sent, "every message was acknowledged"
    assert count == sent, "the count is the number of messages the page sent"
    assert redis_session_count(run.session_id) == sent, "Redis holds the same count"
    page.screenshot(path=str(ARTIFACTS / "page-after-restart.png"), timeout=10000)
    print(f"# sent {sent}, count {count} ({run.before} before the restart), session {run.session_id}")
    run.done.add("counted")


def test_a_bad_stored_session_id_makes_the_page_start_a_new_session(run: Run) -> None:
    page = run.needs("open", "restart")
    page.evaluate("() => localStorage.setItem('switchyard.session_id', 'not-a-uuid')")
    page.reload(timeout=15000)
    wait_for(page, "a new session", by_id_is("state", "open"))
    assert text(page, "resumed") == "new"
    assert text(page, "session") != run.session_id
    assert text(page, "count") == "0"


def test_the_page_broke_no_rule_of_its_csp_and_threw_nothing(run: Run) -> None:
    page = run.needs("open")
    assert page.evaluate("() => window.__cspViolations") == []
    assert run.page_errors == []
