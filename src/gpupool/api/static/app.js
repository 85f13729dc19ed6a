// gpupool dashboard: sign in with a token, follow /v1/stream (server-sent events), draw, act.
import * as render from "/static/render.js";

const TOKEN_KEY = "gpupool.token";
const HISTORY_POINTS = 150;

const state = {
  token: localStorage.getItem(TOKEN_KEY) || "",
  source: null,
  overview: null,
  history: {}, // device uuid -> utilization percents, oldest first
  sampleId: -1,
  lastEventId: 0,
  openClaim: null,
  preempt: true, // admin may preempt a bound claim from its detail
};

const $ = (id) => document.getElementById(id);

// ------------------------------------------------------------------ network
async function api(method, path) {
  const response = await fetch(path, { method, headers: { Authorization: `Bearer ${state.token}` } });
  if (response.status === 401) { logout("Your token was refused; sign in again."); throw new Error("unauthorized"); }
  const body = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(body.detail || `${response.status} ${response.statusText}`);
  return body;
}

function connect() {
  if (state.source) state.source.close();
  setConn("retry", "connecting");
  const source = new EventSource(`/v1/stream?token=${encodeURIComponent(state.token)}`);
  state.source = source;
  source.addEventListener("overview", (message) => {
    setConn("live", "live");
    draw(JSON.parse(message.data));
  });
  source.onopen = () => setConn("live", "live");
  source.onerror = async () => {
    setConn("retry", "reconnecting");
    // EventSource hides the status: ask once whether the token is still good.
    try { await api("GET", "/v1/overview"); } catch { /* logout() already ran on 401 */ }
  };
}

// -------------------------------------------------------------------- login
function showLogin(message = "") {
  $("login").hidden = false;
  $("login-error").textContent = message;
  $("token").focus();
}

async function login(token) {
  state.token = token.trim();
  try {
    const first = await api("GET", "/v1/overview?history=true");
    localStorage.setItem(TOKEN_KEY, state.token);
    $("login").hidden = true;
    draw(first);
    connect();
  } catch (error) {
    if (error.message !== "unauthorized") showLogin(`Cannot sign in: ${error.message}`);
  }
}

function logout(message = "") {
  localStorage.removeItem(TOKEN_KEY);
  state.token = "";
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
function draw(overview) {
  state.overview = overview;
  if (overview.history) {
    state.history = overview.history;
    state.sampleId = overview.sample_id;
  } else if (overview.sample_id !== state.sampleId) {
    state.sampleId = overview.sample_id;
    for (const device of overview.devices) {
      const series = (state.history[device.uuid] ||= []);
      series.push(device.utilization_percent ?? 0);
      if (series.length > HISTORY_POINTS) series.splice(0, series.length - HISTORY_POINTS);
    }
  }
  render.setTenantSlots(overview.tenants);
  $("viewer").innerHTML = `signed in as <b>${render.esc(overview.viewer)}</b>`;
  $("logout").hidden = false;
  $("stats").innerHTML = render.stats(overview);
  $("legend").innerHTML = render.legend(overview);
  $("nodes").classList.toggle("dense", overview.devices.length > render.DENSE_DEVICES);
  $("nodes").innerHTML = render.nodes(overview, state.history);
  $("queue").innerHTML = render.queue(overview);
  $("queue-count").textContent = overview.queue_length ? `${overview.queue_length} pending` : "";
  $("tenants").innerHTML = render.tenants(overview);
  const newest = overview.events.length ? overview.events[overview.events.length - 1].id : 0;
  $("events").innerHTML = overview.events
    .slice()
    .reverse()
    .map((e) => render.eventLine(e, state.lastEventId && e.id > state.lastEventId))
    .join("");
  state.lastEventId = Math.max(state.lastEventId, newest);
  document.title = `gpupool · ${overview.devices.length} GPUs · ${overview.queue_length} pending`;
  if (state.openClaim) refreshDetail(state.openClaim, false);
}

// ------------------------------------------------------------- claim detail
async function refreshDetail(claimId, open = true) {
  try {
    const [claim, events] = await Promise.all([
      api("GET", `/v1/claims/${encodeURIComponent(claimId)}`),
      api("GET", `/v1/events?claim=${encodeURIComponent(claimId)}&limit=100`),
    ]);
    const viewer = { name: state.overview?.viewer, admin: state.overview?.admin, preempt: state.preempt };
    $("detail-body").innerHTML = render.claimDetail(claim, events.items, viewer);
    if (open) { state.openClaim = claimId; $("detail").hidden = false; }
  } catch (error) {
    $("detail-body").innerHTML = `<p class="error">${render.esc(error.message)}</p>`;
    if (open) { state.openClaim = claimId; $("detail").hidden = false; }
  }
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
    if (action === "release") await api("DELETE", `/v1/claims/${encodeURIComponent(claimId)}`);
    else await api("POST", `/v1/claims/${encodeURIComponent(claimId)}/preempt`);
    await refreshDetail(claimId, false);
  } catch (error) {
    alert(`${verb} failed: ${error.message}`);
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
  if (state.token) login(state.token);
  else showLogin();
});
