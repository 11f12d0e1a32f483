// Datasets and grants: the catalogue with fields and PII marks, "who owns this attribute",
// a publisher's grant form, the grants and the access log, from the catalogue API when this
// server has it (else said plainly, never made up).
import { get, paths, request } from "../api.js";
import { clear, h, message, problem, table } from "../dom.js";
import { lang, t } from "../i18n.js";
import { accessLog } from "./access_log.js";
import { panel, section, view } from "./generic.js";

function catalogue(list) {
  if (!Array.isArray(list) || (list.length && !("pii" in list[0]))) return view(list);
  if (list.length === 0) return h("p", {}, t("empty"));
  return table(
    null,
    [t("ds.name"), t("ds.publisher"), t("ds.description"), t("ds.fields"), t("ds.pii"), t("ds.legal")],
    list.map((d) => [
      h("strong", {}, d.name),
      d.publisher,
      (lang() === "en" ? d.description_en : d.description_vi) || d.description_vi || "",
      (d.fields || []).join(", "),
      (d.pii || []).join(", "),
      d.legal_basis || "",
    ]),
  );
}

// Grants as people read them: the fields listed, PII and status in words, the status marked.
function grantTable(list) {
  if (!Array.isArray(list) || (list.length && !("allow_pii" in list[0]))) return view(list);
  if (list.length === 0) return h("p", {}, t("empty"));
  return table(
    null,
    [t("gr.id"), t("ds.name"), t("ds.agency"), t("ds.purpose"), t("ds.legal"), t("ds.fields"), t("ds.pii"), t("ds.expires"), t("gr.status")],
    list.map((g) => [
      String(g.id),
      g.dataset,
      g.agency,
      g.purpose,
      g.legal_basis,
      (g.fields || []).join(", "),
      g.allow_pii ? t("gr.yes") : t("gr.no"),
      g.expires,
      h("span", { class: g.status === "live" ? "status-ok" : "status-failed", "data-status": g.status }, t(`gr.${g.status}`)),
    ]),
  );
}

async function searchBox() {
  const SEARCH = "/v1/datasets/search";
  const out = h("div", { id: "ds-search-out", "aria-live": "polite" });
  const { box, path } = await panel(t("ds.search"), "ds-search", [SEARCH]);
  if (path === null) return box;
  const input = h("input", { id: "ds-attr", name: "q", type: "search", required: true });
  const form = h("form", { class: "row" }, h("div", {}, h("label", { for: "ds-attr" }, t("ds.attribute")), input), h("div", {}, h("button", { type: "submit" }, t("ds.search.go"))));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      const found = await get(`${path}?${new URLSearchParams({ q: input.value })}`);
      clear(out).append(
        found.owner
          ? message("ok", t("ds.owner", found.owner))
          : h("p", {}, t("ds.noowner", { q: found.q ?? input.value })),
        view(found.hits ?? found),
      );
    } catch (err) {
      clear(out).append(problem(err));
    }
  });
  box.append(form, out);
  return box;
}

// A publisher grants fields of its dataset; field errors of a 422 are shown beside the fields.
function grantForm(refresh) {
  const inputs = {
    dataset: h("input", { id: "gr-dataset", name: "dataset", required: true }),
    agency: h("input", { id: "gr-agency", name: "agency", required: true }),
    purpose: h("input", { id: "gr-purpose", name: "purpose", required: true }),
    legal_basis: h("input", { id: "gr-legal", name: "legal_basis", required: true }),
    fields: h("input", { id: "gr-fields", name: "fields", required: true }),
    expires: h("input", { id: "gr-expires", name: "expires", type: "date", required: true }),
  };
  const pii = h("input", { id: "gr-pii", name: "allow_pii", type: "checkbox" });
  const result = h("div", { "aria-live": "polite" });
  const row = (name, label) =>
    h("div", {}, h("label", { for: inputs[name].id }, label), inputs[name], h("span", { class: "field-error", id: `${inputs[name].id}-error` }));
  const form = h(
    "form",
    { id: "grant-form", "aria-labelledby": "grant-title" },
    h("h3", { id: "grant-title" }, t("ds.grant")),
    h("div", { class: "row" }, row("dataset", t("ds.name")), row("agency", t("ds.agency")), row("expires", t("ds.expires"))),
    h("div", { class: "row" }, row("purpose", t("ds.purpose")), row("legal_basis", t("ds.legal")), row("fields", t("ds.fieldlist"))),
    h("p", {}, pii, " ", h("label", { for: "gr-pii", class: "inline" }, t("ds.allowpii"))),
    h("button", { type: "submit" }, t("ds.grant.go")),
    result,
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clear(result);
    for (const input of Object.values(inputs)) {
      input.removeAttribute("aria-invalid");
      clear(form.querySelector(`#${input.id}-error`));
    }
    const body = Object.fromEntries(Object.entries(inputs).map(([k, el]) => [k, el.value]));
    body.allow_pii = pii.checked;
    try {
      await request("POST", "/v1/grants", { json: body });
      result.append(message("ok", t("ds.granted", body)));
      await refresh();
    } catch (err) {
      const unplaced = [];
      for (const e of err.errors || []) {
        const input = inputs[e.field];
        if (input) {
          input.setAttribute("aria-invalid", "true");
          input.setAttribute("aria-describedby", `${input.id}-error`);
          form.querySelector(`#${input.id}-error`).append(e.message);
        } else unplaced.push(e);
      }
      if (!(err.errors || []).length || unplaced.length) result.append(problem(err));
    }
  });
  return form;
}

// roles the API lets list grants (bus/api/catalog.py): an operator has none to see
const GRANT_READERS = ["publisher", "consumer", "auditor"];

export async function render(root, { me }) {
  const known = await paths();
  const grants = GRANT_READERS.includes(me.role);
  const build = async () =>
    Promise.all([
      section(t("ds.catalogue"), "ds-catalogue", ["/v1/datasets"], catalogue),
      searchBox(),
      ...(grants ? [section(t("ds.grants"), "ds-grants", ["/v1/grants"], grantTable)] : []),
      accessLog("ds-access"),
    ]);
  const parts = await build();
  const refresh = async () => {
    const fresh = await build();
    for (const part of fresh) root.querySelector(`#${part.id}`)?.replaceWith(part);
  };
  clear(root).append(h("h2", {}, t("ds.title")), ...parts);
  if (me.role === "publisher" && known.includes("/v1/grants")) root.append(grantForm(refresh));
}
