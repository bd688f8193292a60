// Each function's triggers (schedules, events, webhooks) and the last run of each.
import { api, currentTenant } from "../api.js";
import { clear, h, section, say, table, time } from "../dom.js";

function what(kind, t) {
  if (kind === "schedule") return `${t.cron} (${t.timezone})`;
  if (kind === "webhook") return `${t.scheme} POST ${t.path}`;
  const events = t.events.join("/");
  if (t.source === "task") return `${t.watched} tasks ${events}`;
  return `storage ${events}${t.prefix ? ` under ${t.prefix}` : ""}`;
}

async function lastRun(taskId) {
  if (!taskId) return "never";
  try {
    const task = await api("GET", `/v1/tasks/${encodeURIComponent(taskId)}`);
    return h("a", { href: `#/tasks/${encodeURIComponent(task.id)}`, "data-task": task.id },
      `${task.status} · ${time(task.created_at)}`);
  } catch {
    return taskId;
  }
}

export async function triggersView(root) {
  const tenant = currentTenant();
  root.append(h("h1", {}, "Triggers"));
  const list = h("div", { id: "trigger-list" });
  root.append(section(`Schedules, events and webhooks of ${tenant}`, list));
  await load(list).catch((error) => say(error.message, "error"));
}

async function load(body) {
  const functions = await api("GET", "/v1/triggers");
  const rows = [];
  for (const f of functions) {
    for (const s of f.schedules) rows.push([f.function, "schedule", s, s.source]);
    for (const e of f.subscriptions) rows.push([f.function, "event", e, e.origin]);
    for (const w of f.webhooks) rows.push([f.function, "webhook", w, "api"]);
  }
  const runs = await Promise.all(rows.map(([, , t]) => lastRun(t.last_task_id)));
  const pause = (s) => {
    const action = s.paused ? "resume" : "pause";
    const button = h("button", { type: "button" }, s.paused ? "Resume" : "Pause");
    button.addEventListener("click", async () => {
      try {
        await api("POST", `/v1/schedules/${encodeURIComponent(s.id)}/${action}`);
        say(`Schedule ${s.id} ${action}d.`);
      } catch (error) {
        say(error.message, "error");
      }
      await load(body);
    });
    return button;
  };
  clear(body).append(rows.length ? table(
    ["Function", "Trigger", "What", "From", "Next", "Last run", ""],
    rows.map(([fn, kind, t, from], i) => [
      fn,
      h("span", { "data-trigger": t.id }, kind),
      what(kind, t),
      from,
      kind === "schedule" ? (t.paused ? "paused" : time(t.next_run_at)) : "-",
      runs[i],
      kind === "schedule" ? pause(t) : "",
    ])) : h("p", {}, "No triggers: functions run when called."));
}
