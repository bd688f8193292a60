// The editor (#/edit/NAME): the active version's files in CodeMirror, completion, hover and
// diagnostics from /v1/editor, Save (a diff, then a deploy of the next version) and Run
// (the function's sample). The bundle in ../vendor/ is CodeMirror 6, built by
// scripts/build-editor.sh.

import { ApiError, api } from "../api.js";
import { b64, clear, h, num, say, section, unb64 } from "../dom.js";
import { createEditor } from "../vendor/codemirror.js";

const pause = (ms) => new Promise((resolve) => { setTimeout(resolve, ms); });

export async function editorView(root, { rest }) {
  const name = rest[0];
  if (!name) {
    root.append(h("p", {}, "Open a function from ", h("a", { href: "#/functions" }, "Functions"), "."));
    return null;
  }
  const link = `#/functions/${encodeURIComponent(name)}`;
  root.append(h("p", {}, h("a", { href: link }, `← ${name}`)), h("h1", {}, `Edit ${name}`));
  const opened = await api("GET", `/v1/editor/files/${encodeURIComponent(name)}`);
  const state = {
    version: opened.version,
    base: { ...opened.files },
    texts: { ...opened.files },
    file: opened.entry in opened.files ? opened.entry : Object.keys(opened.files)[0],
    editor: null,
  };
  const python = opened.runtime.startsWith("python");
  const language = /^(node|deno|bun)/.test(opened.runtime) ? "javascript" : "python";
  const where = h("p", { class: "muted", id: "editor-version" });
  const showVersion = () => { clear(where).append(`Editing v${state.version} (${opened.runtime})`); };
  showVersion();
  const tree = h("ul", { class: "files", id: "editor-files", "aria-label": "Files" });
  const host = h("div", { class: "editor-host", id: "editor" });
  const review = h("div", { id: "editor-review", class: "diff", "aria-live": "polite" });
  const output = h("div", { id: "editor-output", class: "result", "aria-live": "polite" });

  const query = (extra) => ({ function: name, file: state.file, ...extra });
  const quietly = async (path, body, pick) => {
    try { return pick(await api("POST", path, { body })); } catch { return null; }
  };
  // The agent refuses an analysis (503) when its time cap runs out or its slots are busy:
  // on a loaded host, the first analyses of an agent's life alone can take longer. The
  // editor then asks again for the text as it is by then (createEditor).
  const complete = async (source, line, column) => {
    try {
      return (await api("POST", "/v1/editor/complete", { body: query({ source, line, column }) })).items;
    } catch (error) {
      return error instanceof ApiError && error.status === 503 ? { busy: true } : null;
    }
  };
  const open = (file) => {
    if (state.editor) state.texts[state.file] = state.editor.text();
    if (state.editor) state.editor.destroy();
    state.file = file;
    state.editor = createEditor({
      parent: host, doc: state.texts[file], language,
      onChange: (text) => { state.texts[state.file] = text; },
      complete: python ? complete : null,
      hover: python ? (source, line, column) => quietly("/v1/editor/hover",
        query({ source, line, column }), (r) => r.hover) : null,
      diagnose: python ? (source) => quietly("/v1/editor/diagnostics",
        query({ source }), (r) => r.diagnostics) : null,
    });
    for (const item of tree.querySelectorAll("button")) {
      if (item.dataset.file === file) item.setAttribute("aria-current", "true");
      else item.removeAttribute("aria-current");
    }
  };
  for (const file of Object.keys(state.texts).sort()) {
    tree.append(h("li", {}, h("button", { type: "button", "data-file": file, onclick: () => open(file) }, file)));
  }

  const changed = () => {
    if (state.editor) state.texts[state.file] = state.editor.text();
    return Object.keys(state.texts).filter((f) => state.texts[f] !== state.base[f]);
  };
  const deploy = async () => {
    const files = {};
    for (const f of changed()) files[f] = state.texts[f];
    try {
      const r = await api("POST", "/v1/editor/save",
        { body: { function: name, files, expected_active_version: state.version } });
      state.version = r.active_version;
      state.base = { ...state.texts };
      showVersion();
      clear(review).append(h("p", { id: "editor-saved" }, r.created ? `Saved: v${r.version} is live.` : `Unchanged: v${r.version} stays live.`));
      say(`${name}: v${r.version} is live`);
    } catch (error) {
      const moved = error instanceof ApiError && error.status === 409;
      clear(review).append(h("p", { class: "error", role: "alert", id: "editor-error" }, error.message),
        moved ? h("p", {}, h("a", { href: link }, "See the versions and their diff"), " — your edits stay here until you reload.") : null);
    }
  };
  const showDiff = () => {
    const files = changed();
    clear(review);
    if (!files.length) {
      review.append(h("p", { class: "muted", id: "editor-nothing" }, "Nothing changed since v" + state.version + "."));
      return;
    }
    review.append(h("h3", {}, `Changes against v${state.version}`));
    for (const f of files) {
      review.append(h("h4", {}, f), h("pre", { class: "code", id: "editor-diff" }, lineDiff(state.base[f] || "", state.texts[f]).map(([kind, line]) =>
        h("span", { class: kind === "+" ? "add" : kind === "-" ? "del" : "" }, `${kind} ${line}\n`))));
    }
    review.append(h("div", { class: "row" },
      h("button", { type: "button", id: "editor-deploy", onclick: deploy }, "Deploy"),
      h("button", { type: "button", onclick: () => clear(review) }, "Cancel")));
  };
  const run = async () => {
    clear(output).append(h("p", { class: "muted" }, "Running…"));
    const sample = opened.sample || { method: "POST", path: "/", query: {}, headers: {}, body: null };
    const headers = { ...sample.headers };
    if (sample.body !== null) headers["content-type"] = "application/json";
    try {
      const r = await api("POST", `/v1/functions/${encodeURIComponent(name)}/invoke`, { body: {
        method: sample.method, path: sample.path, query: sample.query, headers,
        body_b64: sample.body === null ? "" : b64(JSON.stringify(sample.body)) } });
      clear(output);
      if (r.task_id) {
        output.append(h("p", {}, "Queued as task ", h("a", { href: `#/tasks/${r.task_id}` }, r.task_id)));
        return;
      }
      output.append(h("p", {}, `v${r.version} answered `, h("strong", { id: "editor-status" }, String(r.status)),
        ` in ${num(r.duration_ms)} ms · `, h("a", { href: `#/logs/${encodeURIComponent(r.request_id)}` }, "its log lines")),
      h("pre", { class: "code", id: "editor-response" }, unb64(r.body_b64)));
      if (r.error) output.append(h("pre", { class: "code error" }, `${r.error.type}: ${r.error.message}\n${r.error.traceback}`));
      const logs = h("pre", { class: "code", id: "editor-logs" }, "…");
      output.append(h("h3", {}, "Log lines"), logs);
      // The log bus stores lines just after the answer: look a few times, briefly.
      for (let attempt = 0; attempt < 10; attempt++) {
        const lines = (await api("GET", "/v1/logs", { params: { function: name, limit: 500 } }))
          .filter((line) => line.request_id === r.request_id);
        if (lines.length || attempt === 9) {
          clear(logs).append(lines.length ? lines.map((line) => `${line.level || line.stream}  ${line.message}\n`) : "(none)");
          break;
        }
        await pause(300);
      }
    } catch (error) {
      clear(output).append(h("p", { class: "error", role: "alert" }, error.message));
    }
  };
  const tools = h("div", { class: "row" },
    h("button", { type: "button", id: "editor-save", onclick: showDiff }, "Save…"),
    h("button", { type: "button", id: "editor-run", onclick: run }, opened.sample ? "Run with the sample" : "Run"));
  root.append(where, h("div", { class: "editor-layout" }, Object.keys(state.texts).length > 1 ? tree : null, host),
    tools, review, section("Run", output));
  open(state.file);
  return () => { if (state.editor) state.editor.destroy(); };
}

// A line diff (longest common subsequence): [[" " | "-" | "+", line], ...].
export function lineDiff(before, after) {
  const a = before.split("\n");
  const b = after.split("\n");
  if (a.length * b.length > 4_000_000) return [...a.map((l) => ["-", l]), ...b.map((l) => ["+", l])];
  const rows = Array.from({ length: a.length + 1 }, () => new Uint32Array(b.length + 1));
  for (let i = a.length - 1; i >= 0; i--) {
    for (let j = b.length - 1; j >= 0; j--) {
      rows[i][j] = a[i] === b[j] ? rows[i + 1][j + 1] + 1 : Math.max(rows[i + 1][j], rows[i][j + 1]);
    }
  }
  const out = [];
  let i = 0;
  let j = 0;
  while (i < a.length || j < b.length) {
    if (i < a.length && j < b.length && a[i] === b[j]) { out.push([" ", a[i]]); i++; j++; }
    else if (j < b.length && (i >= a.length || rows[i][j + 1] >= rows[i + 1][j])) { out.push(["+", b[j]]); j++; }
    else { out.push(["-", a[i]]); i++; }
  }
  return out;
}
