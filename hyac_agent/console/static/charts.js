// Small SVG line charts, drawn here (nothing is fetched from elsewhere).

const SVG = "http://www.w3.org/2000/svg";

function el(tag, attrs = {}) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  return node;
}

// series: [{name, values: [number|null], cls}], times: [seconds]
export function lineChart(title, series, times, unit = "") {
  const width = 480, height = 160, pad = { l: 44, r: 8, t: 10, b: 22 };
  const all = series.flatMap((s) => s.values).filter((v) => v !== null && v !== undefined);
  const max = Math.max(1, ...all);
  const n = Math.max(times.length - 1, 1);
  const x = (i) => pad.l + (i / n) * (width - pad.l - pad.r);
  const y = (v) => height - pad.b - (v / max) * (height - pad.t - pad.b);
  const svg = el("svg", { viewBox: `0 0 ${width} ${height}`, role: "img", class: "chart" });
  const label = el("title");
  const last = series.map((s) => `${s.name} ${fmt(lastValue(s.values))}${unit}`).join(", ");
  label.textContent = `${title}: ${last || "no data"}`;
  svg.append(label);
  for (const frac of [0, 0.5, 1]) {
    svg.append(el("line", { x1: pad.l, x2: width - pad.r, y1: y(max * frac), y2: y(max * frac), class: "grid" }));
    const tick = el("text", { x: pad.l - 4, y: y(max * frac) + 4, class: "tick", "text-anchor": "end" });
    tick.textContent = fmt(max * frac);
    svg.append(tick);
  }
  if (times.length) {
    for (const [i, anchor] of [[0, "start"], [times.length - 1, "end"]]) {
      const tick = el("text", { x: x(i), y: height - 6, class: "tick", "text-anchor": anchor });
      tick.textContent = new Date(times[i] * 1000).toLocaleTimeString(undefined, { hour12: false, hour: "2-digit", minute: "2-digit" });
      svg.append(tick);
    }
  }
  for (const s of series) {
    const points = s.values.map((v, i) => (v === null || v === undefined ? null : `${x(i)},${y(v)}`));
    svg.append(el("polyline", { points: points.filter(Boolean).join(" "), class: `line ${s.cls}` }));
    // Dots as well: a lone bucket with data draws no line.
    s.values.forEach((v, i) => {
      if (v !== null && v !== undefined && v > 0) svg.append(el("circle", { cx: x(i), cy: y(v), r: 2.5, class: `dot ${s.cls}` }));
    });
  }
  const legend = document.createElement("p");
  legend.className = "legend";
  for (const s of series) {
    const item = document.createElement("span");
    item.className = `key ${s.cls}`;
    item.textContent = s.name;
    legend.append(item);
  }
  const figure = document.createElement("figure");
  figure.className = "chart-box";
  const caption = document.createElement("figcaption");
  caption.textContent = title;
  figure.append(caption, svg, legend);
  return figure;
}

function lastValue(values) {
  for (let i = values.length - 1; i >= 0; i--) if (values[i] !== null && values[i] !== undefined) return values[i];
  return null;
}

function fmt(v) {
  if (v === null || v === undefined) return "-";
  if (v >= 100) return Math.round(v).toString();
  return (Math.round(v * 10) / 10).toString();
}
