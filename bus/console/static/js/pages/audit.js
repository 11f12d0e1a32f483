// Auditor: archive status and verification, a key's event history (the key is typed, never
// listed) as a timeline with before/after and chain positions, a replay as of a moment to a
// download, the access log; from the auditor API when this server has it (else said plainly).
import { download, get, purposeHeader, request } from "../api.js";
import { clear, h, message, problem } from "../dom.js";
import { t, when } from "../i18n.js";
import { accessLog } from "./access_log.js";
import { panel, section, view } from "./generic.js";

const HISTORY = "/v1/audit/datasets/{name}/history/{key}";
const REPLAY = "/v1/audit/datasets/{name}/replay";
const VERIFY = "/v1/audit/verify";

function field(id, label, attrs = {}) {
  return h("div", {}, h("label", { for: id }, label), h("input", { id, name: id, required: true, ...attrs }));
}

function diff(before, after) {
  const names = [...new Set([...Object.keys(before || {}), ...Object.keys(after || {})])];
  const show = (v) => (v === undefined || v === null ? "–" : typeof v === "object" ? JSON.stringify(v) : String(v));
  return h(
    "div",
    { class: "table-wrap" },
    h(
      "table",
      { class: "diff" },
      h("thead", {}, h("tr", {}, h("th", { scope: "col" }, t("au.field")), h("th", { scope: "col" }, t("au.before")), h("th", { scope: "col" }, t("au.after")))),
      h(
        "tbody",
        {},
        names.map((n) => {
          const changed = show(before?.[n]) !== show(after?.[n]);
          return h("tr", {}, h("th", { scope: "row" }, n), h("td", { class: changed ? "changed" : null }, show(before?.[n])), h("td", { class: changed ? "changed" : null }, show(after?.[n])));
        }),
      ),
    ),
  );
}

function timeline(found) {
  if (!found.events || found.events.length === 0) return h("p", {}, t("empty"));
  return h(
    "div",
    {},
    message(found.verified ? "ok" : "error", found.verified ? t("au.chain.ok") : t("au.chain.bad")),
    h(
      "ol",
      { class: "timeline" },
      found.events.map((e) =>
        h(
          "li",
          {},
          h("strong", {}, `${e.op} · ${when(new Date(e.ts_ms).toISOString())}`),
          ` · ${e.source_unit ?? ""} · `,
          h("span", { class: e.verified ? "status-ok" : "status-failed" }, e.verified ? t("au.verified") : t("au.unverified")),
          h("div", { class: "muted" }, (e.positions || []).map((p) => `${p.topic ?? ""}[${p.partition ?? p.kafka_partition ?? ""}] #${p.seq ?? ""}`).join(", ")),
          diff(e.event?.before, e.event?.after),
        ),
      ),
    ),
  );
}

async function historyForm() {
  const out = h("div", { id: "au-history-out", "aria-live": "polite" });
  const { box, path: endpoint } = await panel(t("au.history"), "au-history", [HISTORY]);
  if (endpoint === null) return box;
  const form = h(
    "form",
    { class: "row" },
    field("au-dataset", t("au.dataset"), { value: "tthc.dossier" }),
    field("au-key", t("au.key"), { autocomplete: "off" }),
    field("au-purpose", t("au.purpose")),
    h("div", {}, h("button", { type: "submit" }, t("au.search"))),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const path = HISTORY.replace("{name}", encodeURIComponent(form["au-dataset"].value)).replace("{key}", encodeURIComponent(form["au-key"].value));
    try {
      clear(out).append(timeline(await request("GET", path, { headers: purposeHeader(form["au-purpose"].value) })));
    } catch (err) {
      clear(out).append(problem(err));
    }
  });
  box.append(form, out);
  return box;
}

async function replayForm() {
  const { box, path: endpoint } = await panel(t("au.replay"), "au-replay", [REPLAY]);
  if (endpoint === null) return box;
  const status = h("div", { "aria-live": "polite" });
  const form = h(
    "form",
    { class: "row" },
    field("rp-dataset", t("au.dataset"), { value: "tthc.dossier" }),
    field("rp-asof", t("au.asof"), { type: "datetime-local" }),
    field("rp-purpose", t("au.purpose")),
    h("div", {}, h("button", { type: "submit" }, t("au.replay.go"))),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const name = form["rp-dataset"].value;
    const asOf = `${form["rp-asof"].value}:00+07:00`; // the moment in Vietnam time
    const path = `${REPLAY.replace("{name}", encodeURIComponent(name))}?${new URLSearchParams({ as_of: asOf })}`;
    clear(status);
    try {
      await download(path, `replay-${name}.jsonl`, purposeHeader(form["rp-purpose"].value));
      status.append(message("ok", t("au.replay.done")));
    } catch (err) {
      status.append(problem(err));
    }
  });
  box.append(form, h("p", { class: "muted" }, t("au.replay.hint")), status);
  return box;
}

async function verifyBox() {
  const { box, path: endpoint } = await panel(t("au.verify"), "au-verify", [VERIFY]);
  if (endpoint === null) return box;
  const out = h("div", { "aria-live": "polite" });
  const button = h("button", { type: "button" }, t("au.verify.go"));
  button.addEventListener("click", async () => {
    clear(out).append(h("p", { class: "muted" }, t("loading")));
    try {
      let job = await request("POST", VERIFY, { json: {} });
      for (let i = 0; i < 300 && (job.status === "queued" || job.status === "running"); i++) {
        await new Promise((resolve) => setTimeout(resolve, 1000));
        job = await get(`${VERIFY}/${encodeURIComponent(job.id)}`);
      }
      clear(out).append(message(job.ok ? "ok" : "error", job.ok ? t("au.chain.ok") : t("au.chain.bad")), view(job.result || job));
    } catch (err) {
      clear(out).append(problem(err));
    }
  });
  box.append(h("p", { class: "muted" }, t("au.verify.hint")), button, out);
  return box;
}

export async function render(root) {
  const parts = await Promise.all([
    section(t("au.archive"), "au-archive", ["/v1/audit/archive"]),
    verifyBox(),
    historyForm(),
    replayForm(),
    accessLog("au-access"),
  ]);
  clear(root).append(h("h2", {}, t("au.title")), ...parts);

}
