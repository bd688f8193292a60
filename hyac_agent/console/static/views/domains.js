// Custom domains of the tenant (with their certificates) and its IP rules.
import { api, currentTenant } from "../api.js";
import { clear, field, h, section, say, table, time } from "../dom.js";

export async function domainsView(root) {
  const tenant = currentTenant();
  root.append(h("h1", {}, "Domains & IP rules"));
  const domains = h("div", { id: "domain-list" });
  const rules = h("div", { id: "ip-rule-list" });
  root.append(section(`Domains of ${tenant}`, domains), section(`IP rules of ${tenant}`, rules));
  await Promise.all([loadDomains(domains), loadRules(rules)].map((p) =>
    p.catch((error) => say(error.message, "error"))));
}

async function guarded(action, message) {
  try {
    const answer = await action();
    if (message) say(message);
    return answer;
  } catch (error) {
    say(error.message, "error");
    return undefined;
  }
}

async function certificate(d) {
  if (d.status !== "active") return "-";
  try {
    const c = await api("GET", `/v1/domains/${encodeURIComponent(d.host)}/certificate`);
    return `${c.source}, until ${time(c.not_after)}`;
  } catch {
    return d.acme ? (d.acme_error ? `ACME failed: ${d.acme_error}` : "ACME: coming") : "none";
  }
}

async function loadDomains(body) {
  const list = await api("GET", "/v1/domains");
  const certs = await Promise.all(list.map(certificate));
  const host = h("input", { id: "domain-host", required: true, placeholder: "api.example.com" });
  const fn = h("input", { id: "domain-function", placeholder: "(empty: every function)" });
  const prefix = h("input", { id: "domain-prefix", value: "/" });
  const acme = h("input", { id: "domain-acme", type: "checkbox" });
  const form = h("form", { class: "row" }, field("Domain", host), field("Function", fn),
    field("Path prefix", prefix), field("Certificate by ACME", acme), h("button", { type: "submit" }, "Add"));
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const payload = { host: host.value, acme: acme.checked, path_prefix: prefix.value || "/" };
    if (fn.value) payload.function = fn.value; else payload.tenant_root = true;
    await guarded(() => api("POST", "/v1/domains", { body: payload }), `Domain ${host.value} added.`);
    await loadDomains(body);
  });
  const act = (d, path, method, message) => async () => {
    await guarded(() => api(method, `/v1/domains/${encodeURIComponent(d.host)}${path}`), message);
    await loadDomains(body);
  };
  clear(body).append(table(["Domain", "Status", "Routes to", "Certificate", ""], list.map((d, i) => [
    d.host,
    h("span", { class: `badge ${d.status}`, "data-domain": d.host }, d.status),
    d.tenant_root ? "/{function}/…" : `${d.function}${d.path_prefix !== "/" ? ` under ${d.path_prefix}` : ""}`,
    certs[i],
    h("span", { class: "actions" },
      d.status === "pending" ? h("button", { type: "button", title: d.check ? `${d.check.http}; or ${d.check.dns}` : "",
        onclick: act(d, "/verify", "POST", `Domain ${d.host} verified.`) }, "Verify") : null,
      h("button", { type: "button", class: "danger", onclick: async () => {
        if (!confirm(`Remove the domain ${d.host}?`)) return;
        await act(d, "", "DELETE", `Domain ${d.host} removed.`)();
      } }, "Remove")),
  ]), "Requests whose Host is one of these run the function (HTTPS when it has a certificate)."), form);
}

async function loadRules(body) {
  const list = await api("GET", "/v1/edge/ip-rules");
  const action = h("select", { id: "rule-action" }, ["deny", "allow"].map((a) => h("option", { value: a }, a)));
  const cidr = h("input", { id: "rule-cidr", required: true, placeholder: "203.0.113.0/24 or 2001:db8::/32" });
  const fn = h("input", { id: "rule-function", placeholder: "(empty: the tenant)" });
  const note = h("input", { id: "rule-note" });
  const form = h("form", { class: "row" }, field("Action", action), field("Network", cidr),
    field("Function", fn), field("Note", note), h("button", { type: "submit" }, "Add rule"));
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const rule = { action: action.value, cidr: cidr.value, note: note.value };
    if (fn.value) rule.function = fn.value;
    await guarded(() => api("POST", "/v1/edge/ip-rules", { body: rule }), `Rule added: ${action.value} ${cidr.value}.`);
    await loadRules(body);
  });
  clear(body).append(table(["Rule", "Action", "Network", "Applies to", "Note", ""], list.map((r) => [
    r.id, r.action, r.cidr,
    r.domain ? `domain ${r.domain}` : r.function ? `function ${r.function}` : "the tenant",
    r.note || "",
    h("button", { type: "button", class: "danger", onclick: async () => {
      await guarded(() => api("DELETE", `/v1/edge/ip-rules/${encodeURIComponent(r.id)}`), `Rule ${r.id} removed.`);
      await loadRules(body);
    } }, "Remove"),
  ]), "Deny wins; a list with allow rules lets only their networks through."), form);
}
