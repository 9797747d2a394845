// The page's entry point: tabs, the shared settings (front door, API key), the model list.
// Invariant: every tab reads settings through `settings`, and models through `models`.

import { authHeaders, getJSON, store } from "./api.js";
import { el } from "./render.js";
import * as chat from "./chat.js";
import * as compare from "./compare.js";
import * as ops from "./ops.js";

const $ = (id) => document.getElementById(id);

export const settings = {
  door: () => $("door").value,
};

/** Aliases from /v1/models, grouped by the backend of their first target when known. */
async function loadModels() {
  const banner = $("models-error");
  let ids;
  try {
    const body = await getJSON("/v1/models", authHeaders(settings.door()));
    ids = body.data.map((m) => m.id);
    banner.hidden = true;
  } catch (e) {
    banner.replaceChildren(el("strong", { text: "Models: " }), e.describe ? e.describe() : e.message);
    banner.hidden = false;
    return; // keep the list shown so far: a prompt still shows the gateway's own answer
  }
  const groups = await backendOf(ids);
  chat.setModels(ids, groups);
  compare.setModels(ids, groups);
}

/** alias -> backend, from /admin/config when this page may read it; {} otherwise. */
async function backendOf(ids) {
  if (!ids.length) return {};
  const admin = store.adminKey();
  try {
    const body = await getJSON("/admin/config", admin ? { authorization: "Bearer " + admin } : {});
    const out = {};
    for (const [alias, m] of Object.entries(body.config.models)) {
      if (m.targets.length) out[alias] = m.targets[0].backend;
    }
    return out;
  } catch (_) {
    return {}; // no admin view: a flat list
  }
}

function showTab(name) {
  for (const tab of document.querySelectorAll("[role=tab]")) {
    const on = tab.dataset.tab === name;
    tab.setAttribute("aria-selected", String(on));
    $("panel-" + tab.dataset.tab).hidden = !on;
  }
  if (name === "ops") ops.start();
  else ops.stop();
}

function init() {
  const key = $("api-key");
  key.value = store.apiKey();
  key.addEventListener("change", () => {
    store.setApiKey(key.value.trim());
    loadModels();
  });
  $("door").value = localStorage.getItem("llm-proxy.door") || "openai";
  $("door").addEventListener("change", () => localStorage.setItem("llm-proxy.door", $("door").value));
  for (const tab of document.querySelectorAll("[role=tab]")) {
    tab.addEventListener("click", () => {
      history.replaceState(null, "", "#" + tab.dataset.tab);
      showTab(tab.dataset.tab);
    });
  }
  document.addEventListener("keydown", (ev) => {
    if (ev.key === "Escape") {
      chat.stop();
      compare.stop();
    }
  });
  chat.init(settings);
  compare.init(settings);
  ops.init(loadModels);
  const wanted = location.hash.slice(1);
  showTab(["chat", "compare", "ops"].includes(wanted) ? wanted : "chat");
  loadModels();
}

init();
