import { api } from "../api.js";
import { b64, clear, field, h, num, section, say, table, time, unb64 } from "../dom.js";
import { summary } from "./overview.js";

export async function functionsView(root, { rest }) {
  if (rest[0]) return functionDetail(root, rest[0]);
  root.append(h("h1", {}, "Functions"));
  const [functions, sums] = await Promise.all([
    api("GET", "/v1/functions"), summary({ window: 86400, step: 3600 })]);
  const stats = new Map((sums ? sums.functions : []).map((f) => [`${f.tenant}/${f.function}`, f]));
  const tenant = document.getElementById("tenant").value;
  root.append(table(["Name", "Active version", "Runtime", "Last invoked", "Error rate (24 h)"],
    functions.map((f) => {
      const s = stats.get(`${tenant}/${f.name}`);
      return [h("a", { href: `#/functions/${encodeURIComponent(f.name)}` }, f.name),
        `v${f.active_version} of ${f.versions}`, f.runtime,
        s ? time(s.last_invoked) : "no data yet",
        s ? `${num(s.error_rate * 100)} %` : "no data yet"];
    })));
}

async function functionDetail(root, name) {
  root.append(h("p", {}, h("a", { href: "#/functions" }, "← Functions")), h("h1", {}, name),
    h("p", {}, h("a", { href: `#/edit/${encodeURIComponent(name)}`, id: "open-editor" }, "Open in the editor")));
  const versions = await api("GET", `/v1/console/functions/${encodeURIComponent(name)}/versions`);
  const active = versions.find((v) => v.active);
  root.append(invokePanel(name, active ? active.sample : null));
  const listing = section("Versions");
  root.append(listing);
  listing.append(table(["Version", "Runtime", "Deployed", "By", "State", ""],
    versions.slice().reverse().map((v) => [
      `v${v.version}`, v.runtime, time(v.created_at), v.deployed_by || "-",
      v.active ? "active" : "",
      v.active ? "" : h("button", { type: "button", onclick: () => rollback(name, v.version) },
        `Roll back to v${v.version}`)])));
  if (versions.length > 1) root.append(diffPanel(name, versions));
  root.append(await scanPanel(name));
}

async function scanPanel(name) {
  const panel = section("Known vulnerabilities");
  try {
    const r = await api("GET", `/v1/functions/${encodeURIComponent(name)}/scan`);
    if (!r.result) {
      panel.append(h("p", { class: "muted" }, `v${r.version} has no dependencies.`));
      return panel;
    }
    const blocked = r.blocked ? "; the tenant's policy would block it" : "";
    panel.append(h("p", {}, `v${r.version}: ${r.result.status}${blocked} (scanned ${time(r.result.scanned_at)})`));
    const fresh = new Set(r.result.new || []);
    if (fresh.size) {
      panel.append(h("p", { class: "error", id: "scan-new" },
        `New since the advisory database last changed: ${[...fresh].join(", ")}`));
    }
    const rows = [];
    for (const p of r.result.packages) {
      const pkg = `${p.name} ${p.version || ""}`;
      for (const a of p.advisories) {
        rows.push([pkg, fresh.has(a.id) ? `${a.id} (new)` : a.id,
          a.aliases.filter((x) => x.startsWith("CVE-")).join(" "),
          a.severity, a.fixed || "no fix yet", a.summary]);
      }
      if (p.status === "unknown") rows.push([pkg, "unknown", "", "", "", p.reason]);
    }
    if (rows.length) {
      panel.append(table(["Package", "Advisory", "CVE", "Severity", "Fixed in", "Summary"], rows));
    }
  } catch (error) {
    panel.append(h("p", { class: "muted" }, error.message));
  }
  return panel;
}

async function rollback(name, version) {
  if (!confirm(`Make v${version} the active version of ${name}?`)) return;
  try {
    await api("POST", `/v1/functions/${encodeURIComponent(name)}/rollback`, { body: { version } });
    say(`${name} now serves v${version}.`);
    window.dispatchEvent(new HashChangeEvent("hashchange"));
  } catch (error) {
    say(error.message, "error");
  }
}

