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

// Every titled part of a page: a section `id` headed `title` (`${id}-title`) for the first of
// `candidates` this server has. `path` is that endpoint, or null: then the section already says
// the server lacks it (data-available="false") and the caller adds nothing.
export async function panel(title, id, candidates) {
  const box = h("section", { id, "aria-labelledby": `${id}-title` }, h("h3", { id: `${id}-title` }, title));
  const path = await firstPath(candidates);
  box.dataset.available = path === null ? "false" : "true";
  if (path === null) box.append(unavailable(candidates[0]));
  return { box, path };
}

// A panel showing the answer of its endpoint.
export async function section(title, id, candidates, show = view) {
  const { box, path } = await panel(title, id, candidates);
  if (path === null) return box;
  const body = h("div", { id: `${id}-body` });
  box.append(body);
  try {
    body.append(show(await get(path)));
  } catch (err) {
    clear(body).append(problem(err));
  }
  return box;
}
