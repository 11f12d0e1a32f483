import { ApiError } from "./api.js";
import { t } from "./i18n.js";

// Building the page from data without innerHTML: every value becomes a text node.
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (name.startsWith("on") && typeof value === "function") el.addEventListener(name.slice(2), value);
    else if (name === "class") el.className = value;
    else if (name === "text") el.textContent = value;
    else el.setAttribute(name, value === true ? "" : String(value));
  }
  append(el, children);
  return el;
}

export function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

export function clear(el) {
  while (el.firstChild) el.firstChild.remove();
  return el;
}

export function message(kind, ...children) {
  return h("div", { class: `msg ${kind}`, role: kind === "error" ? "alert" : "status" }, ...children);
}

export function table(caption, headers, rows) {
  return h(
    "div",
    { class: "table-wrap" },
    h(
      "table",
      {},
      caption ? h("caption", { class: "muted" }, caption) : null,
      h("thead", {}, h("tr", {}, headers.map((x) => h("th", { scope: "col", class: x.num ? "num" : null }, x.label ?? x)))),
      h("tbody", {}, rows.map((cells) => h("tr", {}, cells.map((c, i) => h("td", { class: headers[i]?.num ? "num" : null }, c))))),
    ),
  );
}

export function problem(err) {
  if (err instanceof ApiError) return message("error", t("error", { status: err.status, message: err.message }));
  return message("error", String(err && err.message ? err.message : err));
}

// A page whose endpoint this server lacks: said plainly, never filled with made-up data.
export function unavailable(path) {
  return message("unavailable", t("unavailable", { path }));
}
