// The page at `/`: shows one SwitchyardClient's state and lets a person send messages.
// Kept out of index.html so the page works under a CSP without 'unsafe-inline' scripts.

import { SwitchyardClient } from "./client.js";

const $ = (id) => document.getElementById(id);
const client = new SwitchyardClient();
let reconnects = 0;
let autoTimer = null;

function log(line) {
  const el = $("log");
  const stamp = new Date().toISOString().slice(11, 23);
  const lines = el.textContent ? el.textContent.split("\n") : [];
  lines.unshift(`${stamp} ${line}`);
  el.textContent = lines.slice(0, 12).join("\n");
}

function render() {
  const state = $("state");
  state.textContent = client.state;
  state.className = `state-${client.state}`;
  const color = $("color");
  color.textContent = client.color || "–";
  color.className = `color ${client.color || ""}`;
  $("session").textContent = client.sessionId || "–";
  $("resumed").textContent = client.resumed === null ? "" : client.resumed ? "resumed" : "new";
  $("count").textContent = client.count === null ? "–" : String(client.count);
  $("sent").textContent = String(client.sent);
  $("acked").textContent = String(client.acked);
  $("pending").textContent = String(client.pending);
  $("heartbeat").textContent = client.lastHeartbeat || "–";
  $("reconnects").textContent = String(reconnects);
  $("attempt").textContent = client.attempts ? `(now on attempt ${client.attempts})` : "";
  document.title = client.color ? `switchyard · ${client.color} · ${client.state}` : "switchyard";
}

client.on("state", render);
client.on("open", ({ attempt }) => log(attempt ? `open (attempt ${attempt})` : "open"));
client.on("session", ({ sessionId, count, resumed, color }) => {
  log(`session ${resumed ? "resumed" : "new"} ${sessionId} on ${color}, count ${count}`);
  render();
});
client.on("count", ({ seq, duplicate }) => {
  if (duplicate) log(`seq ${seq} was already counted`);
  render();
});
client.on("heartbeat", render);
client.on("close", ({ code, reason }) => log(`closed ${code}${reason ? ` ${reason}` : ""}`));
client.on("reconnecting", ({ attempt, delayMs }) => {
  if (attempt === 1) reconnects += 1;
  log(`reconnect attempt ${attempt} in ${delayMs} ms`);
  render();
});
client.on("error", ({ code, message }) => log(`error ${code}: ${message}`));

function sendOne() {
  try {
    client.send({ text: "hello" });
  } catch (err) {
    log(`not sent: ${err.message}`);
  }
  render();
}

function setAuto() {
  clearInterval(autoTimer);
  autoTimer = null;
  if ($("auto").checked) {
    const ms = Math.max(10, Number($("interval").value) || 1000);
    autoTimer = setInterval(sendOne, ms);
  }
}

$("send").addEventListener("click", sendOne);
$("auto").addEventListener("change", setAuto);
$("interval").addEventListener("change", setAuto);

// For people poking at it in the console, and for the browser test.
globalThis.switchyard = client;
render();
client.connect();
