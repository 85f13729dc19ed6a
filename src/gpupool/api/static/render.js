// HTML builders of the dashboard: pure functions from the overview snapshot to markup strings.
// Every value from the server goes through esc(); nothing here touches the network.

export function esc(value) {
  return String(value ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
}

const UNITS = [["TiB", 1024 ** 4], ["GiB", 1024 ** 3], ["MiB", 1024 ** 2], ["KiB", 1024]];

// Binary units with one decimal, exactly like the CLI (`format_size`): 85520809984 -> "79.6GiB".
export function size(bytes) {
  if (bytes == null) return "–";
  for (const [unit, scale] of UNITS) {
    if (bytes >= scale) return (bytes / scale).toFixed(1).replace(/\.0$/, "") + unit;
  }
  return bytes + "B";
}

export function gpus(value) {
  if (value == null) return "–";
  return Number.isInteger(value) ? String(value) : value.toFixed(2).replace(/0$/, "");
}

// A colour per tenant: admin is blue, "other" is neutral, the rest take the colour of their slot
// (rank by creation, from the server): twelve hues at least 20 degrees apart, clear of the admin's
// blue, in an order that keeps the first few far apart; later slots step by the golden angle at
// another lightness. Names without a slot (not in this overview) fall back to a hash.
const HUES = [0, 135, 275, 55, 185, 330, 95, 250, 30, 160, 300, 75];
const slots = new Map();

export function setTenantSlots(tenants) {
  slots.clear();
  for (const t of tenants || []) if (t.colour >= 0) slots.set(t.name, t.colour);
}

export function tenantColor(name) {
  if (name === "admin") return "hsl(212 90% 62%)";
  if (name === "other") return "hsl(215 12% 40%)";
  let slot = slots.get(name);
  if (slot === undefined) {
    let h = 2166136261;
    for (const ch of name) { h ^= ch.charCodeAt(0); h = Math.imul(h, 16777619); }
    slot = h >>> 0;
  }
  if (slot < HUES.length) return `hsl(${HUES[slot]} 62% 56%)`;
  const turn = (slot * 137.508) % 325;
  return `hsl(${(turn < 190 ? turn : turn + 35).toFixed(0)} 55% 44%)`;
}

export function clock(ts) {
  const d = new Date(ts * 1000);
  return d.toLocaleTimeString([], { hour12: false });
}

export function ago(ts) {
  const s = Math.max(0, Date.now() / 1000 - ts);
  if (s < 60) return `${s.toFixed(0)}s`;
  if (s < 3600) return `${(s / 60).toFixed(0)}m`;
  if (s < 86400) return `${(s / 3600).toFixed(1)}h`;
  return `${(s / 86400).toFixed(1)}d`;
}

export function claimShape(c) {
  const mem = c.memory_bytes ? size(c.memory_bytes) : null;
  const sm = c.compute_percent ? `${c.compute_percent}%` : null;
  const each = mem || sm ? [mem, sm].filter(Boolean).join("/") : "whole GPU";
  return `${c.gpus}× ${each}${c.model ? ` ${c.model}` : ""}`;
}

export function stats(o) {
  const devices = o.devices;
  const nodes = new Set(devices.map((d) => d.node)).size;
  const memTotal = devices.reduce((a, d) => a + d.memory_total_bytes, 0);
  const memAlloc = devices.reduce((a, d) => a + d.memory_allocated_bytes, 0);
  const computeAlloc = devices.reduce((a, d) => a + d.compute_allocated_percent, 0) / 100;
  const utils = devices.map((d) => d.utilization_percent).filter((u) => u != null);
  const util = utils.length ? utils.reduce((a, b) => a + b, 0) / utils.length : 0;
  const pct = memTotal ? (100 * memAlloc) / memTotal : 0;
  const chip = (value, label) => `<div class="stat"><b>${value}</b><span>${label}</span></div>`;
  return [
    chip(nodes, "nodes"),
    chip(devices.length, "devices"),
    chip(`${computeAlloc.toFixed(1)}<span>/ ${devices.length}</span>`, "GPUs of SMs bound"),
    chip(`${pct.toFixed(0)}%`, "memory bound"),
    chip(`${util.toFixed(0)}%`, "mean util"),
    chip(o.queue_length, "pending"),
  ].join("");
}

// A claim of a Kubernetes pod names its pod in this label.
const POD_LABEL = "gpupool.io/pod";

function segments(device, field, total, pods) {
  return device.segments
    .map((s) => {
      const width = (100 * s[field]) / total;
      const pod = pods && pods.get(s.claim_id) ? `pod ${pods.get(s.claim_id)}, ` : "";
      const vm = s.holder ? ` for VM ${s.holder}` : "";
      const title = s.claim_id
        ? `${pod}${s.claim_id} (${s.tenant})${vm}: ${size(s.memory_bytes)}, ${s.compute_percent}% SMs`
        : `another tenant: ${size(s.memory_bytes)}, ${s.compute_percent}% SMs`;
      const cls = s.claim_id ? "seg" : "seg other";
      const style = s.claim_id ? `width:${width}%;background:${tenantColor(s.tenant)}` : `width:${width}%`;
      return `<span class="${cls}" style="${style}" data-claim="${esc(s.claim_id)}" title="${esc(title)}"></span>`;
    })
    .join("");
}

export function sparkline(values, max = 100, points = 150) {
  const n = values.length;
  const base = `<line x1="0" y1="19.5" x2="${points}" y2="19.5"></line>`;
  if (n < 2) return `<svg class="spark" viewBox="0 0 ${points} 20" preserveAspectRatio="none" aria-hidden="true">${base}</svg>`;
  const x0 = points - n;
  const coords = values.map((v, i) => `${x0 + i},${(20 - (20 * Math.min(v, max)) / max).toFixed(1)}`);
  const area = `${x0},20 ${coords.join(" ")} ${points - 1},20`;
  return `<svg class="spark" viewBox="0 0 ${points} 20" preserveAspectRatio="none" aria-hidden="true">` +
    `${base}<polygon points="${area}"></polygon><polyline points="${coords.join(" ")}"></polyline></svg>`;
}

// Which VMs (libvirt domains) hold a share of the device, when the pool serves VMs.
function vmHolders(d) {
  const names = [...new Set(d.segments.map((s) => s.holder).filter(Boolean))].sort();
  return names.length ? `<div class="holders" title="libvirt domains holding this GPU">VM ${esc(names.join(", "))}</div>` : "";
}

export function deviceTile(d, history, pods) {
  const used = d.memory_used_bytes && d.memory_total_bytes
    ? `<span class="used" style="left:calc(${(100 * d.memory_used_bytes) / d.memory_total_bytes}% - 1px)" title="in use ${size(d.memory_used_bytes)}"></span>`
    : "";
  const util = d.utilization_percent == null ? "–" : `${d.utilization_percent.toFixed(0)}%`;
  return `<div class="device" data-uuid="${esc(d.uuid)}" title="${esc(d.uuid)}">
    <div class="device-head"><span class="idx">${d.index}</span><span class="model">${esc(d.model)}</span><span class="util">${util}</span></div>
    <div class="row"><span class="k">mem</span><div class="bar">${segments(d, "memory_bytes", d.memory_total_bytes, pods)}${used}</div><span class="v">${size(d.memory_allocated_bytes)}/${size(d.memory_total_bytes)}</span></div>
    <div class="row"><span class="k">sm</span><div class="bar">${segments(d, "compute_percent", 100, pods)}</div><span class="v">${d.compute_allocated_percent}%</span></div>
    ${vmHolders(d)}
    ${sparkline(history || [])}
  </div>`.replace(/\n\s*/g, "");
}

// Above this many devices the grid switches to compact tiles and several node columns.
export const DENSE_DEVICES = 32;

export function nodes(o, history) {
  const byNode = new Map();
  for (const d of o.devices) {
    if (!byNode.has(d.node)) byNode.set(d.node, []);
    byNode.get(d.node).push(d);
  }
  if (!byNode.size) return `<div class="empty">No devices.</div>`;
  const pods = new Map((o.claims || []).filter((c) => c.labels && c.labels[POD_LABEL]).map((c) => [c.id, c.labels[POD_LABEL]]));
  const natural = new Intl.Collator(undefined, { numeric: true });
  return [...byNode.entries()]
    .sort(([a], [b]) => natural.compare(a, b))
    .map(([node, devices]) => {
      const models = [...new Set(devices.map((d) => d.model))].join(", ");
      const bound = devices.reduce((a, d) => a + d.compute_allocated_percent, 0) / 100;
      return `<div class="node" data-node="${esc(node)}">
        <div class="node-head"><span class="name">${esc(node)}</span><span class="meta">${devices.length}× ${esc(models)}</span>
        <span class="alloc">${bound.toFixed(2)} / ${devices.length} GPU of SMs bound</span></div>
        <div class="devices">${devices.map((d) => deviceTile(d, history[d.uuid], pods)).join("")}</div></div>`;
    })
    .join("");
}

export function legend(o) {
  const names = new Set(o.tenants.map((t) => t.name));
  for (const d of o.devices) for (const s of d.segments) names.add(s.tenant);
  return [...names]
    .sort()
    .map((n) => `<span><i class="swatch" style="background:${tenantColor(n)}"></i>${esc(n)}</span>`)
    .join("") + `<span><i class="swatch" style="background:#fff"></i>memory in use</span>`;
}

export function queue(o) {
  if (!o.queue.length) {
    const hidden = o.queue_length ? ` (${o.queue_length} of other tenants)` : "";
    return `<li class="empty" style="display:block;border:0;background:none;cursor:default">Nothing waiting${hidden}.</li>`;
  }
  return o.queue
    .map((c) => `<li data-claim="${esc(c.id)}">
      <span class="pos">#${c.queue_position ?? "?"}</span>
      <div class="what"><a class="claim">${esc(c.id)}</a><span class="tag" style="background:${tenantColor(c.tenant)}">${esc(c.tenant)}</span>
      <span>${esc(claimShape(c))}</span>${c.priority ? `<span class="pill">prio ${c.priority}</span>` : ""}${c.preemptible ? `<span class="pill">preemptible</span>` : ""}
      <span class="pill">${ago(c.created_at)}</span></div>
      ${c.quota_reason
        ? `<div class="quota">quota: ${esc(c.quota_reason)}</div>`
        : `<div class="reason">${esc(c.reason || "waiting for the scheduler")}</div>`}
    </li>`.replace(/\n\s*/g, ""))
    .join("");
}

export function tenants(o) {
  if (!o.tenants.length) return `<div class="empty">No tenants yet.</div>`;
  return o.tenants
    .map((t) => {
      const quotaScale = Math.max(t.limit_gpus ?? 0, t.guarantee_gpus ?? 0) * 1.15;
      const scale = Math.max(quotaScale || o.devices.length, t.allocated_gpus, 1);
      const inQuota = t.guarantee_gpus != null ? Math.min(t.allocated_gpus, t.guarantee_gpus) : t.allocated_gpus;
      const over = t.guarantee_gpus != null ? Math.max(0, t.allocated_gpus - t.guarantee_gpus) : 0;
      const mark = (v, what) => v == null ? "" : `<span class="mark" style="left:calc(${(100 * v) / scale}% - 1px)" title="${what} ${gpus(v)} GPU"></span>`;
      const quota = [
        t.guarantee_gpus != null ? `guarantee ${gpus(t.guarantee_gpus)}` : null,
        t.limit_gpus != null ? `limit ${gpus(t.limit_gpus)}` : null,
        t.guarantee_memory_bytes != null ? `guarantee ${size(t.guarantee_memory_bytes)}` : null,
        t.limit_memory_bytes != null ? `limit ${size(t.limit_memory_bytes)}` : null,
      ].filter(Boolean).join(" · ") || "no quota";
      return `<div class="tenant" data-tenant="${esc(t.name)}">
        <div class="tenant-head"><i class="swatch" style="background:${tenantColor(t.name)}"></i><span class="name">${esc(t.name)}</span>
        <span class="nums">${gpus(t.allocated_gpus)} GPU · ${size(t.allocated_memory_bytes)} · ${t.bound_claims} bound · ${t.pending_claims} pending</span></div>
        <div class="quota-bar"><span class="fill" style="width:${(100 * inQuota) / scale}%;background:${tenantColor(t.name)}"></span>
        ${over ? `<span class="over" style="left:${(100 * inQuota) / scale}%;width:${(100 * over) / scale}%" title="borrowed above the guarantee"></span>` : ""}
        ${mark(t.guarantee_gpus, "guarantee")}${mark(t.limit_gpus, "limit")}</div>
        <div class="sub">${quota}</div></div>`.replace(/\n\s*/g, "");
    })
    .join("");
}

function detail(key, value) {
  if (key === "command" && Array.isArray(value)) return `command=${value.join(" ")}`;
  if (Array.isArray(value)) return `${key}: ${value.length}`;
  if (key.endsWith("_bytes") && typeof value === "number") return `${key.replace(/_bytes$/, "")}=${size(value)}`;
  if (key.endsWith("_percent") && typeof value === "number") return `${key.replace(/_percent$/, "")}=${value}%`;
  if (key.endsWith("_gpus") && typeof value === "number") return `${key.replace(/_gpus$/, "")}=${gpus(value)} GPU`;
  return `${key}=${typeof value === "object" ? JSON.stringify(value) : value}`;
}

export function eventLine(e, isNew) {
  const kind = e.action.split(".").pop();
  const details = Object.entries(e.details || {})
    .filter(([k, v]) => v != null && v !== "" && !(k === "priority" && v === 0))
    .map(([k, v]) => detail(k, v))
    .join(" ");
  return `<li class="${isNew ? "new" : ""}" data-event="${e.id}"><span class="t" title="${esc(new Date(e.timestamp * 1000).toISOString())}">${clock(e.timestamp)}</span>
    <span><span class="a ${esc(kind)}">${esc(e.action)}</span> ${e.claim_id ? `<a class="claim" data-claim="${esc(e.claim_id)}">${esc(e.claim_id)}</a>` : ""}
    <span class="d">&nbsp;${esc(e.tenant || "")}${e.actor !== e.tenant ? ` · by ${esc(e.actor)}` : ""}${details ? " · " + esc(details) : ""}</span></span></li>`.replace(/\n\s*/g, "");
}

export function claimDetail(c, events, viewer) {
  const rows = c.bindings
    .map((b) => `<tr><td>${esc(b.node)}/${b.device_index}</td><td>${esc(b.device_uuid)}</td><td>${size(b.memory_bytes)}</td><td>${b.compute_percent}%</td></tr>`)
    .join("");
  const env = Object.entries(c.env || {}).map(([k, v]) => `<tr><td>${esc(k)}</td><td colspan="3">${esc(v)}</td></tr>`).join("");
  const active = c.state === "bound" || c.state === "pending";
  const canRelease = active && (viewer.admin || viewer.name === c.tenant);
  const canPreempt = viewer.admin && c.state === "bound" && !c.preempt_deadline && viewer.preempt;
  const kv = (k, v) => `<dt>${k}</dt><dd>${v}</dd>`;
  return `<h3 id="detail-title">${esc(c.id)}</h3><span class="state ${esc(c.state)}">${esc(c.state)}</span>
    <dl class="kv">
      ${kv("tenant", `<span class="tag" style="background:${tenantColor(c.tenant)}">${esc(c.tenant)}</span>`)}
      ${c.labels && c.labels[POD_LABEL] ? kv("pod", esc(c.labels[POD_LABEL])) : ""}
      ${kv("asks for", esc(claimShape(c)))}
      ${kv("priority", `${c.priority}${c.preemptible ? " · preemptible" : ""}`)}
      ${c.queue_position ? kv("queue position", `#${c.queue_position}`) : ""}
      ${c.quota_reason ? kv("held by quota", esc(c.quota_reason))
        : c.reason ? kv(c.state === "pending" ? "waiting because" : "reason", esc(c.reason)) : ""}
      ${kv("created", `${esc(new Date(c.created_at * 1000).toLocaleString())} (${ago(c.created_at)} ago)`)}
      ${c.bound_at ? kv("bound", `${ago(c.bound_at)} ago`) : ""}
      ${c.preempt_deadline ? kv("preempting", `stops by ${esc(new Date(c.preempt_deadline * 1000).toLocaleTimeString())}`) : ""}
      ${c.ended_at ? kv("ended", `${ago(c.ended_at)} ago`) : ""}
      ${Object.keys(c.labels || {}).length ? kv("labels", esc(Object.entries(c.labels).map(([k, v]) => `${k}=${v}`).join(", "))) : ""}
    </dl>
    ${rows ? `<h4>Bindings</h4><table><tr><th>device</th><th>uuid</th><th>memory</th><th>SMs</th></tr>${rows}</table>` : ""}
    ${env ? `<h4>Launch environment</h4><table>${env}</table>` : ""}
    <h4>Events</h4><ul class="events">${events.map((e) => eventLine(e, false)).join("")}</ul>
    <div class="actions">
      ${canRelease ? `<button class="danger" data-action="release">Release</button>` : ""}
      ${canPreempt ? `<button class="warn" data-action="preempt">Preempt</button>` : ""}
    </div>`;
}
