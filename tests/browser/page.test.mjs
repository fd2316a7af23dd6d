// The page at `/` in headless Chromium against the real binary and a real Redis:
// it opens a session and counts; the server is sent SIGTERM and a new one started on
// the same port; the page reconnects by itself, shows "resumed", and the count goes on
// with nothing lost or doubled (checked against Redis). Screenshots go to artifacts/.
//
// Needs: REDIS_URL (a disposable redis-server), SWITCHYARD_BIN (default
// target/release/switchyard), CHROMIUM (default /usr/bin/chromium). scripts/test-browser.sh
// provides all of them. Run: node --test page.test.mjs
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn, execFile } from "node:child_process";
import { appendFileSync, createWriteStream, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";

import { chromium } from "playwright-core";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
const BIN = process.env.SWITCHYARD_BIN || join(ROOT, "target/release/switchyard");
const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";
const REDIS_URL = process.env.REDIS_URL;
const ARTIFACTS = process.env.ARTIFACTS_DIR || join(ROOT, "artifacts/browser");
const CHROMIUM_ARGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

/** Resolve `promise` within `ms`, else fail naming what was awaited. */
async function within(ms, what, promise) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** One switchyard process, owned by this test: started, stopped by PID, logs to artifacts/. */
class Server {
  constructor(color, port) {
    this.color = color;
    this.log = createWriteStream(join(ARTIFACTS, `server-${color}.log`));
    this.proc = spawn(BIN, ["serve"], {
      env: {
        ...process.env,
        COLOR: color,
        BIND: "127.0.0.1",
        PORT: String(port),
        REDIS_URL,
        STORE: "redis",
        HEARTBEAT_INTERVAL_SECS: "1",
        DRAIN_SPREAD_MS: "200",
        DRAIN_TIMEOUT_SECS: "5",
        LOG_FORMAT: "json",
        RUST_LOG: process.env.RUST_LOG || "info",
      },
      stdio: ["ignore", "pipe", "pipe"],
    });
    // so scripts/test-browser.sh can stop it should this process be killed
    appendFileSync(join(ARTIFACTS, "server.pids"), `${this.proc.pid}\n`);
    this.exited = new Promise((resolve) => this.proc.on("exit", (code, signal) => resolve({ code, signal })));
    this.proc.stderr.pipe(this.log, { end: false });
    this.listening = new Promise((resolve, reject) => {
      let buf = "";
      this.proc.stdout.on("data", (chunk) => {
        this.log.write(chunk);
        buf += chunk;
        let nl;
        while ((nl = buf.indexOf("\n")) >= 0) {
          const line = buf.slice(0, nl);
          buf = buf.slice(nl + 1);
          const m = line.includes("listening") && line.match(/"addr":"([^"]+)"/);
          if (m) resolve(Number(m[1].split(":").pop()));
        }
      });
      this.exited.then(({ code, signal }) => reject(new Error(`${color} exited (${code ?? signal}) before listening; see ${this.log.path}`)));
    });
  }

  async started() {
    this.port = await within(20000, `${this.color} to log "listening"`, this.listening);
    return this.port;
  }

  /** SIGTERM and wait for the drain to finish; the exit status is returned. */
  async terminate(ms = 15000) {
    if (this.proc.exitCode !== null || this.proc.signalCode !== null) return this.exited;
    this.proc.kill("SIGTERM");
    return within(ms, `${this.color} to exit after SIGTERM`, this.exited);
  }

  /** Last resort at the end of the test: SIGKILL by PID if still running. */
  async kill() {
    if (this.proc.exitCode === null && this.proc.signalCode === null) {
      this.proc.kill("SIGKILL");
      await within(5000, `${this.color} to die`, this.exited).catch(() => {});
    }
    this.log.end();
  }
}

async function redisSessionCount(id) {
  const { stdout } = await promisify(execFile)("redis-cli", ["-u", REDIS_URL, "HGET", `session:{${id}}`, "count"], { timeout: 5000 });
  return Number(stdout.trim());
}

/** Text of the page element with this id. */
const text = (page, id) => page.locator(`#${id}`).textContent();

async function waitFor(page, what, fn, arg, ms = 15000) {
  try {
    await page.waitForFunction(fn, arg, { timeout: ms, polling: 50 });
  } catch (err) {
    const shot = join(ARTIFACTS, `failed-${what.replace(/\W+/g, "-")}.png`);
    await page.screenshot({ path: shot }).catch(() => {});
    throw new Error(`page: timed out after ${ms} ms waiting for ${what} (screenshot ${shot})\n${err.message}`);
  }
}

const byId = (id) => document.getElementById(id).textContent;

