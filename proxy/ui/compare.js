// The Compare tab: one prompt to 2-4 models at once, side by side, repeated N times;
// medians of time to first token and tokens/s drawn as bars.
// Invariant: each repeat starts only when every model has finished the previous one.

import { GatewayError, median, streamChat } from "./api.js";
import { el, errorBox, factsList, fmt, liveMarkdown } from "./render.js";

const $ = (id) => document.getElementById(id);
let settings = null;
let running = null;

export function setModels(ids, groups) {
  const box = $("compare-models");
  const checked = new Set([...box.querySelectorAll("input:checked")].map((i) => i.value));
  box.replaceChildren();
  ids.forEach((id, i) => {
    const on = checked.size ? checked.has(id) : i < 2;
    const input = el("input", { type: "checkbox", value: id, checked: on });
    input.addEventListener("change", limit);
    const label = groups[id] && groups[id] !== id ? `${id} (backend ${groups[id]})` : id;
    box.append(el("label", { class: "check" }, input, " " + label));
  });
  limit();
}

function chosen() {
  return [...$("compare-models").querySelectorAll("input:checked")].map((i) => i.value);
}

/** 2 to 4 models: more than 4 cannot be ticked; fewer than 2 cannot run. */
function limit() {
  const n = chosen().length;
  for (const input of $("compare-models").querySelectorAll("input")) {
    input.disabled = !input.checked && n >= 4;
  }
  $("compare-run").disabled = running !== null || n < 2;
}

function column(model) {
  const text = el("div", { class: "body" });
  const facts = el("div", { class: "col-facts" });
  const runs = el("ol", { class: "runs" });
  const node = el("section", { class: "col", "data-model": model },
    el("h3", { text: model }), text, facts, runs);
  return { model, node, text, facts, runs, results: [] };
}

async function runOne(col, prompt, signal) {
  let content = "";
  const view = liveMarkdown(col.text);
  col.text.classList.add("streaming");
  try {
    const f = await streamChat(
      settings.door(),
      { model: col.model, messages: [{ role: "user", content: prompt }], temperature: null, maxTokens: null },
      { signal, onText: (t) => { content += t; view.update(content); } },
    );
    col.facts.replaceChildren(factsList(f));
    if (f.error) col.facts.append(errorBox({ message: f.error }));
    if (!f.stopped && !f.error) col.results.push(f);
    col.runs.append(el("li", { text: `${fmt.ms(f.ttftMs)} first token · ${fmt.rate(f.tokensPerSec)} · ${fmt.ms(f.totalMs)}` }));
  } catch (e) {
    col.facts.replaceChildren(errorBox(e instanceof GatewayError ? e : { message: String(e) }));
    col.runs.append(el("li", { class: "error", text: e.describe ? e.describe() : String(e) }));
  } finally {
    view.flush();
    col.text.classList.remove("streaming");
  }
}

/** Bars of the medians: one group per metric, one bar per model, scaled to the largest. */
function chart(cols) {
  const metrics = [
    ["ttft", "time to first token (median)", (r) => r.ttftMs, fmt.ms],
    ["tps", "tokens/s (median)", (r) => r.tokensPerSec, fmt.rate],
  ];
  const out = [];
  for (const [key, title, pick, show] of metrics) {
    const values = cols.map((c) => median(c.results.map(pick)));
    const max = Math.max(1e-9, ...values.filter((v) => v !== null));
    const group = el("div", { class: "bars", "data-metric": key }, el("h4", { text: title }));
    cols.forEach((c, i) => {
      const v = values[i];
      const bar = el("div", { class: "bar" });
      bar.style.width = v === null ? "0" : `${Math.max(1, (v / max) * 100)}%`;
      group.append(
        el("div", { class: "bar-row", "data-model": c.model },
          el("span", { class: "bar-label", text: c.model }),
          el("span", { class: "bar-track" }, bar),
          el("span", { class: "bar-value", "data-value": v === null ? "" : String(v), text: show(v) })),
      );
    });
    out.push(group);
  }
  $("compare-chart").replaceChildren(...out);
}

async function run() {
  const models = chosen();
  if (models.length < 2 || running) return;
  const prompt = $("compare-prompt").value;
  const repeats = Math.min(20, Math.max(1, Number($("compare-repeats").value) || 1));
  const cols = models.map(column);
  $("compare-columns").replaceChildren(...cols.map((c) => c.node));
  $("compare-chart").replaceChildren();
  running = new AbortController();
  $("compare-stop").disabled = false;
  limit();
  for (let r = 1; r <= repeats && !running.signal.aborted; r++) {
    $("compare-status").textContent = `run ${r} of ${repeats}…`;
    await Promise.all(cols.map((c) => runOne(c, prompt, running.signal)));
    chart(cols);
  }
  $("compare-status").textContent = running.signal.aborted ? "stopped" : `done: ${repeats} run(s)`;
  running = null;
  $("compare-stop").disabled = true;
  limit();
}

export function stop() {
  if (running) running.abort();
}

export function init(s) {
  settings = s;
  $("compare-run").addEventListener("click", run);
  $("compare-stop").addEventListener("click", stop);
}