function diffPanel(name, versions) {
  const choose = (id, selected) => h("select", { id }, versions.map((v) =>
    h("option", { value: v.version, selected: v.version === selected }, `v${v.version}`)));
  const a = choose("diff-a", versions[versions.length - 2].version);
  const b = choose("diff-b", versions[versions.length - 1].version);
  const out = h("div", { class: "diff", "aria-live": "polite" });
  const form = h("form", { class: "row" }, field("From", a), field("To", b),
    h("button", { type: "submit" }, "Show diff"));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clear(out);
    try {
      const d = await api("GET", `/v1/console/functions/${encodeURIComponent(name)}/diff`,
        { params: { a: a.value, b: b.value } });
      if (!d.files.length) out.append(h("p", { class: "muted" }, "The versions' files are the same."));
      for (const f of d.files) {
        out.append(h("h3", {}, f.path), h("pre", { class: "code" }, f.diff.split("\n").map((line) =>
          h("span", { class: line.startsWith("+") ? "add" : line.startsWith("-") ? "del" : "" }, `${line}\n`))));
      }
    } catch (error) {
      out.append(h("p", { class: "error" }, error.message));
    }
  });
  return section("Compare versions", form, out);
}

function pairs(text, separator) {
  const out = {};
  for (const line of text.split("\n")) {
    const at = line.indexOf(separator);
    if (at > 0) out[line.slice(0, at).trim()] = line.slice(at + 1).trim();
  }
  return out;
}


function invokePanel(name, sample) {
  const method = h("select", { id: "inv-method" }, ["POST", "GET", "PUT", "PATCH", "DELETE"].map((m) => h("option", { value: m }, m)));
  const path = h("input", { id: "inv-path", value: "/" });
  const query = h("textarea", { id: "inv-query", rows: 2, placeholder: "name=value, one a line" });
  const hdrs = h("textarea", { id: "inv-headers", rows: 2, placeholder: "Header: value, one a line" });
  const body = h("textarea", { id: "inv-body", rows: 4, placeholder: '{"name": "world"}' });
  const result = h("div", { id: "inv-result", class: "result", "aria-live": "polite" });
  // the active version's sample request (hyac.toml): the form starts with it
  const load = () => {
    method.value = sample.method;
    path.value = sample.path;
    query.value = Object.entries(sample.query).map(([k, v]) => `${k}=${v}`).join("\n");
    hdrs.value = Object.entries(sample.headers).map(([k, v]) => `${k}: ${v}`).join("\n");
    body.value = sample.body === null ? "" : JSON.stringify(sample.body, null, 2);
  };
  if (sample) load();
  const form = h("form", { class: "invoke" },
    h("div", { class: "row" }, field("Method", method), field("Path", path)),
    field("Query", query), field("Headers", hdrs), field("JSON body", body),
    h("div", { class: "row" }, h("button", { type: "submit" }, "Invoke"),
      sample ? h("button", { type: "button", id: "inv-sample", onclick: load }, "Load sample") : null));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clear(result).append(h("p", { class: "muted" }, "Running…"));
    const headers = pairs(hdrs.value, ":");
    if (body.value.trim()) {
      try { JSON.parse(body.value); } catch (error) {
        clear(result).append(h("p", { class: "error" }, `The body is not JSON: ${error.message}`));
        return;
      }
      if (!Object.keys(headers).some((k) => k.toLowerCase() === "content-type")) headers["content-type"] = "application/json";
    }
    const started = performance.now();
    try {
      const r = await api("POST", `/v1/functions/${encodeURIComponent(name)}/invoke`, { body: {
        method: method.value, path: path.value || "/", query: pairs(query.value, "="), headers,
        body_b64: body.value.trim() ? b64(body.value) : "" } });
      clear(result);
      if (r.task_id) {
        result.append(h("p", {}, "Queued as task ", h("a", { href: `#/tasks/${r.task_id}` }, r.task_id)));
        return;
      }
      result.append(h("dl", { class: "facts" },
        h("dt", {}, "Status"), h("dd", { id: "inv-status" }, String(r.status)),
        h("dt", {}, "Duration"), h("dd", {}, `${num(r.duration_ms)} ms (round trip ${num(performance.now() - started, 0)} ms)`),
        h("dt", {}, "Version"), h("dd", {}, `v${r.version}`),
        h("dt", {}, "Request id"), h("dd", {}, h("a", { href: `#/logs/${encodeURIComponent(r.request_id)}` }, r.request_id))),
        h("h3", {}, "Headers"),
        h("pre", { class: "code" }, Object.entries(r.headers || {}).map(([k, v]) => `${k}: ${v}\n`)),
        h("h3", {}, "Body"), h("pre", { class: "code", id: "inv-body-out" }, unb64(r.body_b64)));
      if (r.error) result.append(h("h3", {}, "Error"), h("pre", { class: "code error" }, `${r.error.type}: ${r.error.message}\n${r.error.traceback}`));
    } catch (error) {
      clear(result).append(h("p", { class: "error", role: "alert" }, error.message));
    }
  });
  return section("Invoke", form, result);
}
