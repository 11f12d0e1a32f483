// Showing answers of endpoints this console does not know field by field (the catalogue and
// auditor APIs): a list of objects as a table, an object as a definition list.
import { firstPath, get } from "../api.js";
import { clear, h, problem, table, unavailable } from "../dom.js";
import { t } from "../i18n.js";

function cell(value) {
  if (value === null || value === undefined) return "–";
  if (typeof value === "object") return h("code", {}, JSON.stringify(value));
  return String(value);
}

function rows(list) {
  if (list.length === 0) return h("p", {}, t("empty"));
  if (typeof list[0] !== "object" || list[0] === null) return h("ul", {}, list.map((x) => h("li", {}, String(x))));
  const columns = [...new Set(list.flatMap((row) => Object.keys(row)))];
  return table(null, columns, list.map((row) => columns.map((c) => cell(row[c]))));
}

// A list as a table; an object as its plain values, each list in it folded under its name.
export function view(data) {
  if (Array.isArray(data)) return rows(data);
  const entries = Object.entries(data || {});
  const plain = entries.filter(([, v]) => !Array.isArray(v));
  const lists = entries.filter(([, v]) => Array.isArray(v));
  return h(
    "div",
    {},
    plain.length ? h("dl", { class: "plain" }, plain.flatMap(([k, v]) => [h("dt", {}, k), h("dd", {}, cell(v))])) : null,
    lists.map(([k, v]) => h("details", {}, h("summary", {}, `${k} (${v.length})`), rows(v))),
  );
}

// A section that reads the first of `candidates` the server has, or says it has none.
export async function section(title, id, candidates, show = view) {
  const body = h("div", { id: `${id}-body` });
  const out = h("section", { id, "aria-labelledby": `${id}-title` }, h("h3", { id: `${id}-title` }, title), body);
  const path = await firstPath(candidates);
  if (path === null) {
    body.append(unavailable(candidates[0]));
    out.dataset.available = "false";
    return out;
  }
  out.dataset.available = "true";
  try {
    body.append(show(await get(path)));
  } catch (err) {
    clear(body).append(problem(err));
  }
  return out;
}
