import { api, stream } from "../api.js";
import { clear, h, num, say, section, table, time, unb64 } from "../dom.js";

const LIVE = new Set(["queued", "running", "failed"]);  // failed: a retry is due
const REVIVABLE = new Set(["dead", "cancelled"]);

export async function tasksView(root, { rest }) {
  root.append(h("h1", {}, "Tasks"));
  const holder = h("div", { id: "task-list" });
  const detail = h("div", { id: "task-detail" });
  root.append(holder, detail);
  let stopDetail = null;

  async function refresh() {
    const tasks = await api("GET", "/v1/tasks", { params: { limit: 100 } });
    clear(holder).append(table(["Task", "Function", "Started by", "Status", "Progress", "Attempts", "Error", ""],
      tasks.map((t) => [
        h("a", { href: `#/tasks/${t.id}` }, t.id),
        `${t.function} v${t.version}`,
        h("span", { "data-task-trigger": t.id }, t.trigger ? `${t.trigger.kind} ${t.trigger.id}` : "a call"),
        h("span", { class: `badge ${t.status}`, "data-task-status": t.id }, t.status),
        progress(t),
        `${t.attempt} / ${t.max_attempts}`,
        t.error ? `${t.error.code}: ${t.error.message}` : "",
        h("span", { class: "actions" },
          LIVE.has(t.status) ? h("button", { type: "button", "data-cancel": t.id, onclick: () => act(t.id, "cancel") }, "Cancel") : null,
          REVIVABLE.has(t.status) ? h("button", { type: "button", onclick: () => act(t.id, "retry") }, "Retry") : null),
      ])));
  }

  async function act(id, what) {
    try {
      await api("POST", `/v1/tasks/${encodeURIComponent(id)}/${what}`);
      say(`Task ${id}: ${what === "cancel" ? "cancelled" : "queued again"}.`);
      await refresh();
    } catch (error) {
      say(error.message, "error");
    }
  }

  function showTask(id) {
    const history = h("ol", { class: "events" });
    const result = h("pre", { class: "code" });
    clear(detail).append(section(`Task ${id}`, h("h3", {}, "Status and progress, as they change"), history,
      h("h3", {}, "Result"), result));
    stopDetail = stream(`/v1/tasks/${encodeURIComponent(id)}/events`, {}, (_event, t) => {
      history.append(h("li", {}, `${time(t.finished_at || t.started_at || t.created_at)} — ${t.status}, attempt ${t.attempt}`,
        t.progress !== null ? `, ${num(t.progress * 100, 0)} %` : "", t.progress_message ? ` (${t.progress_message})` : ""));
      result.textContent = t.result ? `${t.result.status}\n${unb64(t.result.body_b64)}`
        : t.error ? `${t.error.code}: ${t.error.message}\n${t.error.traceback || ""}`
        : LIVE.has(t.status) ? "(none yet)" : "(none)";
    });
  }

  await refresh();
  if (rest[0]) showTask(rest[0]);
  const timer = setInterval(() => refresh().catch((error) => say(error.message, "error")), 1000);
  return () => { clearInterval(timer); if (stopDetail) stopDetail(); };
}

function progress(t) {
  const value = t.progress === null || t.progress === undefined ? null : Math.max(0, Math.min(1, t.progress));
  return h("span", { class: "progress" },
    h("progress", { max: 1, value: value ?? undefined, "data-task": t.id,
      "aria-label": `Progress of ${t.id}` }),
    value !== null ? ` ${num(value * 100, 0)} %` : "",
    t.progress_message ? ` ${t.progress_message}` : "");
}
