// Turning values into DOM: message text with Markdown code blocks, facts lines, errors.
// Invariant: text from models or the gateway is only ever set as textContent, never as HTML.

/** Builds an element: el("div", {class: "x", text: "hi"}, child, ...). */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "text") node.textContent = v;
    else if (k === "class") node.className = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children) if (c !== null && c !== undefined) node.append(c);
  return node;
}

/** Inline `code` spans inside one stretch of prose. */
function prose(text) {
  const frag = document.createDocumentFragment();
  const parts = text.split(/`([^`\n]+)`/);
  parts.forEach((part, i) => {
    if (i % 2) frag.append(el("code", { text: part }));
    else if (part) frag.append(document.createTextNode(part));
  });
  return frag;
}

/**
 * Renders `text` into `node`: ``` fenced blocks become <pre><code>, the rest is prose with
 * inline code. An unclosed fence (still streaming) is shown as code so far.
 */
export function renderMarkdown(node, text) {
  node.replaceChildren();
  const pieces = text.split(/^```/m);
  pieces.forEach((piece, i) => {
    if (i % 2 === 0) {
      if (piece) node.append(el("div", { class: "prose" }, prose(piece)));
      return;
    }
    const nl = piece.indexOf("\n");
    const lang = nl < 0 ? piece.trim() : piece.slice(0, nl).trim();
    let code = nl < 0 ? "" : piece.slice(nl + 1);
    if (code.endsWith("\n")) code = code.slice(0, -1);
    const pre = el("pre", { class: "code", "data-lang": lang || null });
    pre.append(el("code", { text: code }));
    node.append(pre);
  });
}

/**
 * A streaming view of `node`: `update(text)` re-renders at most once per animation frame,
 * `flush()` renders the latest text now (call it when the stream ends).
 */
export function liveMarkdown(node) {
  let latest = "";
  let queued = false;
  const draw = () => {
    queued = false;
    renderMarkdown(node, latest);
  };
  return {
    update(text) {
      latest = text;
      if (!queued) {
        queued = true;
        requestAnimationFrame(draw);
      }
    },
    flush: draw,
  };
}

const fmt = {
  ms: (v) => (v === null || v === undefined ? "–" : `${Math.round(v)} ms`),
  num: (v) => (v === null || v === undefined ? "–" : String(v)),
  rate: (v) => (v === null || v === undefined ? "–" : `${v.toFixed(1)} tok/s`),
  usd: (v) => (v === null || v === undefined ? null : `$${v.toFixed(6)}`),
};
export { fmt };

/** A facts list (<dl>) for one response; each value has data-fact="name" for tests. */
export function factsList(f) {
  const rows = [
    ["backend", "backend", f.backend || "–"],
    ["model", "provider model", f.providerModel || "–"],
    ["attempts", "attempts", fmt.num(f.attempts)],
    ["ttft", "first token", fmt.ms(f.ttftMs)],
    ["tps", "speed", fmt.rate(f.tokensPerSec)],
    ["total", "total", fmt.ms(f.totalMs)],
    ["tokens", "tokens in/out", `${fmt.num(f.tokensIn)} / ${fmt.num(f.tokensOut)}`],
  ];
  if (f.cost !== null && f.cost !== undefined) rows.push(["cost", "cost", fmt.usd(f.cost)]);
  if (f.cache) rows.push(["cache", "cache", f.cache]);
  if (f.remainingRequests !== null && f.remainingRequests !== undefined) {
    const tokens = f.remainingTokens ? `, ${f.remainingTokens} tokens` : "";
    rows.push(["remaining", "limit left", `${f.remainingRequests} requests${tokens}`]);
  }
  rows.push(["request-id", "request id", f.requestId || "–"]);
  const dl = el("dl", { class: "facts" });
  for (const [key, label, value] of rows) {
    dl.append(el("div", {}, el("dt", { text: label }), el("dd", { "data-fact": key, text: value })));
  }
  if (f.stopped) dl.append(el("div", { class: "note", text: "stopped" }));
  return dl;
}

/** A readable error box: status, message, request id. */
export function errorBox(err) {
  const text = typeof err.describe === "function" ? err.describe() : String(err.message || err);
  return el("div", { class: "error", role: "alert", text });
}

/** An SVG sparkline of `values` (numbers), scaled to its own maximum. */
export function sparkline(values, { width = 160, height = 32, label = "" } = {}) {
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  svg.setAttribute("width", width);
  svg.setAttribute("height", height);
  svg.setAttribute("class", "spark");
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", label);
  const max = Math.max(1e-9, ...values);
  const n = Math.max(2, values.length);
  const pts = values.map((v, i) => {
    const x = (i / (n - 1)) * (width - 2) + 1;
    const y = height - 1 - (v / max) * (height - 2);
    return `${x.toFixed(1)},${y.toFixed(1)}`;
  });
  const line = document.createElementNS(ns, "polyline");
  line.setAttribute("points", pts.join(" "));
  line.setAttribute("fill", "none");
  svg.append(line);
  return svg;
}

/** Saves `data` as a JSON download named `name`. */
export function downloadJSON(name, data) {
  const blob = new Blob([JSON.stringify(data, null, 2)], { type: "application/json" });
  const url = URL.createObjectURL(blob);
  const a = el("a", { href: url, download: name });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}

/** Copies text to the clipboard, with a fallback where the Clipboard API is not offered. */
export async function copyText(text) {
  if (navigator.clipboard && window.isSecureContext) {
    try {
      await navigator.clipboard.writeText(text);
      return true;
    } catch (_) {
      // fall through to the textarea way
    }
  }
  const area = el("textarea", { class: "offscreen" });
  area.value = text;
  document.body.append(area);
  area.select();
  const ok = document.execCommand("copy");
  area.remove();
  return ok;
}
