// Talking to the gateway: keys kept in this browser, SSE decoding, one streamed chat turn
// through the OpenAI or Anthropic front door, and the facts measured about it.
// Invariant: keys go only to this page's own origin (relative URLs), never anywhere else.

const KEY = "llm-proxy.api-key";
const ADMIN_KEY = "llm-proxy.admin-key";

export const store = {
  apiKey: () => localStorage.getItem(KEY) || "",
  setApiKey: (v) => (v ? localStorage.setItem(KEY, v) : localStorage.removeItem(KEY)),
  adminKey: () => localStorage.getItem(ADMIN_KEY) || "",
  setAdminKey: (v) => (v ? localStorage.setItem(ADMIN_KEY, v) : localStorage.removeItem(ADMIN_KEY)),
};

/** An error answer from the gateway: status, message, request id. */
export class GatewayError extends Error {
  constructor(status, message, requestId) {
    super(message);
    this.status = status;
    this.requestId = requestId || null;
  }
  describe() {
    const head = this.status ? `${this.status}: ` : "";
    const id = this.requestId ? ` (request id ${this.requestId})` : "";
    return head + this.message + id;
  }
}

/** The message of a gateway error body (OpenAI, Anthropic or Gemini shape), or null. */
export function errorMessage(body) {
  if (!body || typeof body !== "object") return null;
  const err = Array.isArray(body) ? body[0] && body[0].error : body.error;
  if (err && typeof err === "object" && err.message) return String(err.message);
  if (typeof err === "string") return err;
  return body.message ? String(body.message) : null;
}

/** Turns a non-2xx response into a GatewayError, reading its body. */
export async function failure(resp) {
  const text = await resp.text().catch(() => "");
  let message = null;
  try {
    message = errorMessage(JSON.parse(text));
  } catch (_) {
    message = null;
  }
  return new GatewayError(
    resp.status,
    message || text.slice(0, 300) || resp.statusText || "request failed",
    resp.headers.get("x-request-id"),
  );
}

/** Request headers for a front door ("openai" or "anthropic") with the stored key. */
export function authHeaders(door, key = store.apiKey()) {
  const h = {};
  if (door === "anthropic") {
    h["anthropic-version"] = "2023-06-01";
    if (key) h["x-api-key"] = key;
  } else if (key) {
    h["authorization"] = "Bearer " + key;
  }
  return h;
}

/** GET a JSON document with the given headers; throws GatewayError. */
export async function getJSON(url, headers = {}) {
  let resp;
  try {
    resp = await fetch(url, { headers, cache: "no-store" });
  } catch (e) {
    throw new GatewayError(0, "gateway unreachable: " + e.message);
  }
  if (!resp.ok) throw await failure(resp);
  return resp.json();
}

/** Incremental SSE decoder: feed text, get complete {event, data} records. */
export class SSEDecoder {
  constructor() {
    this.buf = "";
  }
  feed(text) {
    this.buf += text;
    // keep a trailing CR: its LF may come in the next piece
    const cut = this.buf.endsWith("\r") ? this.buf.length - 1 : this.buf.length;
    const ready = this.buf.slice(0, cut).replace(/\r\n?/g, "\n");
    this.buf = this.buf.slice(cut);
    const frames = ready.split("\n\n");
    this.buf = frames.pop() + this.buf;
    const out = [];
    for (const frame of frames) {
      let event = "message";
      const data = [];
      for (const line of frame.split("\n")) {
        if (line.startsWith(":")) continue;
        const colon = line.indexOf(":");
        const field = colon < 0 ? line : line.slice(0, colon);
        let value = colon < 0 ? "" : line.slice(colon + 1);
        if (value.startsWith(" ")) value = value.slice(1);
        if (field === "event") event = value;
        else if (field === "data") data.push(value);
      }
      if (data.length) out.push({ event, data: data.join("\n") });
    }
    return out;
  }
}

/** The request body for one chat turn through a front door. */
export function chatBody(door, { model, system, messages, temperature, maxTokens }) {
  const turns = messages.map((m) => ({ role: m.role, content: m.content }));
  if (door === "anthropic") {
    const body = { model, messages: turns, max_tokens: maxTokens || 1024, stream: true };
    if (system) body.system = system;
    if (temperature !== null && temperature !== undefined) body.temperature = temperature;
    return body;
  }
  const body = {
    model,
    messages: system ? [{ role: "system", content: system }, ...turns] : turns,
    stream: true,
    stream_options: { include_usage: true },
  };
  if (temperature !== null && temperature !== undefined) body.temperature = temperature;
  if (maxTokens) body.max_tokens = maxTokens;
  return body;
}

