import { api } from "../api.js";
import { clear, field, h, table, time } from "../dom.js";

const COLUMNS = ["ts", "actor", "actor_kind", "actor_id", "actor_token", "tenant", "action", "target", "result", "client"];

export async function auditView(root, { me }) {
  root.append(h("h1", {}, "Audit log"));
  const actor = h("input", { id: "audit-actor" });
  const action = h("input", { id: "audit-action", placeholder: "deploy, token.create…" });
  const tenant = h("input", { id: "audit-tenant", placeholder: me.owner ? "all tenants" : "current tenant" });
  const since = h("input", { id: "audit-since", type: "datetime-local" });
  const until = h("input", { id: "audit-until", type: "datetime-local" });
  const exportLink = h("a", { class: "button", download: "hyac-audit.csv", href: "#", id: "audit-csv" }, "Export CSV");
  const out = h("div");
  const form = h("form", { class: "row filters" }, field("Actor", actor), field("Action", action),
    field("Tenant", tenant), field("From", since), field("Until", until), h("button", { type: "submit" }, "Filter"), exportLink);
  root.append(form, out);

  async function load() {
    // Until the rows of this filter are in, there is nothing to export: a click right
    // after "Filter" must not download the rows of the filter before.
    const previous = exportLink.getAttribute("href") || "";
    exportLink.removeAttribute("href");
    if (previous.startsWith("blob:")) URL.revokeObjectURL(previous);
    const params = { limit: 2000, since: since.value ? new Date(since.value).getTime() / 1000 : undefined };
    if (me.owner && !me.scope) params.all = "true";
    let rows = await api("GET", "/v1/audit", { params });
    const end = until.value ? new Date(until.value).getTime() / 1000 : Infinity;
    rows = rows.filter((r) => r.ts <= end
      && (!actor.value || r.actor.includes(actor.value))
      && (!action.value || r.action.startsWith(action.value))
      && (!tenant.value || r.tenant === tenant.value))
      .sort((a, b) => b.ts - a.ts);
    exportLink.href = URL.createObjectURL(new Blob([csv(rows)], { type: "text/csv" }));
    clear(out).append(table(["Time", "Actor", "Tenant", "Action", "Target", "Result", "Client"],
      rows.map((r) => [time(r.ts), r.actor, r.tenant || "-", r.action, r.target || "-", String(r.result), r.client || "-"])));
  }
  form.addEventListener("submit", (e) => { e.preventDefault(); load(); });
  await load();
}

function csv(rows) {
  const cell = (v) => {
    let text = v === null || v === undefined ? "" : String(v);
    if (/^[=+\-@\t\r]/.test(text)) text = `'${text}`;  // a spreadsheet must not run a cell
    return /[",\n\r]/.test(text) ? `"${text.replaceAll('"', '""')}"` : text;
  };
  return [COLUMNS.join(","), ...rows.map((r) => COLUMNS.map((c) => cell(r[c])).join(","))].join("\r\n") + "\r\n";
}
