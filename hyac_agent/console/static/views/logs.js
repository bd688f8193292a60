import { api, stream } from "../api.js";
import { clear, field, h, time } from "../dom.js";

const MAX_LINES = 1000;

export async function logsView(root, { rest }) {
  root.append(h("h1", {}, "Logs"));
  const functions = await api("GET", "/v1/functions");
  const fn = h("select", { id: "log-function" }, h("option", { value: "" }, "All functions"),
    functions.map((f) => h("option", { value: f.name }, f.name)));
  const streamSel = h("select", { id: "log-stream" }, ["", "stdout", "stderr", "logger", "system"].map((s) =>
    h("option", { value: s }, s || "All streams")));
  const level = h("select", { id: "log-level" }, ["", "DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"].map((s) =>
    h("option", { value: s }, s || "Any level")));
  const requestId = h("input", { id: "log-request", value: rest[0] || "", placeholder: "request id" });
  const text = h("input", { id: "log-text", type: "search", placeholder: "contains…" });
  const pause = h("button", { type: "button", id: "log-pause", "aria-pressed": "false" }, "Pause");
  const state = h("span", { class: "muted", id: "log-state" }, "connecting…");
  const list = h("ol", { class: "log", id: "log-lines", "aria-live": "off" });
  root.append(h("form", { class: "row filters", onsubmit: (e) => e.preventDefault() },
    field("Function", fn), field("Stream", streamSel), field("Level", level),
    field("Request id", requestId), field("Text", text), pause, state), list);

  let paused = false;
  let held = [];
  let lastTs = null;
  let stop = null;
  const key = (r) => `${r.ts}|${r.request_id}|${r.stream}|${r.message}`;

  const visible = (r) => (!streamSel.value || r.stream === streamSel.value)
    && (!level.value || (r.level || "").toUpperCase() === level.value)
    && (!requestId.value || r.request_id === requestId.value.trim())
    && (!text.value || r.message.toLowerCase().includes(text.value.toLowerCase()));

  function line(r) {
    const item = h("li", { class: `line ${r.stream}` },
      h("time", {}, time(r.ts)), " ",
      h("span", { class: "fn" }, `${r.function}@v${r.version}`), " ",
      h("span", { class: "stream" }, r.level || r.stream), " ",
      r.request_id ? h("button", { type: "button", class: "rid", title: "Only this request's lines",
        onclick: () => { requestId.value = r.request_id; showRequest(); } }, r.request_id.slice(0, 12)) : null,
      " ", h("span", { class: "msg" }, r.message));
    item.hidden = !visible(r);
    item.record = r;
    return item;
  }

  function add(records) {
    for (const r of records) {
      list.append(line(r));
    }
    while (list.childElementCount > MAX_LINES) list.firstElementChild.remove();
    const doc = document.scrollingElement;
    if (doc.scrollHeight - doc.scrollTop - doc.clientHeight < 200) list.lastElementChild?.scrollIntoView({ block: "nearest" });
  }

  function refilter() {
    for (const item of list.children) item.hidden = !visible(item.record);
  }

  // A request's lines may be older than what the tail loaded: fetch them all. Only the
  // newest pick applies its answer, and every line is kept once.
  let picked = 0;
  async function showRequest() {
    const rid = requestId.value.trim();
    refilter();
    if (!rid) return;
    const ticket = ++picked;
    const stored = await api("GET", "/v1/logs", { params: { function: fn.value, limit: 10000 } });
    if (ticket !== picked || requestId.value.trim() !== rid) return;
    const lines = new Map([...list.children].map((item) => [key(item.record), item.record]));
    const before = lines.size;
    for (const r of stored) if (r.request_id === rid && !lines.has(key(r))) lines.set(key(r), r);
    if (lines.size === before && before === list.childElementCount) return;
    clear(list);
    for (const r of [...lines.values()].sort((a, b) => a.ts - b.ts)) list.append(line(r));
  }

  // Each line is shown once: a tail that reconnects asks for what came since the newest
  // line it received, and the agent sends that line again, with any of the same instant.
  // Lines of concurrent requests may arrive slightly out of order: none is dropped for it.
  const SEEN = 5000;
  let seen = new Set();
  function fresh(r) {
    const k = key(r);
    if (seen.has(k)) return false;
    seen.add(k);
    if (seen.size > SEEN) seen.delete(seen.values().next().value);
    if (lastTs === null || r.ts > lastTs) lastTs = r.ts;
    return true;
  }

  // Only the newest connection fills the list: a change of function while the previous
  // tail is still loading must not leave both tails in it. A tail the network or a
  // stopping agent ended reconnects on its own, waiting longer after each failure.
  let connection = 0;
  let again = null;
  function halt() {
    if (stop) { stop(); stop = null; }
    clearTimeout(again);
  }
  async function connect() {
    const ticket = ++connection;
    halt();
    const params = { function: fn.value, limit: 200 };
    const recent = await api("GET", "/v1/logs", { params });
    if (ticket !== connection) return;
    clear(list);
    held = [];
    lastTs = null;
    seen = new Set();
    add(recent.sort((a, b) => a.ts - b.ts).filter(fresh));
    follow(ticket, 0);
  }
  function follow(ticket, failures) {
    state.textContent = !paused ? "live" : held.length ? `paused (${held.length} waiting)` : "paused";
    stop = stream("/v1/logs/stream", { function: fn.value, since: lastTs ?? undefined }, (_event, record) => {
      failures = 0;
      if (!fresh(record)) return;
      if (paused) { held.push(record); state.textContent = `paused (${held.length} waiting)`; } else add([record]);
    }, (error) => {
      if (ticket !== connection || !root.isConnected) return;
      stop = null;
      // Refused (signed out, access removed, a bad filter): reconnecting would not help.
      if (error && error.status >= 400 && error.status < 500 && error.status !== 429) {
        state.textContent = `disconnected: ${error.message}`;
        return;
      }
      const seconds = Math.min(2 ** failures, 15);
      state.textContent = `reconnecting in ${seconds} s (${error ? error.message : "the stream ended"})`;
      again = setTimeout(() => { if (ticket === connection) follow(ticket, failures + 1); }, seconds * 1000);
    });
  }

  pause.addEventListener("click", () => {
    paused = !paused;
    pause.textContent = paused ? "Resume" : "Pause";
    pause.setAttribute("aria-pressed", String(paused));
    if (!paused) { add(held); held = []; state.textContent = "live"; } else state.textContent = "paused";
  });
  fn.addEventListener("change", connect);
  for (const input of [streamSel, level, requestId, text]) input.addEventListener("input", refilter);
  requestId.addEventListener("change", showRequest);
  await connect();
  return () => { connection++; halt(); };
}
