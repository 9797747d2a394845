// The Operations tab: config generation and last reload result, backends and circuits,
// request and error rates from /metrics as sparklines; refreshed every few seconds.
// Invariant: polling runs only while the tab is shown, one refresh at a time.

import { GatewayError, failure, getJSON, store } from "./api.js";
import { el, errorBox, sparkline } from "./render.js";

const $ = (id) => document.getElementById(id);
const EVERY_MS = 2000;
const KEEP = 60; // sparkline points
let timer = null;
let busy = false;
let onKey = () => {};
let last = null; // {t, total, errors} of the previous metrics sample
const series = { rate: [], errors: [] };

function adminHeaders() {
  const key = store.adminKey();
  return key ? { authorization: "Bearer " + key } : {};
}

/** Sums of llm_proxy_requests_total, all and status >= 400, from Prometheus text. */
export function requestCounts(text) {
  let total = 0;
  let errors = 0;
  let inFlight = null;
  for (const line of text.split("\n")) {
    if (line.startsWith("llm_proxy_requests_in_flight")) {
      inFlight = Number(line.trim().split(/\s+/)[1]);
      continue;
    }
    if (!line.startsWith("llm_proxy_requests_total{")) continue;
    const close = line.lastIndexOf("}");
    const value = Number(line.slice(close + 1).trim().split(/\s+/)[0]);
    if (!Number.isFinite(value)) continue;
    total += value;
    const status = /status="(\d+)"/.exec(line.slice(0, close));
    if (status && Number(status[1]) >= 400) errors += value;
  }
  return { total, errors, inFlight };
}

/** "path:LINE:COL: message" -> {line, col, message}; null when it has no position. */
export function problemAt(problem) {
  const m = /^(.*?):(\d+):(\d+): (.*)$/s.exec(problem);
  return m ? { path: m[1], line: Number(m[2]), col: Number(m[3]), message: m[4] } : null;
}

function problemList(problems) {
  const list = el("ul", { class: "problems" });
  for (const p of problems) {
    const at = problemAt(p);
    list.append(
      el("li", { class: "problem" },
        at ? el("span", { class: "at", text: `line ${at.line}:${at.col}` }) : null,
        at ? " " + at.message : p,
        at ? el("div", { class: "muted small", text: at.path }) : null),
    );
  }
  return list;
}

function renderConfig(c) {
  const loaded = new Date(c.loaded_at * 1000).toLocaleTimeString();
  const box = el("div", {},
    el("div", {}, "generation ", el("strong", { id: "ops-generation", text: String(c.generation) }),
      ` · loaded ${loaded} · reloads ${c.reloads.ok} ok / ${c.reloads.failed} rejected`),
    el("div", { class: "muted small", text: c.path }));
  if (c.last_reload_error) {
    box.append(el("div", { class: "rejected", id: "ops-last-error" },
      el("strong", { text: `Last edit rejected; still serving generation ${c.generation}:` }),
      problemList(c.last_reload_error)));
  } else {
    box.append(el("div", { class: "ok", id: "ops-last-ok", text: "Last reload: ok" }));
  }
  const warnings = c.config.warnings || [];
  if (warnings.length) {
    box.append(el("details", {}, el("summary", { text: `${warnings.length} warning(s)` }),
      problemList(warnings)));
  }
  $("ops-config").replaceChildren(box);
}

function table(headers, rows) {
  const t = el("table", {}, el("thead", {}, el("tr", {}, ...headers.map((h) => el("th", { text: h })))));
  const body = el("tbody");
  for (const r of rows) body.append(r);
  t.append(body);
  return el("div", { class: "scroll" }, t);
}

