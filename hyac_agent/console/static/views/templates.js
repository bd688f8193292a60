// Templates: browse the registry, read a template's README (as text), see its scan
// result and install count, rate it; the platform owner approves or rejects versions.
import { api } from "../api.js";
import { clear, field, h, num, say, section, table, time } from "../dom.js";

export async function templatesView(root, { me, rest }) {
  if (rest[0]) return templateDetail(root, me, rest[0]);
  root.append(h("h1", {}, "Templates"));
  const query = h("input", { type: "search", name: "q", placeholder: "webhook, mail, node…" });
  const holder = h("div", { id: "template-list" });
  const form = h("form", { class: "filters", onsubmit: (event) => { event.preventDefault(); refresh(); } },
    field("Search", query), h("button", { type: "submit" }, "Search"));
  root.append(form, holder);

  async function refresh() {
    const answer = await api("GET", "/v1/templates", { params: { q: query.value } });
    clear(holder).append(table(["Name", "Title", "Version", "Runtime", "Rating", "Installs", "Source", "Status"],
      answer.templates.map((t) => [
        t.source === "local" ? h("a", { href: `#/templates/${encodeURIComponent(t.name)}` }, t.name) : t.name,
        t.title, t.version, t.runtime, rating(t.rating), t.installs ?? "-",
        t.source === "local" ? (t.builtin ? "built in" : t.publisher) : t.source,
        h("span", { class: `badge ${t.status}` }, t.status),
      ])));
    for (const gone of answer.unreachable) say(`Template source ${gone.source} was not read: ${gone.reason}`, "error");
  }
  await refresh();
}

async function templateDetail(root, me, name) {
  const t = await api("GET", `/v1/templates/${encodeURIComponent(name)}`, { params: { fresh: "true" } });
  root.append(h("p", {}, h("a", { href: "#/templates" }, "← Templates")),
    h("h1", {}, `${t.title}`), h("p", {}, t.description));
  const ratingText = h("span", { id: "template-rating" }, rating(t.rating));
  root.append(section("About",
    h("dl", { class: "facts" },
      fact("Name", `${t.name}@${t.version}`), fact("Runtime", t.runtime),
      fact("Author", t.author), fact("Licence", t.licence), fact("Tags", t.tags.join(", ") || "-"),
      fact("Versions", (t.versions || []).join(", ")), fact("Published", `${time(t.published_at)} by ${t.publisher}`),
      fact("Status", h("span", { class: `badge ${t.status}`, id: "template-status" }, t.status)),
      fact("Installs", String(t.installs)), fact("Rating", ratingText)),
    h("p", {}, "Start a project from it: ", h("code", {}, `hyac init DIR --template ${t.name}`))));
  root.append(section("What it needs", needs(t)));
  root.append(section("Known vulnerabilities", scan(t.scan)));
  root.append(section("README", h("pre", { class: "code", id: "template-readme" }, t.readme || "")));

  const stars = h("select", { name: "stars" }, [5, 4, 3, 2, 1].map((n) => h("option", { value: n }, `${n} ★`)));
  const actions = h("div", { class: "actions" });
  if (t.status === "approved") {
    actions.append(field("Your rating", stars), h("button", { type: "button", onclick: async () => {
      try {
        const now = await api("PUT", `/v1/templates/${encodeURIComponent(t.name)}/rating`, { body: { stars: Number(stars.value) } });
        ratingText.textContent = rating(now);
        say(`Rated ${t.name} ${stars.value}.`);
      } catch (error) { say(error.message, "error"); }
    } }, "Rate"));
  }
  if (me.owner) {
    for (const verb of t.status === "approved" ? ["reject"] : ["approve", "reject"]) {
      actions.append(h("button", { type: "button", onclick: async () => {
        try {
          const now = await api("POST", `/v1/templates/${encodeURIComponent(t.name)}/versions/${encodeURIComponent(t.version)}/${verb}`);
          document.getElementById("template-status").textContent = now.status;
          say(`${t.name}@${t.version}: ${now.status}.`);
        } catch (error) { say(error.message, "error"); }
      } }, verb === "approve" ? `Approve ${t.version}` : `Reject ${t.version}`));
    }
  }
  root.append(section("Rate and review", actions));
}

function fact(label, value) {
  return [h("dt", {}, label), h("dd", {}, value)];
}

function needs(t) {
  const rows = [];
  for (const [key, info] of Object.entries(t.secrets || {})) rows.push(["secret", key, info.description, "-"]);
  for (const [key, info] of Object.entries(t.env || {})) rows.push(["env", key, info.description, info.default ?? "-"]);
  return rows.length ? table(["Kind", "Name", "Description", "Default"], rows) : h("p", { class: "muted" }, "Nothing to set.");
}

function scan(result) {
  if (!result) return h("p", { class: "muted" }, "Not scanned.");
  const head = h("p", {}, h("span", { class: `badge scan-${result.status}`, id: "template-scan" }, result.status),
    result.reason ? ` ${result.reason}` : "");
  if (!result.packages || !result.packages.length) return head;
  return [head, table(["Package", "Version", "Status", "Advisories"], result.packages.map((p) => [
    p.name, p.version || "(not pinned)", p.status,
    p.advisories && p.advisories.length ? p.advisories.map((a) => `${a.id}${a.fixed ? ` (fixed in ${a.fixed})` : ""}`).join(", ")
      : p.reason || "-"]))];
}

function rating(r) {
  return r && r.count ? `${num(r.average, 1)} ★ (${r.count})` : "not rated";
}
