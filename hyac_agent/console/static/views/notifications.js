// Notification channels and their delivery log: the tenant's, and for the platform
// owner the platform's channels and alert rules. Channel URLs go in and never come back.
import { api, currentTenant } from "../api.js";
import { clear, field, h, section, say, table, time } from "../dom.js";

const TYPES = ["slack", "discord", "teams", "webhook", "email"];
const KINDS = ["task_dead", "error_rate", "quota", "sandbox_unavailable", "vulnerabilities",
  "agent_restarted"];

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

export async function notificationsView(root, { me }) {
  const tenant = currentTenant();
  root.append(h("h1", {}, "Notifications"));
  const parts = [["/v1/notify", `Channels of ${tenant}`, `Deliveries sent by ${tenant}`]];
  if (me.owner) parts.push(["/v1/notify/platform", "Platform channels", "Platform deliveries"]);
  const loads = [];
  for (const [base, channelsTitle, deliveriesTitle] of parts) {
    const channels = h("div", { "data-channels": base });
    const deliveries = h("div", { "data-deliveries": base });
    root.append(section(channelsTitle, channels), section(deliveriesTitle, deliveries));
    const reload = () => loadDeliveries(base, deliveries);
    loads.push(loadChannels(base, channels, reload), reload());
  }
  if (me.owner) {
    const rules = h("div", { id: "alert-rules" });
    root.append(section("Alert rules", rules));
    loads.push(loadRules(rules));
  }
  await Promise.all(loads.map((p) => p.catch((error) => say(error.message, "error"))));
}

async function loadChannels(base, body, reloadDeliveries) {
  const list = await api("GET", `${base}/channels`);
  const platform = base.endsWith("/platform");
  const name = h("input", { required: true, placeholder: "ops" });
  const type = h("select", {}, TYPES.map((t) => h("option", { value: t }, t)));
  const target = h("input", { required: true, type: "password", autocomplete: "off",
    placeholder: "webhook URL, or recipients for email (comma-separated)" });
  const shared = h("input", { type: "checkbox" });
  const form = h("form", { class: "row" }, field("Name", name), field("Type", type),
    field("URL or recipients", target), platform ? field("Shared with tenants", shared) : null,
    h("button", { type: "submit" }, "Add channel"));
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const payload = { name: name.value, type: type.value, shared: shared.checked };
    if (type.value === "email") payload.to = target.value.split(",").map((s) => s.trim()).filter(Boolean);
    else payload.url = target.value;
    const made = await guarded(() => api("POST", `${base}/channels`, { body: payload }),
      `Channel ${name.value} added.`);
    if (made && made.signing_key) {
      say(`Signing key of ${made.name} (shown once, keep it now): ${made.signing_key}`);
    }
    await loadChannels(base, body, reloadDeliveries);
  });
  const path = (c) => `${base}/channels/${encodeURIComponent(c.name)}`;
  const own = list.filter((c) => platform || !c.platform);
  clear(body).append(table(["Channel", "Type", "Target", "Shared", ""], list.map((c) => [
    h("span", { "data-channel": c.name }, c.name), c.type, c.target, c.shared ? "yes" : "",
    own.includes(c) ? h("span", { class: "actions" },
      h("button", { type: "button", onclick: async () => {
        await guarded(() => api("POST", `${path(c)}/test`), `Test notification to ${c.name} queued.`);
        setTimeout(reloadDeliveries, 1500);
      } }, "Test"),
      h("button", { type: "button", class: "danger", onclick: async () => {
        if (!confirm(`Remove the channel ${c.name}?`)) return;
        await guarded(() => api("DELETE", path(c)), `Channel ${c.name} removed.`);
        await loadChannels(base, body, reloadDeliveries);
      } }, "Remove")) : "",
  ]), "Functions send with context.notify(channel, text, fields)."), form);
}

async function loadDeliveries(base, body) {
  const list = await api("GET", `${base}/deliveries?limit=50`);
  const refresh = h("button", { type: "button", onclick: () => loadDeliveries(base, body) }, "Refresh");
  clear(body).append(table(["When", "Channel", "From", "Status", "Attempts", "Text", "Last error"],
    list.map((d) => [time(d.created_at), d.channel, d.source,
      h("span", { class: `badge ${d.status}`, "data-delivery": d.id }, d.status),
      String(d.attempts), d.text, d.last_error || ""]), "Newest first."), refresh);
}

async function loadRules(body) {
  const { rules, active } = await api("GET", "/v1/notify/alerts");
  const kind = h("select", {}, KINDS.map((k) => h("option", { value: k }, k)));
  const channel = h("input", { required: true, placeholder: "a platform channel" });
  const form = h("form", { class: "row" }, field("Alert", kind), field("Channel", channel),
    h("button", { type: "submit" }, "Add rule"));
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    await guarded(() => api("POST", "/v1/notify/alerts",
      { body: { kind: kind.value, channel: channel.value } }), `Alert rule added: ${kind.value}.`);
    await loadRules(body);
  });
  clear(body).append(table(["Rule", "Alert", "Channel", ""], rules.map((r) => [
    String(r.id), r.kind, r.channel,
    h("button", { type: "button", class: "danger", onclick: async () => {
      await guarded(() => api("DELETE", `/v1/notify/alerts/${r.id}`), `Rule ${r.id} removed.`);
      await loadRules(body);
    } }, "Remove"),
  ])), table(["Firing since", "Condition"], active.map((a) => [time(a.since), a.title]),
    "Conditions firing now (each sends once, and again when resolved)."), form);
}
