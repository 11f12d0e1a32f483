// The access log with filters (agency, dataset, action, since), from /v1/access-log when this
// server has it: each agency sees its own reads, an auditor every agency's.
import { get } from "../api.js";
import { clear, h, problem } from "../dom.js";
import { t } from "../i18n.js";
import { panel, view } from "./generic.js";

const PATH = "/v1/access-log";

export async function accessLog(id) {
  const { box, path } = await panel(t("ds.access"), id, [PATH]);
  if (path === null) return box;
  const out = h("div", { "aria-live": "polite" });
  const input = (name, label, attrs = {}) =>
    h("div", {}, h("label", { for: `${id}-${name}` }, label), h("input", { id: `${id}-${name}`, name, ...attrs }));
  const form = h(
    "form",
    { class: "row" },
    input("agency", t("al.agency")),
    input("dataset", t("al.dataset")),
    input("action", t("al.action")),
    input("since", t("al.since"), { type: "date" }),
    h("div", {}, h("button", { type: "submit" }, t("al.filter"))),
  );
  const load = async () => {
    const params = new URLSearchParams({ limit: "200" });
    for (const name of ["agency", "dataset", "action", "since"]) {
      const value = form[name].value.trim();
      if (value) params.set(name, value);
    }
    try {
      clear(out).append(view(await get(`${path}?${params}`)));
    } catch (err) {
      clear(out).append(problem(err));
    }
  };
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    load();
  });
  box.append(form, out);
  await load();
  return box;
}
