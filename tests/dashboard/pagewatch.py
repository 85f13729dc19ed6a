"""JavaScript that watches the dashboard page from the moment it is evaluated: `window.__tiles`
counts the device tiles the page (re-)creates, `window.__lag` is the main thread's longest stall
(a 100 ms timer firing late by that much). Shared by the scale test and its benchmark."""

WATCH = """() => {
  window.__tiles = 0; window.__lag = 0;
  const count = (n) =>
    !n.classList ? 0 : n.classList.contains("device") ? 1 : n.querySelectorAll(".device").length;
  new MutationObserver((records) => {
    for (const r of records) for (const n of r.addedNodes) window.__tiles += count(n);
  }).observe(document.getElementById("nodes"), { childList: true, subtree: true });
  (function tick() { const t = performance.now(); setTimeout(() => {
    window.__lag = Math.max(window.__lag, performance.now() - t - 100); tick(); }, 100); })();
}"""


def task_cpu_s(cdp: object) -> float:
    """CPU seconds the page's main thread has spent in tasks, from a CDP session on which
    `Performance.enable` ran with `timeDomain: threadTicks` (not stretched by a loaded machine)."""
    metrics = {m["name"]: m["value"] for m in cdp.send("Performance.getMetrics")["metrics"]}  # type: ignore[attr-defined]
    return float(metrics["TaskDuration"])
