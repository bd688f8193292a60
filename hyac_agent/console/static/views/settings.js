import { api } from "../api.js";
import { field, h, section, table, time } from "../dom.js";

// One integration (mail, object storage, …): each setting with where its value comes
// from, and a button that tries it for real. Secrets arrive as "set", never the value.
function integration(view) {
  const result = h("p", { class: "muted", role: "status" });
  const to = h("input", { type: "email", placeholder: "you@example.com", autocomplete: "off" });
  const test = h("form", { class: "inline", onsubmit: async (event) => {
    event.preventDefault();
    result.textContent = "Testing…";
    const body = view.kind === "mail" && to.value ? { to: to.value } : undefined;
    try {
      const answer = await api("POST", `/v1/system/integrations/${encodeURIComponent(view.kind)}/test`, { body });
      result.textContent = `OK: ${answer.message}`;
      result.className = "ok";
    } catch (error) {
      result.textContent = `Failed: ${error.message}`;
      result.className = "error";
    }
  } },
  view.kind === "mail" ? field("Send a test message to", to) : null,
  h("button", { type: "submit", disabled: !view.configured }, `Test ${view.title.toLowerCase()}`));
  const source = (s) => (s.source === "env" ? `environment (${s.env})` : s.source);
  const shown = (s) => (s.value === null || s.value === "" ? "-" : String(s.value));
  return h("div", { class: "integration", "data-kind": view.kind },
    h("h3", {}, `${view.title} — ${view.configured ? "configured" : "not configured"}`),
    table(["Setting", "Value", "From"], view.settings.map((s) => [s.name, shown(s), source(s)])),
    view.updated_at ? h("p", { class: "muted" }, `Last changed ${time(view.updated_at)} by ${view.updated_by}`) : null,
    test, result);
}

export async function settingsView(root) {
  root.append(h("h1", {}, "Settings"));
  const [s, integrations] = await Promise.all([
    api("GET", "/v1/console/settings"), api("GET", "/v1/system/integrations")]);
  root.append(section("Integrations",
    h("p", { class: "muted" }, "Where each value comes from: the agent's environment (which wins), "
      + "the store (hyac system integrations set), or the default."),
    integrations.map(integration),
    h("div", { class: "integration", "data-kind": "notify" },
      h("h3", {}, "Notification channels"),
      h("p", { class: "muted" }, "Platform and tenant channels: hyac notify, /v1/notify."))));
  root.append(section("Runtimes", table(["Runtime", "Available", "Backends", "Default", "Used by"],
    s.runtimes.map((r) => [r.name, r.available ? "yes" : `no (${r.reason})`,
      Object.entries(r.backends).map(([b, v]) => `${b}: ${v}`).join("; "), r.default ? "yes" : "",
      r.functions.length ? r.functions.join(", ") : "-"]))));
  root.append(section("Sandboxes (doctor)", h("pre", { class: "code" }, JSON.stringify(s.doctor, null, 2))));
}
