// Small inline SVG pictures: a sparkline and a horizontal bar chart.
const NS = "http://www.w3.org/2000/svg";

function el(tag, attrs = {}, text) {
  const node = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  if (text !== undefined) node.textContent = text;
  return node;
}

export function sparkline(values, label, { width = 120, height = 28 } = {}) {
  const svg = el("svg", { width, height, viewBox: `0 0 ${width} ${height}`, class: "spark", role: "img", "aria-label": label });
  svg.append(el("title", {}, label));
  if (values.length === 0) return svg;
  if (values.length === 1) values = [values[0], values[0]]; // one run: a level line, not a dot
  const max = Math.max(...values, 1);
  const step = values.length > 1 ? (width - 4) / (values.length - 1) : 0;
  const points = values.map((v, i) => `${(2 + i * step).toFixed(1)},${(height - 2 - (v / max) * (height - 4)).toFixed(1)}`);
  svg.append(el("polyline", { points: points.join(" "), fill: "none", stroke: "#0b5394", "stroke-width": 2 }));
  const [x, y] = points[points.length - 1].split(",");
  svg.append(el("circle", { cx: x, cy: y, r: 2.5, fill: "#0b5394" }));
  return svg;
}

// bars: [{label, value (0..1 or null)}]
export function barChart(bars, title, { width = 720, barHeight = 22, labelWidth = 190 } = {}) {
  const top = 28;
  const height = top + bars.length * (barHeight + 6) + 24;
  const plot = width - labelWidth - 60;
  const svg = el("svg", { viewBox: `0 0 ${width} ${height}`, width, class: "chart", role: "img", "aria-label": title });
  svg.append(el("title", {}, title));
  svg.append(el("text", { x: 0, y: 16, "font-size": 14, "font-weight": "bold" }, title));
  for (const tick of [0, 0.25, 0.5, 0.75, 1]) {
    const x = labelWidth + tick * plot;
    svg.append(el("line", { x1: x, x2: x, y1: top - 4, y2: height - 20, stroke: "#d0d7de" }));
    svg.append(el("text", { x, y: height - 6, "font-size": 11, "text-anchor": "middle", fill: "#57606a" }, `${tick * 100}%`));
  }
  bars.forEach((bar, i) => {
    const y = top + i * (barHeight + 6);
    svg.append(el("text", { x: labelWidth - 6, y: y + barHeight * 0.7, "font-size": 12, "text-anchor": "end" }, bar.label));
    const value = bar.value ?? 0;
    const color = bar.value === null ? "#d0d7de" : value >= 0.9 ? "#1a7f37" : value >= 0.7 ? "#9a6700" : "#b3261e";
    svg.append(el("rect", { x: labelWidth, y, width: Math.max(1, value * plot), height: barHeight, fill: color, rx: 2 }));
    svg.append(el("text", { x: labelWidth + value * plot + 4, y: y + barHeight * 0.7, "font-size": 12 }, bar.text));
  });
  return svg;
}
