// The console's shell: sign-in, navigation between views, the tenant picker.

import { api, setCsrf, setTenant, signIn, signOut, whoami } from "./api.js";
import { clear, h } from "./dom.js";
import { adminView } from "./views/admin.js";
import { auditView } from "./views/audit.js";
import { domainsView } from "./views/domains.js";
import { editorView } from "./views/editor.js";
import { functionsView } from "./views/functions.js";
import { logsView } from "./views/logs.js";
import { notificationsView } from "./views/notifications.js";
import { overviewView } from "./views/overview.js";
import { settingsView } from "./views/settings.js";
import { tasksView } from "./views/tasks.js";
import { templatesView } from "./views/templates.js";
import { triggersView } from "./views/triggers.js";

const RANK = { viewer: 1, developer: 2, admin: 3 };

// Who may see a view: mirrors what the API answers (it refuses the rest anyway).
const VIEWS = [
  { id: "overview", title: "Overview", render: overviewView, may: () => true },
  { id: "functions", title: "Functions", render: functionsView, may: () => true },
  { id: "logs", title: "Logs", render: logsView, may: () => true },
  { id: "tasks", title: "Tasks", render: tasksView, may: () => true },
  { id: "triggers", title: "Triggers", render: triggersView, may: () => true },
  { id: "templates", title: "Templates", render: templatesView, may: () => true },
  { id: "domains", title: "Domains & IP rules", render: domainsView, may: () => true },
  { id: "notifications", title: "Notifications", render: notificationsView, may: () => true },
  { id: "admin", title: "Tenants & access", render: adminView, may: (me) => isAdmin(me) },
  { id: "audit", title: "Audit", render: auditView, may: (me) => isAdmin(me) },
  { id: "settings", title: "Settings", render: settingsView, may: (me) => me.owner },
  // opened from a function's page, not from the navigation
  { id: "edit", title: "Editor", render: editorView, may: () => true, hidden: true },
];

export function isAdmin(me, tenant) {
  if (me.owner) return true;
  const roles = Object.entries(me.roles || {}).filter(([t]) => !me.scope || t === me.scope);
  return roles.some(([t, role]) => (!tenant || t === tenant) && RANK[role] >= RANK.admin);
}

const state = { me: null, stop: null };

function main() { return document.getElementById("main"); }

function route() {
  const hash = location.hash.replace(/^#\/?/, "");
  const [id, ...rest] = hash.split("/");
  return { id: id || "overview", rest: rest.map(decodeURIComponent) };
}

async function show() {
  if (state.stop) { state.stop(); state.stop = null; }
  const { id, rest } = route();
  const view = VIEWS.find((v) => v.id === id) || VIEWS[0];
  for (const link of document.querySelectorAll("#nav a")) {
    if (link.dataset.view === view.id) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  // A fresh container per view: a slower view still rendering after the user moved on
  // fills a detached node, not the page (nor does it take the new view's focus).
  const root = h("div", { class: "view" });
  clear(main()).append(root);
  if (!view.may(state.me)) {
    root.append(h("h1", {}, view.title), h("p", { class: "notice" },
      "This view needs an administrator of the tenant or the platform owner."));
    return;
  }
  document.title = `${view.title} · Hyac console`;
  try {
    const stop = (await view.render(root, { me: state.me, rest })) || null;
    if (root.isConnected) state.stop = stop;
    else if (stop) stop();  // the user left while it rendered
  } catch (error) {
    root.append(h("p", { class: "error", role: "alert" }, error.message));
  }
}

function renderNav() {
  const nav = clear(document.getElementById("nav"));
  nav.append(h("ul", {}, VIEWS.filter((v) => !v.hidden && v.may(state.me)).map((v) =>
    h("li", {}, h("a", { href: `#/${v.id}`, "data-view": v.id }, v.title)))));
  nav.hidden = false;
}

async function renderTenants() {
  const select = clear(document.getElementById("tenant"));
  let tenants = [];
  try { tenants = (await api("GET", "/v1/tenants")).map((t) => t.name); } catch { /* none visible */ }
  if (state.me.scope) tenants = [state.me.scope];
  if (!tenants.length) tenants = ["default"];
  const saved = sessionStorage.getItem("hyac-tenant");
  const chosen = tenants.includes(saved) ? saved : (tenants.includes("default") ? "default" : tenants[0]);
  for (const name of tenants) select.append(h("option", { value: name, selected: name === chosen }, name));
  setTenant(chosen);
  select.onchange = () => {
    setTenant(select.value);
    sessionStorage.setItem("hyac-tenant", select.value);
    show();
  };
}

function signInPage(message) {
  document.getElementById("nav").hidden = true;
  document.getElementById("who").hidden = true;
  const token = h("input", { type: "password", id: "token", autocomplete: "off", required: true });
  const form = h("form", { class: "card signin", "aria-labelledby": "signin-title" },
    h("h1", { id: "signin-title" }, "Sign in to Hyac"),
    h("p", { class: "muted" }, "Run ", h("code", {}, "hyac console"),
      " to open a one-time sign-in link, or paste an API token."),
    message ? h("p", { class: "error", role: "alert" }, message) : null,
    h("div", { class: "field" }, h("label", { for: "token" }, "API token"), token),
    h("button", { type: "submit" }, "Sign in"));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      await signIn({ token: token.value });
      token.value = "";
      await start();
    } catch (error) {
      signInPage(error.message);
    }
  });
  clear(main()).append(form);
  token.focus();
}

async function start() {
  const me = await whoami();
  if (!me) { signInPage(); return; }
  state.me = me;
  setCsrf(me.csrf);
  document.getElementById("user").textContent = me.owner && me.user !== "owner" ? `${me.user} (owner)` : me.user;
  document.getElementById("who").hidden = false;
  await renderTenants();
  renderNav();
  if (!location.hash || location.hash.startsWith("#code=")) history.replaceState(null, "", "#/overview");
  await show();
}

async function boot() {
  document.getElementById("signout").addEventListener("click", async () => {
    await signOut();
    state.me = null;
    setCsrf(null);
    signInPage("Signed out.");
  });
  let navigation = 0;
  window.addEventListener("hashchange", async () => {
    if (!state.me) return;
    const mine = ++navigation;
    await show();
    // Keyboard and screen-reader users land on the new view, not the nav; but not when
    // the user has moved on meanwhile (a slow view finishing late), nor away from where
    // they already clicked inside the view (the editor).
    if (mine === navigation && !main().contains(document.activeElement)) main().focus();
  });
  window.addEventListener("hyac:signed-out", () => {
    if (state.me) { state.me = null; signInPage("Your session ended; sign in again."); }
  });
  const match = location.hash.match(/^#code=([A-Za-z0-9_-]+)/);
  if (match) {
    // The code is single-use; take it out of the address bar and history at once.
    history.replaceState(null, "", location.pathname);
    try {
      await signIn({ code: match[1] });
    } catch (error) {
      signInPage(error.message);
      return;
    }
  }
  await starting();
}

// Signed-in state could not be read (the agent down, the network gone): say so where the
// page would be, with a way to try again, not "Loading…" for good.
async function starting() {
  try {
    await start();
  } catch (error) {
    const again = h("button", { type: "button" }, "Try again");
    again.addEventListener("click", () => {
      clear(main()).append(h("p", { class: "muted" }, "Loading…"));
      starting();
    });
    clear(main()).append(h("div", { class: "card" },
      h("p", { class: "error", role: "alert" }, `The console could not start: ${error.message}`),
      again));
  }
}

boot();
