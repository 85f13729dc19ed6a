// gpupool dashboard: sign in to a session cookie, follow /v1/stream (server-sent events), draw, act.
//
// The token is sent once, to POST /v1/session, and never kept by the page: the server answers
// with an HttpOnly cookie that fetch() and EventSource send by themselves. The stream opens with
// the whole overview and then sends deltas (changed device tiles, changed lists, new events), so
// the page touches only what changed; sparklines are redrawn only for nodes on screen.
import * as render from "/static/render.js";

const HISTORY_POINTS = 150;
const CSRF = { "X-Gpupool-Csrf": "1" }; // changes made with the cookie must carry it

const state = {
  source: null,
  overview: null, // the lists and counters of the last overview, patched by deltas
  devices: new Map(), // uuid -> device card, in inventory order
  tiles: new Map(), // uuid -> its .device element
  pods: new Map(), // claim id -> the Kubernetes pod it was made for
  nodeDevices: new Map(), // node name -> uuids of its devices
  visibleNodes: new Set(), // node names whose card is on screen
  observer: null,
  history: {}, // device uuid -> utilization percents, oldest first
  sampleId: -1,
  lastEventId: 0,
  openClaim: null,
  preempt: true, // admin may preempt a bound claim from its detail
};

const $ = (id) => document.getElementById(id);

// ------------------------------------------------------------------ network
class Unauthorized extends Error {}

