// Auditor: archive status, a key's event history (the key is typed, never listed), the access
// log, from the auditor API when this server has it (else said plainly, never made up).
import { firstPath, get } from "../api.js";
import { clear, h, problem, unavailable } from "../dom.js";
import { t } from "../i18n.js";
import { section, view } from "./generic.js";

const HISTORY = "/v1/audit/datasets/{name}/history/{key}";

async function historyForm() {
  const out = h("div", { id: "au-history-out", "aria-live": "polite" });
  const box = h("section", { id: "au-history", "aria-labelledby": "au-history-title" }, h("h3", { id: "au-history-title" }, t("au.history")));
  if ((await firstPath([HISTORY])) === null) {
    box.dataset.available = "false";
    box.append(unavailable(HISTORY));
    return box;
  }
  box.dataset.available = "true";
  const dataset = h("input", { id: "au-dataset", name: "dataset", required: true, value: "tthc.dossier" });
  const key = h("input", { id: "au-key", name: "key", required: true, autocomplete: "off" });
  const form = h(
    "form",
    { class: "row" },
    h("div", {}, h("label", { for: "au-dataset" }, t("au.dataset")), dataset),
    h("div", {}, h("label", { for: "au-key" }, t("au.key")), key),
    h("div", {}, h("button", { type: "submit" }, t("au.search"))),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const path = HISTORY.replace("{name}", encodeURIComponent(dataset.value)).replace("{key}", encodeURIComponent(key.value));
    try {
      clear(out).append(view(await get(path)));
    } catch (err) {
      clear(out).append(problem(err));
    }
  });
  box.append(form, out);
  return box;
}

export async function render(main) {
  const parts = await Promise.all([
    section(t("au.archive"), "au-archive", ["/v1/audit/archive", "/v1/audit/archive/status", "/v1/audit/status"]),
    historyForm(),
    section(t("au.access"), "au-access", ["/v1/audit/access-log", "/v1/access-log", "/v1/access"]),
  ]);
  clear(main).append(h("h2", {}, t("au.title")), ...parts);
}
