import { api } from "../api.js";
import { h, section, table } from "../dom.js";

export async function settingsView(root) {
  root.append(h("h1", {}, "Settings"));
  const s = await api("GET", "/v1/console/settings");
  const mail = s.integrations.mail;
  root.append(section("Integrations",
    h("p", { class: "muted" }, "Configured by environment."),
    table(["Integration", "State", "Details"], [
      ["Mail (SMTP)", mail.configured ? "configured" : "not configured",
        mail.configured ? `${mail.host}:${mail.port} as ${mail.sender}` : (mail.error || mail.source)],
      ["Object storage", "built-in", "configured by environment"],
      ["Notification channels", "-", "configured by environment"],
    ])));
  root.append(section("Runtimes", table(["Runtime", "Available", "Backends", "Default", "Used by"],
    s.runtimes.map((r) => [r.name, r.available ? "yes" : `no (${r.reason})`,
      Object.entries(r.backends).map(([b, v]) => `${b}: ${v}`).join("; "), r.default ? "yes" : "",
      r.functions.length ? r.functions.join(", ") : "-"]))));
  root.append(section("Sandboxes (doctor)", h("pre", { class: "code" }, JSON.stringify(s.doctor, null, 2))));
}