async function api(method, path, body) {
  const headers = { ...CSRF };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(path, {
    method,
    headers,
    credentials: "same-origin",
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (response.status === 401) throw new Unauthorized("unauthorized");
  if (response.status === 204) return {};
  const answer = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(answer.detail || `${response.status} ${response.statusText}`);
  return answer;
}

async function guarded(call) {
  try {
    return await call();
  } catch (error) {
    if (error instanceof Unauthorized) signedOut("Your session ended; sign in again.");
    throw error;
  }
}

function connect() {
  if (state.source) state.source.close();
  setConn("retry", "connecting");
  const source = new EventSource("/v1/stream"); // the session cookie authenticates it
  state.source = source;
  source.addEventListener("overview", (message) => {
    setConn("live", "live");
    drawFull(JSON.parse(message.data));
  });
  source.addEventListener("delta", (message) => {
    setConn("live", "live");
    applyDelta(JSON.parse(message.data));
  });
  source.addEventListener("refused", (message) => {
    source.close();
    setConn("idle", JSON.parse(message.data).detail || "refused");
  });
  source.onerror = async () => {
    setConn("retry", "reconnecting");
    // EventSource hides the status: ask once whether the session is still good.
    try { await guarded(() => api("GET", "/v1/session")); } catch { /* signedOut() ran on 401 */ }
  };
}

// -------------------------------------------------------------------- login
function showLogin(message = "") {
  $("login").hidden = false;
  $("login-error").textContent = message;
  $("token").value = "";
  $("token").focus();
}

async function start() {
  try {
    await api("GET", "/v1/session"); // signed in? The stream's first message then draws the pool.
    $("login").hidden = true;
    connect();
  } catch (error) {
    if (error instanceof Unauthorized) showLogin();
    else showLogin(`Cannot reach the pool: ${error.message}`);
  }
}

async function login(token) {
  try {
    await api("POST", "/v1/session", { token: token.trim() });
  } catch (error) {
    showLogin(error instanceof Unauthorized ? "That token was refused." : `Cannot sign in: ${error.message}`);
    return;
  }
  $("token").value = ""; // the page keeps no copy of it
  await start();
}

async function logout() {
  try { await api("DELETE", "/v1/session"); } catch { /* signed out either way */ }
  signedOut();
}

function signedOut(message = "") {
  if (state.source) state.source.close();
  state.source = null;
  setConn("idle", "offline");
  $("logout").hidden = true;
  showLogin(message);
}

function setConn(kind, label) {
  $("conn").dataset.state = kind;
  $("conn").querySelector(".label").textContent = label;
}

// --------------------------------------------------------------------- draw
function view() {
  // The overview as render.js expects it, with the current device cards.
  return { ...state.overview, devices: [...state.devices.values()] };
}

function drawFull(overview) {
  state.overview = overview;
  state.devices = new Map(overview.devices.map((d) => [d.uuid, d]));
  if (overview.history) {
    state.history = overview.history;
    state.sampleId = overview.sample_id;
  } else {
    noteSample(overview.sample_id);
  }
  const o = view();
  render.setTenantSlots(o.tenants);
  state.pods = render.podsOf(o);
  $("nodes").classList.toggle("dense", o.devices.length > render.DENSE_DEVICES);
  $("nodes").innerHTML = render.nodes(o, state.history);
  state.tiles = new Map([...$("nodes").querySelectorAll(".device")].map((el) => [el.dataset.uuid, el]));
  state.nodeDevices = new Map();
  for (const d of o.devices) {
    if (!state.nodeDevices.has(d.node)) state.nodeDevices.set(d.node, []);
    state.nodeDevices.get(d.node).push(d.uuid);
  }
  watchNodes();
  drawStats(o);
  drawLists(o, { queue: true, tenants: true, events: true });
}

function applyDelta(delta) {
  const o = state.overview;
  for (const key of ["queue", "queue_length", "claims", "claims_total", "tenants", "viewer", "admin", "policy"]) {
    if (key in delta) o[key] = delta[key];
  }
  o.generated_at = delta.generated_at;
  o.events = [...o.events, ...delta.events].slice(-60);
  const touchedNodes = new Set();
  for (const card of delta.devices) {
    state.devices.set(card.uuid, card);
    touchedNodes.add(card.node);
  }
  if ("tenants" in delta) render.setTenantSlots(o.tenants);
  if ("claims" in delta) state.pods = render.podsOf(o);
  const sampled = noteSample(delta.sample_id);
  for (const card of delta.devices) replaceTile(card);
  if (sampled) refreshVisibleSparklines();
  for (const node of touchedNodes) refreshNodeHead(node);
  const current = view();
  drawStats(current);
  drawLists(current, {
    queue: "queue" in delta || "queue_length" in delta,
    tenants: "tenants" in delta || delta.devices.length > 0, // the legend names segments' tenants
    events: delta.events.length > 0,
  });
}

// A new telemetry sample: every device's history gets its current utilization.
function noteSample(sampleId) {
  if (sampleId === state.sampleId) return false;
  state.sampleId = sampleId;
  for (const device of state.devices.values()) {
    const series = (state.history[device.uuid] ||= []);
    series.push(device.utilization_percent ?? 0);
    if (series.length > HISTORY_POINTS) series.splice(0, series.length - HISTORY_POINTS);
  }
  return true;
}

function fromHtml(html) {
  const template = document.createElement("template");
  template.innerHTML = html;
  return template.content.firstElementChild;
}

function replaceTile(card) {
  const old = state.tiles.get(card.uuid);
  if (!old) return;
  const tile = fromHtml(render.deviceTile(card, state.history[card.uuid], state.pods));
  old.replaceWith(tile);
  state.tiles.set(card.uuid, tile);
}

function refreshVisibleSparklines() {
  for (const node of state.visibleNodes) {
    for (const uuid of state.nodeDevices.get(node) || []) {
      const spark = state.tiles.get(uuid)?.querySelector("svg.spark");
      if (spark) spark.replaceWith(fromHtml(render.sparkline(state.history[uuid] || [])));
    }
  }
}

function refreshNodeHead(node) {
  const tile = state.tiles.get((state.nodeDevices.get(node) || [])[0]);
  const head = tile?.closest(".node")?.querySelector(".alloc");
  if (!head) return;
  head.textContent = render.nodeAlloc(state.nodeDevices.get(node).map((uuid) => state.devices.get(uuid)));
}

// Sparklines of nodes off screen are not redrawn on each sample; a node coming into view is.
function watchNodes() {
  if (state.observer) state.observer.disconnect();
  state.visibleNodes.clear();
  state.observer = new IntersectionObserver((entries) => {
    let appeared = false;
    for (const entry of entries) {
      const node = entry.target.dataset.node;
      if (entry.isIntersecting) { appeared = appeared || !state.visibleNodes.has(node); state.visibleNodes.add(node); }
      else state.visibleNodes.delete(node);
    }
    if (appeared) refreshVisibleSparklines();
  });
  for (const element of $("nodes").querySelectorAll(".node")) state.observer.observe(element);
}

function drawStats(o) {
  $("viewer").innerHTML = `signed in as <b>${render.esc(o.viewer)}</b>`;
  $("logout").hidden = false;
  $("stats").innerHTML = render.stats(o);
  document.title = `gpupool · ${o.devices.length} GPUs · ${o.queue_length} pending`;
}

// Redraw only the side lists that changed: a utilization sample changes none of them.
function drawLists(o, changed) {
  if (changed.tenants) {
    $("legend").innerHTML = render.legend(o);
    $("tenants").innerHTML = render.tenants(o);
  }
  if (changed.queue) {
    $("queue").innerHTML = render.queue(o);
    $("queue-count").textContent = o.queue_length ? `${o.queue_length} pending` : "";
  }
  if (changed.events) {
    const newest = o.events.length ? o.events[o.events.length - 1].id : 0;
    $("events").innerHTML = o.events
      .slice()
      .reverse()
      .map((e) => render.eventLine(e, state.lastEventId && e.id > state.lastEventId))
      .join("");
    state.lastEventId = Math.max(state.lastEventId, newest);
    if (state.openClaim) refreshDetail(state.openClaim, false);
  }
}

// ------------------------------------------------------------- claim detail
async function refreshDetail(claimId, open = true) {
  try {
    const [claim, events] = await guarded(() => Promise.all([
      api("GET", `/v1/claims/${encodeURIComponent(claimId)}`),
      api("GET", `/v1/events?claim=${encodeURIComponent(claimId)}&limit=100`),
    ]));
    showDetail(claim, events.items, open);
  } catch (error) {
    if (error instanceof Unauthorized) return;
    $("detail-body").innerHTML = `<p class="error">${render.esc(error.message)}</p>`;
    if (open) { state.openClaim = claimId; $("detail").hidden = false; }
  }
}

function showDetail(claim, events, open) {
  const viewer = { name: state.overview?.viewer, admin: state.overview?.admin, preempt: state.preempt };
  $("detail-body").innerHTML = render.claimDetail(claim, events, viewer);
  if (open) { state.openClaim = claim.id; $("detail").hidden = false; }
}

function closeDetail() {
  state.openClaim = null;
  $("detail").hidden = true;
}

async function act(action) {
  const claimId = state.openClaim;
  if (!claimId) return;
  const verb = action === "release" ? "Release" : "Preempt";
  if (!confirm(`${verb} claim ${claimId}?`)) return;
  try {
    if (action === "release") await guarded(() => api("DELETE", `/v1/claims/${encodeURIComponent(claimId)}`));
    else await guarded(() => api("POST", `/v1/claims/${encodeURIComponent(claimId)}/preempt`));
    await refreshDetail(claimId, false);
  } catch (error) {
    if (!(error instanceof Unauthorized)) alert(`${verb} failed: ${error.message}`);
  }
}

// ------------------------------------------------------------------- wiring
document.addEventListener("DOMContentLoaded", () => {
  $("login-form").addEventListener("submit", (event) => {
    event.preventDefault();
    login($("token").value);
  });
  $("logout").addEventListener("click", () => logout());
  $("detail-close").addEventListener("click", closeDetail);
  $("detail").addEventListener("click", (event) => {
    if (event.target === $("detail")) closeDetail();
    const button = event.target.closest("button[data-action]");
    if (button) act(button.dataset.action);
  });
  document.addEventListener("keydown", (event) => { if (event.key === "Escape") closeDetail(); });
  document.querySelector(".layout").addEventListener("click", (event) => {
    const target = event.target.closest("[data-claim]");
    if (target && target.dataset.claim) refreshDetail(target.dataset.claim);
  });
  start(); // signed in already when the browser holds a live session cookie
});
