import { api, ApiError } from "../api.js";
import { lineChart } from "../charts.js";
import { h, num, rate, section, table } from "../dom.js";

export async function summary(params) {
  // The metrics endpoint may be absent on an older agent: the view says so and goes on.
  try {
    return await api("GET", "/v1/metrics/summary", { params });
  } catch (error) {
    if (error instanceof ApiError && error.status === 404) return null;
    throw error;
  }
}

export async function overviewView(root, { me }) {
  root.append(h("h1", {}, "Overview"));
  const [info, sums] = await Promise.all([
    api("GET", "/v1/console/overview"),
    summary({ window: 3600, step: 60 }),
  ]);
  const totals = sums ? sums.totals : null;
  root.append(h("div", { class: "stats" },
    stat("Agent", info.status === "ok" ? "healthy" : info.status),
    stat("Version", info.version),
    stat("Requests/s", totals ? rate(totals.requests_per_s) : "-"),
    stat("Error rate", totals ? `${num(totals.error_rate * 100)} %` : "-"),
    stat("p50 / p99", totals ? `${num(totals.p50_ms)} / ${num(totals.p99_ms)} ms` : "-"),
    stat("Cold starts", totals ? totals.cold_starts : "-")));

  const charts = section("Last hour");
  if (!sums) {
    charts.append(h("p", { class: "muted" }, "No data yet: this agent does not report metrics."));
  } else if (!sums.buckets.length || !totals.requests) {
    charts.append(h("p", { class: "muted" }, "No data yet: no invocations in the last hour."));
  }
  if (sums) {
    const times = sums.buckets.map((b) => b.t);
    const col = (key) => sums.buckets.map((b) => b[key]);
    charts.append(h("div", { class: "charts" },
      lineChart("Requests and errors", [
        { name: "requests", values: col("requests"), cls: "s1" },
        { name: "errors", values: col("errors"), cls: "s2" }], times),
      lineChart("Latency (ms)", [
        { name: "p50", values: col("p50_ms"), cls: "s1" },
        { name: "p99", values: col("p99_ms"), cls: "s3" }], times, " ms"),
      lineChart("Cold starts", [{ name: "cold starts", values: col("cold_starts"), cls: "s4" }], times)));
  }
  root.append(charts);

  const queue = Object.entries(info.queue || {});
  root.append(section("Task queue",
    queue.length
      ? h("ul", { class: "chips" }, queue.map(([status, count]) => h("li", {}, `${status}: ${count}`)))
      : h("p", { class: "muted" }, "No tasks.")));

  if (info.sandbox) {
    const runtimes = section("Sandboxes and runtimes",
      h("p", {}, "Backend: ", h("strong", {}, info.sandbox)));
    const waiting = h("p", { class: "muted" }, "Probing runtimes…");
    runtimes.append(waiting);
    root.append(runtimes);
    // Probing takes seconds: the rest of the page does not wait for it.
    api("GET", "/v1/console/runtimes").then((list) => waiting.replaceWith(
      table(["Runtime", "Available", "Backends in force"], list.map((r) => [
        r.name, r.available ? "yes" : `no (${r.reason})`,
        Object.entries(r.backends).map(([b, s]) => `${b}: ${s}`).join("; ")]))),
    (error) => { waiting.textContent = error.message; });
    const pool = info.pool || {};
    root.append(section("Workers and pool",
      h("ul", { class: "chips" }, Object.entries(pool).map(([k, v]) => h("li", {}, `${k}: ${v}`)),
        Object.entries(info.tasks || {}).map(([k, v]) => h("li", {}, `queue ${k}: ${v}`)))));
  }

  const usage = section("Usage against quotas");
  root.append(usage);
  const tenants = (info.tenants || []).slice(0, 20);
  for (const tenant of tenants) {
    try {
      const report = await api("GET", "/v1/quotas", { tenant });
      usage.append(quotaBars(tenant, report.quotas));
    } catch (error) {
      usage.append(h("p", { class: "muted" }, `${tenant}: ${error.message}`));
    }
  }
  if (!tenants.length) usage.append(h("p", { class: "muted" }, "No tenants."));
  void me;
}

function stat(label, value) {
  return h("div", { class: "stat" }, h("span", { class: "label" }, label), h("span", { class: "value" }, value));
}

export function quotaBars(tenant, quotas) {
  const rows = Object.entries(quotas).filter(([, q]) => q.limit !== null && q.use !== null);
  return h("div", { class: "quota" }, h("h3", {}, tenant),
    rows.length ? rows.map(([name, q]) => {
      const id = `q-${tenant}-${name}`;
      return h("div", { class: "bar" },
        h("label", { for: id }, `${name}: ${num(q.use, 0)} / ${num(q.limit, 0)} ${q.unit || ""}`),
        h("meter", { id, min: 0, max: q.limit || 1, value: Math.min(q.use, q.limit || 1),
          high: (q.limit || 1) * 0.8, optimum: 0 }));
    }) : h("p", { class: "muted" }, "No limits set."));
}
