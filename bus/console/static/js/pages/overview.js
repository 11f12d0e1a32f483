// Overview: each dataset's topics as the ward → district → city tree, red where stuck.
import { get } from "../api.js";
import { clear, h } from "../dom.js";
import { lang, number, t, when } from "../i18n.js";

function figure(label, value, title) {
  return h("div", { title }, h("dt", {}, label), h("dd", {}, value));
}

// A reason from the server: translated by its code, its English message when the code is new.
function reason(why) {
  const key = `ov.why.${why.code}`;
  const text = t(key, why);
  return text === key ? why.message : text;
}

function nodeCard(node) {
  const lag = Object.values(node.lag).reduce((a, b) => a + b, 0);
  const lagTitle = Object.entries(node.lag).map(([g, n]) => `${g}: ${n}`).join("\n");
  const last = node.last_run;
  const stuck = node.stuck.length > 0;
  return h(
    "div",
    { class: `node${stuck ? " stuck" : ""}`, "data-unit": node.unit, "data-stuck": stuck ? "true" : "false" },
    h("div", { class: "title" }, `${node.unit_name} (${node.unit})`, " · ", t(`level.${node.level}`), stuck ? h("span", { class: "why" }, ` – ${t("ov.stuck")}`) : null),
    h("div", { class: "topic" }, node.topic),
    h(
      "dl",
      {},
      figure(t("ov.records"), number(node.records)),
      figure(t("ov.events24"), number(node.events_24h)),
      figure(t("ov.lag"), number(lag), lagTitle),
      figure(t("ov.dlq"), number(node.dlq)),
      figure(
        t("ov.lastrun"),
        last ? h("span", { class: `status-${last.status}` }, `${last.status} · ${when(last.started_at)}`) : t("ov.never"),
        last ? `${last.kind} ${last.name}: ${last.rows_in} → ${last.rows_out}` : "",
      ),
    ),
    stuck ? h("ul", { class: "why" }, node.stuck.map((why) => h("li", { "data-code": why.code, title: why.message }, reason(why)))) : null,
  );
}

function tree(nodes, parent) {
  const children = nodes.filter((n) => (parent === null ? !nodes.some((m) => m.unit === n.parent) : n.parent === parent));
  if (children.length === 0) return null;
  return h(
    "ul",
    { class: parent === null ? "tree" : null, role: parent === null ? "list" : null },
    children.map((n) => h("li", {}, nodeCard(n), tree(nodes, n.unit))),
  );
}

export async function render(root) {
  const data = await get("/overview");
  clear(root).append(h("h2", {}, t("ov.title")), h("p", { class: "muted" }, t("ov.legend")));
  if (data.datasets.length === 0) root.append(h("p", {}, t("ov.none")));
  for (const ds of data.datasets) {
    const description = ds.description[lang()] || ds.description.vi || "";
    root.append(
      h(
        "section",
        { "aria-labelledby": `ds-${ds.name}` },
        h("h3", { id: `ds-${ds.name}` }, ds.name, description ? ` – ${description}` : ""),
        h("p", { class: "muted" }, t("ov.publisher", { publisher: ds.publisher })),
        tree(ds.nodes, null),
      ),
    );
  }
}
