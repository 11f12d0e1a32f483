// Datasets and grants: the catalogue, "who owns this attribute", grants and the access log, from
// the catalogue API when this server has it (else said plainly, never made up).
import { firstPath, get } from "../api.js";
import { clear, h, problem, unavailable } from "../dom.js";
import { t } from "../i18n.js";
import { section, view } from "./generic.js";

const SEARCH = ["/v1/datasets/search", "/v1/attributes/search", "/v1/catalog/search"];

async function searchForm() {
  const out = h("div", { id: "ds-search-out", "aria-live": "polite" });
  const box = h("section", { id: "ds-search", "aria-labelledby": "ds-search-title" }, h("h3", { id: "ds-search-title" }, t("ds.search")));
  const path = await firstPath(SEARCH);
  if (path === null) {
    box.dataset.available = "false";
    box.append(unavailable(SEARCH[0]));
    return box;
  }
  box.dataset.available = "true";
  const input = h("input", { id: "ds-attr", name: "q", type: "search", required: true });
  const form = h("form", { class: "row" }, h("div", {}, h("label", { for: "ds-attr" }, t("ds.search")), input), h("div", {}, h("button", { type: "submit" }, t("ds.search.go"))));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      clear(out).append(view(await get(`${path}?${new URLSearchParams({ q: input.value })}`)));
    } catch (err) {
      clear(out).append(problem(err));
    }
  });
  box.append(form, out);
  return box;
}

export async function render(main) {
  const parts = await Promise.all([
    section(t("ds.catalogue"), "ds-catalogue", ["/v1/datasets", "/datasets"]),
    searchForm(),
    section(t("ds.grants"), "ds-grants", ["/v1/grants", "/grants"]),
    section(t("ds.access"), "ds-access", ["/v1/access-log", "/v1/access", "/access-log"]),
  ]);
  clear(main).append(h("h2", {}, t("ds.title")), ...parts);
}
