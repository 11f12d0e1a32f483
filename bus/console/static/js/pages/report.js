// The QĐ 766 on-time report: chart (inline SVG), table, CSV download, per ward/district/month.
import { download, get } from "../api.js";
import { clear, h, problem, table } from "../dom.js";
import { number, rate, t, when } from "../i18n.js";
import { barChart } from "../svg.js";

function lastMonth() {
  const d = new Date();
  d.setDate(1);
  d.setMonth(d.getMonth() - 1);
  return `${d.getFullYear()}-${String(d.getMonth() + 1).padStart(2, "0")}`;
}

function query(form) {
  const params = new URLSearchParams({ month: form.month.value, level: form.level.value });
  if (form.unit.value.trim()) params.set("unit", form.unit.value.trim());
  return params;
}

function show(out, data) {
  const units = data.rows.filter((r) => r.field === "all");
  clear(out).append(
    h("p", { class: "muted" }, t("rp.source", { source: data.source, dossiers: number(data.dossiers), as_of: when(data.as_of) })),
    barChart(
      units.map((r) => ({ label: r.unit_name, value: r.on_time_rate, text: rate(r.on_time_rate) })),
      t("rp.chart", { month: data.month }),
    ),
    h("p", { id: "report-total" }, h("strong", {}, t("rp.total", { name: data.total.unit_name, rate: rate(data.total.on_time_rate) }))),
    table(
      null,
      [
        t("rp.unitcol"), t("rp.field"),
        { label: t("rp.received"), num: true }, { label: t("rp.resolved"), num: true },
        { label: t("rp.early"), num: true }, { label: t("rp.ontime"), num: true }, { label: t("rp.late"), num: true },
        { label: t("rp.open"), num: true }, { label: t("rp.overdue"), num: true }, { label: t("rp.rate"), num: true },
      ],
      data.rows.map((r) => [
        `${r.unit_name} (${r.unit})`,
        r.field === "all" ? t("rp.all") : r.field,
        number(r.received), number(r.resolved), number(r.resolved_early), number(r.resolved_on_time),
        number(r.resolved_late), number(r.open), number(r.overdue), rate(r.on_time_rate),
      ]),
    ),
  );
}

async function saveCsv(form, status) {
  const params = query(form);
  params.set("format", "csv");
  clear(status);
  try {
    await download(`/reports/on-time?${params}`, `on-time-${form.month.value}.csv`);
  } catch (err) {
    status.append(problem(err));
  }
}

export async function render(root, { me }) {
  const out = h("section", { id: "report-out", "aria-live": "polite" });
  const status = h("div", { "aria-live": "polite" });
  const levels = ["ward", "district", "city"];
  const form = h(
    "form",
    { class: "row", "aria-label": t("rp.title") },
    h("div", {}, h("label", { for: "rp-month" }, t("rp.month")), h("input", { id: "rp-month", name: "month", type: "month", required: true, value: sessionStorage.getItem("lgsp.report.month") || lastMonth() })),
    h("div", {}, h("label", { for: "rp-level" }, t("rp.level")), h("select", { id: "rp-level", name: "level" }, levels.map((l) => h("option", { value: l }, t(`level.${l}`))))),
    h("div", {}, h("label", { for: "rp-unit" }, t("rp.unit")), h("input", { id: "rp-unit", name: "unit", inputmode: "numeric", pattern: "[0-9]*", size: 8 })),
    h("div", { class: "actions" }, h("button", { type: "submit", id: "rp-show" }, t("rp.show")), h("button", { type: "button", class: "secondary", id: "rp-csv", onclick: () => saveCsv(form, status) }, t("rp.csv"))),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    sessionStorage.setItem("lgsp.report.month", form.month.value);
    clear(status);
    clear(out).append(h("p", { class: "muted" }, t("loading")));
    try {
      show(out, await get(`/reports/on-time?${query(form)}`));
    } catch (err) {
      clear(out).append(problem(err));
    }
  });
  clear(root).append(h("h2", {}, t("rp.title")), form, status, out);
  void me;
}
