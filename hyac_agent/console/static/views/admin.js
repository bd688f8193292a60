import { api, currentTenant } from "../api.js";
import { clear, field, h, section, say, table, time } from "../dom.js";
import { quotaBars } from "./overview.js";

const ROLES = ["viewer", "developer", "admin"];

export async function adminView(root, { me }) {
  const tenant = currentTenant();
  root.append(h("h1", {}, "Tenants & access"));
  const parts = [];
  if (me.owner) parts.push(tenantsPanel());
  parts.push(membersPanel(tenant), tokensPanel(tenant, me), quotasPanel(tenant));
  for (const part of parts) root.append(part.node);
  await Promise.all(parts.map((p) => p.load().catch((error) =>
    p.node.append(h("p", { class: "error" }, error.message)))));
}

function panel(title, load) {
  const body = h("div");
  const node = section(title, body);
  return { node, load: () => load(body) };
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

function tenantsPanel() {
  const p = panel("Tenants", async (body) => {
    const tenants = await api("GET", "/v1/tenants");
    const name = h("input", { id: "new-tenant", required: true, pattern: "[a-z0-9][a-z0-9_-]*" });
    const form = h("form", { class: "row" }, field("New tenant", name), h("button", { type: "submit" }, "Create"));
    form.addEventListener("submit", async (e) => {
      e.preventDefault();
      await guarded(() => api("POST", "/v1/tenants", { body: { name: name.value } }), `Tenant ${name.value} created.`);
      await p.load();
    });
    clear(body).append(table(["Tenant", "Created", ""], tenants.map((t) => [t.name, time(t.created_at),
      h("button", { type: "button", class: "danger", onclick: async () => {
        if (!confirm(`Remove tenant ${t.name} and everything it owns?`)) return;
        await guarded(() => api("DELETE", `/v1/tenants/${encodeURIComponent(t.name)}`), `Tenant ${t.name} removed.`);
        await p.load();
      } }, "Remove")])), form);
  });
  return p;
}

function membersPanel(tenant) {
  const p = panel(`Users of ${tenant}`, async (body) => {
    const members = await api("GET", "/v1/users");
    const name = h("input", { id: "member-name", required: true });
    const role = h("select", { id: "member-role" }, ROLES.map((r) => h("option", { value: r }, r)));
    const form = h("form", { class: "row" }, field("User", name), field("Role", role), h("button", { type: "submit" }, "Add or change"));
    form.addEventListener("submit", async (e) => {
      e.preventDefault();
      await guarded(() => api("PUT", `/v1/users/${encodeURIComponent(name.value)}`, { body: { role: role.value } }), `${name.value} is ${role.value}.`);
      await p.load();
    });
    clear(body).append(table(["User", "Role", ""], members.map((m) => {
      const pick = h("select", { "aria-label": `Role of ${m.name}` }, ROLES.map((r) => h("option", { value: r, selected: r === m.role }, r)));
      pick.addEventListener("change", async () => {
        await guarded(() => api("PUT", `/v1/users/${encodeURIComponent(m.name)}`, { body: { role: pick.value } }), `${m.name} is ${pick.value}.`);
      });
      return [m.name, pick, h("button", { type: "button", class: "danger", onclick: async () => {
        if (!confirm(`Remove ${m.name} from ${tenant}?`)) return;
        await guarded(() => api("DELETE", `/v1/users/${encodeURIComponent(m.name)}`), `${m.name} removed.`);
        await p.load();
      } }, "Remove")];
    })), form);
  });
  return p;
}

function tokensPanel(tenant, me) {
  const p = panel("API tokens", async (body) => {
    const tokens = await api("GET", "/v1/tokens");
    const user = h("input", { id: "token-user", placeholder: me.user });
    const label = h("input", { id: "token-name" });
    const scoped = h("input", { id: "token-scope", type: "checkbox", checked: true });
    const days = h("input", { id: "token-days", type: "number", min: 0, step: "any", placeholder: "never" });
    const shown = h("div", { "aria-live": "polite" });
    const form = h("form", { class: "row" }, field("User", user), field("Name", label),
      field("Days valid", days), h("div", { class: "field check" }, scoped, h("label", { for: "token-scope" }, `Only ${tenant}`)),
      h("button", { type: "submit" }, "Mint token"));
    form.addEventListener("submit", async (e) => {
      e.preventDefault();
      const made = await guarded(() => api("POST", "/v1/tokens", { body: {
        user: user.value || null, name: label.value, tenant: scoped.checked ? tenant : null,
        expires_in: days.value ? Number(days.value) * 86400 : null } }));
      if (!made) return;
      await p.load();
      clear(shown).append(h("p", { class: "notice" }, "Copy the token now: it is shown this once."),
        h("output", { class: "secret", id: "minted-token" }, made.token));
      body.append(shown);
    });
    clear(body).append(table(["Id", "User", "Tenant", "Name", "Expires", "State", ""], tokens.map((t) => [
      t.id, t.user, t.tenant || "any", t.name, t.expires_at ? time(t.expires_at) : "never",
      t.revoked_at ? `revoked ${time(t.revoked_at)}` : "active",
      t.revoked_at ? "" : h("button", { type: "button", class: "danger", onclick: async () => {
        if (!confirm(`Revoke ${t.id}? Everything it made ends with it.`)) return;
        await guarded(() => api("DELETE", `/v1/tokens/${encodeURIComponent(t.id)}`), `${t.id} revoked.`);
        await p.load();
      } }, "Revoke")])), form);
  });
  return p;
}

function quotasPanel(tenant) {
  const p = panel(`Quotas of ${tenant}`, async (body) => {
    const report = await api("GET", "/v1/quotas");
    const rows = Object.entries(report.quotas).map(([name, q]) => {
      const input = h("input", { type: "number", min: 0, step: "any", value: q.limit ?? "",
        placeholder: "no limit", "aria-label": `Limit of ${name}` });
      const save = h("button", { type: "button", onclick: async () => {
        await guarded(() => api("PUT", "/v1/quotas", { body: { values: { [name]: input.value === "" ? null : Number(input.value) } } }),
          `${name} saved.`);
        await p.load();
      } }, "Save");
      return [name, q.use === null ? "-" : String(q.use), h("span", {}, input, " ", q.unit || ""), q.source || "-", save];
    });
    clear(body).append(quotaBars(tenant, report.quotas), table(["Quota", "Use", "Limit", "Set by", ""], rows));
  });
  return p;
}