function renderBackends(b) {
  const rows = Object.entries(b.backends).map(([name, s]) =>
    el("tr", { "data-backend": name },
      el("td", { text: name }), el("td", { text: s.type }),
      el("td", { text: s.enabled ? "enabled" : "disabled" }), el("td", { text: String(s.in_flight) })));
  $("ops-backends").replaceChildren(table(["backend", "type", "state", "in flight"], rows));
  const targets = b.targets.map((t) => {
    const reopens = t.reopens_at ? new Date(t.reopens_at * 1000).toLocaleTimeString() : "";
    return el("tr", { "data-target": `${t.backend}/${t.model}` },
      el("td", { text: t.backend }), el("td", { text: t.model }),
      el("td", {}, el("span", { class: "state " + t.state, "data-state": t.state, text: t.state.replace("_", " ") })),
      el("td", { text: String(t.consecutive_failures) }), el("td", { text: String(t.in_flight) }),
      el("td", { text: t.ttfb_ewma_ms === null ? "–" : `${Math.round(t.ttfb_ewma_ms)} ms` }),
      el("td", { class: "small", text: (t.last_error || "") + (reopens ? ` · retry at ${reopens}` : "") }));
  });
  $("ops-targets").replaceChildren(
    targets.length
      ? table(["backend", "model", "circuit", "failures", "in flight", "ttfb", "last error"], targets)
      : el("p", { class: "muted", text: "no target has been used yet" }));
}

function renderTraffic(counts) {
  const now = performance.now();
  if (last) {
    const secs = Math.max(0.001, (now - last.t) / 1000);
    series.rate.push(Math.max(0, (counts.total - last.total) / secs));
    series.errors.push(Math.max(0, (counts.errors - last.errors) / secs));
    for (const s of Object.values(series)) if (s.length > KEEP) s.splice(0, s.length - KEEP);
  }
  last = { t: now, total: counts.total, errors: counts.errors };
  const latest = (s) => (s.length ? s[s.length - 1].toFixed(2) : "–");
  $("ops-traffic").replaceChildren(
    el("div", { class: "spark-row" }, el("span", { text: `requests/s ${latest(series.rate)}` }),
      sparkline(series.rate, { label: "request rate" })),
    el("div", { class: "spark-row errors" }, el("span", { text: `errors/s ${latest(series.errors)}` }),
      sparkline(series.errors, { label: "error rate" })),
    el("div", { class: "muted small", id: "ops-totals",
      text: `${counts.total} requests, ${counts.errors} errors since start` +
        (counts.inFlight === null ? "" : ` · ${counts.inFlight} in flight`) }),
  );
}

function askForKey(err) {
  $("admin-login").hidden = false;
  $("admin-login-why").textContent =
    err.status === 403
      ? `${err.describe()} — open this page on the gateway's own host, or set an admin key.`
      : `${err.describe()} — enter the admin key (kept in this browser only).`;
  $("ops-body").hidden = true;
}

/** One refresh of every view; a 401/403 asks for the admin key and stops polling. */
export async function refresh() {
  if (busy) return;
  busy = true;
  try {
    const [config, backends] = await Promise.all([
      getJSON("/admin/config", adminHeaders()),
      getJSON("/admin/backends", adminHeaders()),
    ]);
    $("admin-login").hidden = true;
    $("ops-body").hidden = false;
    $("ops-error").replaceChildren();
    renderConfig(config);
    renderBackends(backends);
    const resp = await fetch("/metrics", { cache: "no-store" });
    if (resp.ok) renderTraffic(requestCounts(await resp.text()));
  } catch (e) {
    if (e instanceof GatewayError && (e.status === 401 || e.status === 403)) {
      askForKey(e);
      stop();
    } else {
      $("ops-error").replaceChildren(errorBox(e));
    }
  } finally {
    busy = false;
  }
}

async function reloadNow() {
  const out = $("ops-reload-result");
  try {
    const resp = await fetch("/admin/reload", { method: "POST", headers: adminHeaders() });
    if (resp.status === 422) {
      const body = await resp.json();
      out.replaceChildren(el("div", { class: "rejected" }, el("strong", { text: "Rejected:" }), problemList(body.problems)));
    } else if (!resp.ok) {
      out.replaceChildren(errorBox(await failure(resp)));
    } else {
      const body = await resp.json();
      out.replaceChildren(el("div", { class: "ok", text: `Reloaded: generation ${body.generation}` }));
      onKey();
    }
  } catch (e) {
    out.replaceChildren(errorBox(e));
  }
  refresh();
}

export function start() {
  if (timer) return;
  refresh();
  timer = setInterval(refresh, EVERY_MS);
}

export function stop() {
  if (timer) clearInterval(timer);
  timer = null;
}

export function init(reloadModels) {
  onKey = reloadModels;
  $("admin-login").addEventListener("submit", (ev) => {
    ev.preventDefault();
    store.setAdminKey($("admin-key").value.trim());
    onKey();
    start();
  });
  $("ops-reload").addEventListener("click", reloadNow);
}