/** What one decoded event means: {text}, {usage}, {error} or {} (OpenAI wire). */
function openaiEvent(data) {
  if (data === "[DONE]") return { done: true };
  const chunk = JSON.parse(data);
  if (chunk.error) return { error: errorMessage(chunk) || "stream failed" };
  const out = {};
  const choice = chunk.choices && chunk.choices[0];
  if (choice && choice.delta && choice.delta.content) out.text = choice.delta.content;
  if (chunk.usage) {
    out.usage = { in: chunk.usage.prompt_tokens, out: chunk.usage.completion_tokens };
    if (typeof chunk.usage.cost === "number") out.cost = chunk.usage.cost;
  }
  return out;
}

/** What one decoded event means on the Anthropic wire. */
function anthropicEvent(event, data) {
  const msg = JSON.parse(data);
  const type = msg.type || event;
  if (type === "error") return { error: errorMessage(msg) || "stream failed" };
  if (type === "content_block_delta" && msg.delta && msg.delta.type === "text_delta") {
    return { text: msg.delta.text };
  }
  if (type === "message_start" && msg.message && msg.message.usage) {
    return { usage: { in: msg.message.usage.input_tokens } };
  }
  if (type === "message_delta" && msg.usage) return { usage: { out: msg.usage.output_tokens } };
  if (type === "message_stop") return { done: true };
  return {};
}

/** Facts read off the response headers. */
function headerFacts(resp) {
  const h = (name) => resp.headers.get(name);
  const cost = h("x-proxy-cost-usd") || h("x-proxy-cost");
  return {
    backend: h("x-proxy-backend"),
    providerModel: h("x-proxy-model"),
    attempts: h("x-proxy-attempts") ? Number(h("x-proxy-attempts")) : null,
    requestId: h("x-request-id"),
    cache: h("x-proxy-cache"),
    cost: cost ? Number(cost) : null,
    estimate: h("x-proxy-estimate") === "true",
    remainingRequests: h("x-ratelimit-remaining-requests"),
    remainingTokens: h("x-ratelimit-remaining-tokens"),
  };
}

/**
 * Streams one chat turn. `onText(delta)` gets text as it arrives. Resolves with the facts
 * ({backend, providerModel, attempts, requestId, ttftMs, totalMs, tokensIn, tokensOut,
 * tokensPerSec, cost, cache, stopped, error}); throws GatewayError when the gateway refuses.
 * Aborting `signal` ends the stream and resolves with stopped: true.
 */
export async function streamChat(door, request, { signal, onText }) {
  const started = performance.now();
  const url = door === "anthropic" ? "/v1/messages" : "/v1/chat/completions";
  let resp;
  try {
    resp = await fetch(url, {
      method: "POST",
      headers: { "content-type": "application/json", ...authHeaders(door) },
      body: JSON.stringify(chatBody(door, request)),
      signal,
    });
  } catch (e) {
    if (e.name === "AbortError") return { stopped: true, totalMs: performance.now() - started };
    throw new GatewayError(0, "gateway unreachable: " + e.message);
  }
  if (!resp.ok) throw await failure(resp);
  const facts = { ...headerFacts(resp), tokensIn: null, tokensOut: null, stopped: false };
  let first = null;
  const decoder = new TextDecoder();
  const sse = new SSEDecoder();
  const reader = resp.body.getReader();
  const take = (ev) => {
    const m = door === "anthropic" ? anthropicEvent(ev.event, ev.data) : openaiEvent(ev.data);
    if (m.text) {
      if (first === null) first = performance.now();
      onText(m.text);
    }
    if (m.usage) {
      if (m.usage.in !== undefined) facts.tokensIn = m.usage.in;
      if (m.usage.out !== undefined) facts.tokensOut = m.usage.out;
    }
    if (m.cost !== undefined) facts.cost = m.cost;
    if (m.error) facts.error = m.error;
  };
  try {
    for (let i = 0; i < 1e7; i++) {
      const { value, done } = await reader.read();
      if (done) break;
      for (const ev of sse.feed(decoder.decode(value, { stream: true }))) take(ev);
    }
  } catch (e) {
    if (e.name === "AbortError") facts.stopped = true;
    else facts.error = "stream broke: " + e.message;
  }
  const end = performance.now();
  facts.totalMs = end - started;
  facts.ttftMs = first === null ? null : first - started;
  // generation speed: after the first token; a burst that came all at once uses the total
  const streamSecs = first === null ? 0 : (end - first) / 1000;
  const secs = streamSecs > 0.005 ? streamSecs : facts.totalMs / 1000;
  facts.tokensPerSec = facts.tokensOut && secs > 0 ? facts.tokensOut / secs : null;
  return facts;
}

/** The median of the finite numbers in `xs`, or null. */
export function median(xs) {
  const v = xs.filter((x) => typeof x === "number" && Number.isFinite(x)).sort((a, b) => a - b);
  if (!v.length) return null;
  const mid = v.length >> 1;
  return v.length % 2 ? v[mid] : (v[mid - 1] + v[mid]) / 2;
}
