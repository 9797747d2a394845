// The Chat tab: a multi-turn conversation with one model, streamed, stoppable, retryable.
// Invariant: `turns` is the conversation sent next time; failed or empty answers are not in it.

import { GatewayError, streamChat } from "./api.js";
import { copyText, downloadJSON, el, errorBox, factsList, liveMarkdown, renderMarkdown } from "./render.js";

const $ = (id) => document.getElementById(id);
let settings = null;
let turns = []; // {role, content, facts?, error?, node?}
let running = null; // the AbortController of the answer in flight

/** Fills the model picker, grouped by backend where known; keeps the current choice. */
export function setModels(ids, groups) {
  const sel = $("model");
  const keep = sel.value;
  sel.replaceChildren();
  const byGroup = new Map();
  for (const id of ids) {
    const g = groups[id] || "";
    if (!byGroup.has(g)) byGroup.set(g, []);
    byGroup.get(g).push(id);
  }
  for (const [group, members] of byGroup) {
    const parent = group ? el("optgroup", { label: "backend " + group }) : sel;
    for (const id of members) parent.append(new Option(id, id));
    if (group) sel.append(parent);
  }
  if (ids.includes(keep)) sel.value = keep;
}

function numberOf(id) {
  const raw = $(id).value.trim();
  if (!raw) return null;
  const n = Number(raw);
  return Number.isFinite(n) ? n : null;
}

function bubble(turn) {
  const body = el("div", { class: "body" });
  const node = el("article", { class: "msg " + turn.role }, el("div", { class: "who", text: turn.role }), body);
  if (turn.role === "user") renderMarkdown(body, turn.content);
  $("log").append(node);
  node.scrollIntoView({ block: "end" });
  return { node, body };
}

function toolbar(turn) {
  const bar = el("div", { class: "tools" });
  bar.append(
    el("button", {
      type: "button",
      class: "copy",
      text: "Copy",
      onclick: async (ev) => {
        const ok = await copyText(turn.content);
        ev.target.textContent = ok ? "Copied" : "Copy failed";
      },
    }),
    el("button", { type: "button", class: "retry", text: "Retry", onclick: () => retry(turn) }),
  );
  return bar;
}

/** Streams an answer to the conversation so far into a new assistant bubble. */
async function answer() {
  const model = $("model").value;
  const history = turns.filter((t) => !t.error).map((t) => ({ role: t.role, content: t.content }));
  const turn = { role: "assistant", content: "", model };
  const { node, body } = bubble(turn);
  node.classList.add("streaming");
  const view = liveMarkdown(body);
  running = new AbortController();
  setBusy(true);
  let facts;
  try {
    facts = await streamChat(
      settings.door(),
      {
        model,
        system: $("system").value.trim(),
        messages: history,
        temperature: numberOf("temperature"),
        maxTokens: numberOf("max-tokens"),
      },
      {
        signal: running.signal,
        onText: (t) => {
          turn.content += t;
          view.update(turn.content);
        },
      },
    );
  } catch (e) {
    turn.error = e instanceof GatewayError ? e.describe() : String(e.message || e);
    node.append(errorBox(e));
    facts = null;
  }
  view.flush();
  node.classList.remove("streaming");
  if (facts) {
    turn.facts = facts;
    if (facts.error) {
      node.append(errorBox({ message: facts.error + (facts.requestId ? ` (request id ${facts.requestId})` : "") }));
      if (!turn.content) turn.error = facts.error;
    }
    if (!turn.content && !facts.error) turn.error = facts.stopped ? "stopped" : "empty answer";
    node.append(factsList(facts));
  }
  node.append(toolbar(turn));
  turn.node = node;
  turns.push(turn);
  running = null;
  setBusy(false);
  node.scrollIntoView({ block: "end" });
}

function setBusy(busy) {
  $("send").disabled = busy;
  $("stop").disabled = !busy;
}

async function send() {
  if (running) return;
  const text = $("prompt").value;
  if (!text.trim()) return;
  if (!$("model").value) {
    $("log").append(errorBox({ message: "no model to send to: the model list is empty" }));
    return;
  }
  $("prompt").value = "";
  const turn = { role: "user", content: text };
  turn.node = bubble(turn).node;
  turns.push(turn);
  await answer();
}

/** Drops `turn` (an answer) and everything after it, then asks again. */
async function retry(turn) {
  if (running) return;
  const i = turns.indexOf(turn);
  if (i < 0) return;
  for (const t of turns.slice(i)) t.node && t.node.remove();
  turns = turns.slice(0, i);
  await answer();
}

/** Aborts the answer in flight, if any (the gateway then cancels upstream). */
export function stop() {
  if (running) running.abort();
}

function exportJSON() {
  downloadJSON("conversation.json", {
    exported_at: new Date().toISOString(),
    front_door: settings.door(),
    model: $("model").value,
    system: $("system").value,
    temperature: numberOf("temperature"),
    max_tokens: numberOf("max-tokens"),
    messages: turns.map(({ role, content, facts, error, model }) => ({ role, content, model, facts, error })),
  });
}

export function init(s) {
  settings = s;
  $("composer").addEventListener("submit", (ev) => {
    ev.preventDefault();
    send();
  });
  $("prompt").addEventListener("keydown", (ev) => {
    if (ev.key === "Enter" && !ev.shiftKey && !ev.isComposing) {
      ev.preventDefault();
      send();
    }
  });
  $("stop").addEventListener("click", stop);
  $("new-chat").addEventListener("click", () => {
    stop();
    turns = [];
    $("log").replaceChildren();
  });
  $("export").addEventListener("click", exportJSON);
}

/** The conversation as plain data (for tests and export). */
export function conversation() {
  return turns.map(({ role, content, error }) => ({ role, content, error }));
}