test("the page resumes its session across a server restart, counting each message once", { timeout: 150000 }, async (t) => {
  assert.ok(REDIS_URL, "REDIS_URL must name a disposable redis-server (scripts/test-browser.sh starts one)");
  mkdirSync(ARTIFACTS, { recursive: true });
  const servers = [];
  const profile = mkdtempSync(join(tmpdir(), "switchyard-chromium-"));
  let context;
  const pageErrors = [];
  const consoleLines = [];
  t.after(async () => {
    writeFileSync(join(ARTIFACTS, "console.log"), consoleLines.join("\n") + "\n");
    if (context) await context.close().catch(() => {});
    for (const s of servers) await s.kill();
    rmSync(profile, { recursive: true, force: true });
  });

  const blue = new Server("blue", process.env.PORT || 0);
  servers.push(blue);
  const port = await blue.started();
  const base = `http://127.0.0.1:${port}`;

  await t.test("the server answers what the page relies on", async () => {
    const res = await fetch(`${base}/`);
    assert.equal(res.status, 200);
    const csp = res.headers.get("content-security-policy") || "";
    assert.match(csp, /script-src 'self'/, "the page gets a CSP without inline scripts");
    assert.equal(res.headers.get("x-content-type-options"), "nosniff");
    for (const path of ["/client.js", "/page.js"]) {
      const js = await fetch(`${base}${path}`);
      assert.equal(js.status, 200, path);
      assert.match(js.headers.get("content-type") || "", /javascript/, `${path} is served as JavaScript`);
    }
    // What the client's probe of a refused stored id depends on: a plain GET answers
    // 400 invalid_session_id for a bad id, and something else for a good one.
    const bad = await fetch(`${base}/ws/chat/?session_id=not-a-uuid`);
    assert.equal(bad.status, 400);
    assert.equal((await bad.json()).error, "invalid_session_id");
    const good = await fetch(`${base}/ws/chat/?session_id=0b6e4c2a-3f4d-4e5f-8a9b-0c1d2e3f4a5b`);
    const body = await good.text();
    assert.ok(!body.includes("invalid_session_id"), `a valid id is not refused as invalid (${good.status} ${body})`);
  });

  context = await within(
    30000,
    "Chromium to start",
    chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      args: CHROMIUM_ARGS,
      viewport: { width: 720, height: 640 },
    }),
  );
  const page = context.pages()[0] || (await context.newPage());
  page.on("pageerror", (err) => pageErrors.push(String(err)));
  page.on("console", (msg) => consoleLines.push(`${msg.type()}: ${msg.text()}`));
  await page.addInitScript(() => {
    window.__cspViolations = [];
    document.addEventListener("securitypolicyviolation", (e) => window.__cspViolations.push(`${e.violatedDirective} ${e.blockedURI}`));
  });

  let sessionId;
  let before;
  await t.test("the page opens a session and counts", async () => {
    await page.goto(`${base}/`, { timeout: 15000 });
    await waitFor(page, "state open", () => document.getElementById("state").textContent === "open");
    assert.equal(await text(page, "color"), "blue");
    assert.equal(await text(page, "resumed"), "new");
    sessionId = await text(page, "session");
    assert.match(sessionId, /^[0-9a-f-]{36}$/);
    for (let i = 0; i < 5; i++) await page.click("#send");
    await waitFor(page, "count 5", () => document.getElementById("count").textContent === "5");
    await waitFor(page, "a heartbeat", () => document.getElementById("heartbeat").textContent !== "–", undefined, 5000);
    // auto-send fast, so messages are in flight when the server goes away
    await page.fill("#interval", "40");
    await page.check("#auto");
    await waitFor(page, "count 20", () => Number(document.getElementById("count").textContent) >= 20);
    await page.screenshot({ path: join(ARTIFACTS, "page-before-restart.png") });
    before = Number(await text(page, "count"));
  });

  await t.test("SIGTERM drains the server; a new one on the same port takes over", async () => {
    const exit = await blue.terminate();
    assert.deepEqual(exit, { code: 0, signal: null }, `blue exits 0 after its drain; see ${blue.log.path}`);
    await waitFor(page, "state reconnecting", () => document.getElementById("state").textContent !== "open", undefined, 5000);
    // A restart is not instant: the page meets a refused port for a while and backs off.
    await new Promise((r) => setTimeout(r, 1500));
    await page.screenshot({ path: join(ARTIFACTS, "page-reconnecting.png") });
    const green = new Server("green", port);
    servers.push(green);
    assert.equal(await green.started(), port);
    await waitFor(page, "green resumed", () => document.getElementById("color").textContent === "green" && document.getElementById("state").textContent === "open", undefined, 30000);
    assert.equal(await text(page, "resumed"), "resumed");
    assert.equal(await text(page, "session"), sessionId, "the same session goes on");
    assert.ok(Number(await text(page, "reconnects")) >= 1);
    const log = await text(page, "log");
    assert.match(log, /closed 1001 draining/, "the page saw the drain's close code");
    assert.match(log, /reconnect attempt 2 /, "the first attempt met no server and the page backed off");
  });

  await t.test("the count goes on with nothing lost or doubled", async () => {
    await waitFor(page, "count to grow after the restart", (n) => Number(document.getElementById("count").textContent) >= n + 10, before);
    await page.uncheck("#auto");
    await waitFor(page, "nothing pending", () => document.getElementById("pending").textContent === "0");
    const sent = Number(await text(page, "sent"));
    const acked = Number(await text(page, "acked"));
    const count = Number(await text(page, "count"));
    assert.equal(acked, sent, "every message was acknowledged");
    assert.equal(count, sent, "the count is the number of messages the page sent");
    assert.equal(await redisSessionCount(sessionId), sent, "Redis holds the same count");
    await page.screenshot({ path: join(ARTIFACTS, "page-after-restart.png") });
    console.log(`# sent ${sent}, count ${count} (${before} before the restart), session ${sessionId}`);
  });

  await t.test("a bad stored session id makes the page start a new session", async () => {
    await page.evaluate(() => localStorage.setItem("switchyard.session_id", "not-a-uuid"));
    await page.reload({ timeout: 15000 });
    await waitFor(page, "a new session", () => document.getElementById("state").textContent === "open");
    assert.equal(await text(page, "resumed"), "new");
    assert.notEqual(await text(page, "session"), sessionId);
    assert.equal(await text(page, "count"), "0");
  });

  await t.test("the page broke no rule of its CSP and threw nothing", async () => {
    assert.deepEqual(await page.evaluate(() => window.__cspViolations), []);
    assert.deepEqual(pageErrors, []);
  });
});
