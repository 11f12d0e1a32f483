// Connectors: list with status and last runs, register from YAML (checked first), run, reset,
// remove, run history with a throughput sparkline. Writing needs the operator role.
import { ApiError, get, request } from "../api.js";
import { clear, h, message, problem, table } from "../dom.js";
import { number, t, when } from "../i18n.js";
import { sparkline } from "../svg.js";

const enc = encodeURIComponent;

async function load() {
  const names = await get("/connectors");
  return Promise.all(
    names.map(async (name) => {
      const [info, status] = await Promise.all([get(`/connectors/${enc(name)}`), get(`/connectors/${enc(name)}/status?runs=20`)]);
      return { name, info, status };
    }),
  );
}

function throughput(run) {
  const rows = Math.max(run.rows_in, run.rows_out);
  return run.seconds ? rows / run.seconds : 0;
}

function history(panel, item) {
  const runs = item.status.runs;
  clear(panel).append(
    h("h3", { id: "runs-title", tabindex: "-1" }, t("cn.runs", { name: item.name })),
    h("p", {}, t("cn.throughput"), " ", sparkline(runs.map(throughput).reverse(), t("cn.throughput"), { width: 240, height: 40 })),
    table(
      null,
      [t("cn.run.id"), t("cn.run.status"), t("cn.run.started"), { label: t("cn.run.seconds"), num: true }, { label: t("cn.run.in"), num: true }, { label: t("cn.run.out"), num: true }, { label: t("cn.run.dlq"), num: true }],
      runs.map((r) => [
        String(r.id),
        h("span", { class: `status-${r.status}` }, r.status),
        when(r.started_at),
        r.seconds === null ? "–" : r.seconds.toFixed(1),
        number(r.rows_in),
        number(r.rows_out),
        number(r.dlq),
      ]),
    ),
  );
  panel.querySelector("#runs-title").focus();
}

// The line of the YAML text where an error's field is written ("tables[0].mode" → the line of
// "mode:" in the first item under "tables:"), or null: shown beside the error.
export function lineOf(text, field) {
  const lines = text.split("\n");
  const steps = field.match(/[^.[\]]+|\[\d+\]/g) || [];
  let from = 0;
  let to = lines.length;
  let found = null;
  for (const step of steps) {
    if (step.startsWith("[")) {
      const wanted = Number(step.slice(1, -1));
      const items = [];
      for (let i = from; i < to; i++) if (/^\s*-\s/.test(lines[i])) items.push(i);
      if (wanted >= items.length) return found === null ? null : found + 1;
      from = items[wanted];
      to = wanted + 1 < items.length ? items[wanted + 1] : to;
      found = from;
      continue;
    }
    const key = new RegExp(`(^|[\\s{,-])${step.replace(/[.*+?^${}()|\\]/g, "\\$&")}\\s*:`);
    let hit = null;
    for (let i = from; i < to; i++) {
      if (key.test(lines[i])) {
        hit = i;
        break;
      }
    }
    if (hit === null) return found === null ? null : found + 1;
    found = hit;
    from = lines[hit].includes("{") ? hit : hit + 1;
  }
  return found === null ? null : found + 1;
}

function fieldErrors(errors, text = "") {
  return h(
    "ul",
    { class: "field-errors" },
    errors.map((e) => {
      const line = e.field ? lineOf(text, e.field) : null;
      return h(
        "li",
        { "data-field": e.field, "data-line": line },
        line ? h("span", { class: "muted" }, `${t("cn.line", { line })} · `) : null,
        e.field ? h("code", {}, e.field) : null,
        e.field ? ": " : "",
        e.message,
      );
    }),
  );
}

function registerForm(onStored) {
  const area = h("textarea", { id: "connector-yaml", name: "connector-yaml", spellcheck: "false", "aria-describedby": "yaml-hint yaml-result", required: true });
  const file = h("input", { id: "connector-file", type: "file", accept: ".yaml,.yml,application/yaml,text/yaml" });
  const result = h("div", { id: "yaml-result", "aria-live": "polite" });
  file.addEventListener("change", async () => {
    if (file.files.length) area.value = await file.files[0].text();
  });

  async function check() {
    clear(result);
    area.removeAttribute("aria-invalid");
    const answer = await request("POST", "/connectors/validate", { yaml: area.value });
    if (answer.error_count > 0) {
      area.setAttribute("aria-invalid", "true");
      result.append(message("error", t("cn.errors", { count: answer.error_count }), fieldErrors(answer.errors, area.value)));
      return null;
    }
    const plan = answer.plan;
    result.append(
      message("ok", t("cn.valid", { name: plan.name, role: plan.role, type: plan.type, seconds: plan.connect_seconds })),
      table(null, [t("cn.plan.table"), t("cn.plan.topic"), t("cn.plan.schema")], plan.tables.map((x) => [x.table, x.topic, x.schema])),
    );
    return plan;
  }

  async function guarded(action) {
    try {
      await action();
    } catch (err) {
      clear(result);
      if (err instanceof ApiError && err.errors.length) {
        area.setAttribute("aria-invalid", "true");
        result.append(message("error", t("cn.errors", { count: err.errors.length }), fieldErrors(err.errors, area.value)));
      } else result.append(problem(err));
    }
  }

  const form = h(
    "form",
    { "aria-labelledby": "register-title" },
    h("h3", { id: "register-title" }, t("cn.register")),
    h(
      "div",
      { class: "cols" },
      h(
        "div",
        {},
        h("label", { for: "connector-yaml" }, t("cn.yaml")),
        area,
        h("p", { id: "yaml-hint", class: "muted" }, t("cn.yaml.hint")),
        h("label", { for: "connector-file" }, t("cn.upload")),
        file,
        h(
          "p",
          { class: "actions" },
          h("button", { type: "button", class: "secondary", id: "validate", onclick: () => guarded(check) }, t("cn.validate")),
          h("button", { type: "submit", id: "register" }, t("cn.submit")),
        ),
      ),
      result,
    ),
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    guarded(async () => {
      const plan = await check(); // nothing is stored unless the check passes
      if (!plan) return;
      const stored = await request("POST", "/connectors", { yaml: area.value });
      await onStored(t("cn.stored", { name: stored.name }));
    });
  });
  return form;
}

export async function render(root, { me }) {
  const operator = me.role === "operator";
  const items = await load();
  const notice = h("div", { id: "connector-notice", "aria-live": "polite" });
  const panel = h("section", { id: "runs-panel", "aria-live": "polite" });
  const refresh = () => render(root, { me });
  const announce = async (text) => {
    await refresh();
    root.querySelector("#connector-notice").append(message("ok", text));
  };

  async function act(action, done) {
    clear(notice);
    try {
      await announce(done(await action()));
    } catch (err) {
      notice.append(problem(err));
    }
  }

  function unlock(item) {
    const owner = item.status.connector.worker_id;
    if (!confirm(t("cn.confirm.unlock", { name: item.name, owner }))) return;
    act(() => request("DELETE", `/connectors/${enc(item.name)}/lock?${new URLSearchParams({ owner })}`), () => t("cn.unlocked", { name: item.name }));
  }

  const rows = items.map((item) => {
    const runs = item.status.runs;
    const last = runs[0];
    const name = item.name;
    const buttons = [h("button", { type: "button", class: "secondary", onclick: () => history(panel, item), "aria-label": `${t("cn.history")} ${name}` }, t("cn.history"))];
    if (operator) {
      buttons.push(
        h("button", { type: "button", onclick: () => act(() => request("POST", `/connectors/${enc(name)}/runs`), (r) => t("cn.ran", { name, rows: r.rows })), "aria-label": `${t("cn.run")} ${name}` }, t("cn.run")),
        h("button", { type: "button", class: "secondary", onclick: () => confirm(t("cn.confirm.reset", { name })) && act(() => request("DELETE", `/connectors/${enc(name)}/offsets`), (r) => t("cn.reset.done", { name, count: r.forgotten })), "aria-label": `${t("cn.reset")} ${name}` }, t("cn.reset")),
        item.status.connector.worker_id
          ? h("button", { type: "button", class: "secondary", onclick: () => unlock(item), "aria-label": `${t("cn.unlock")} ${name}` }, t("cn.unlock"))
          : null,
        h("button", { type: "button", class: "danger", onclick: () => confirm(t("cn.confirm.remove", { name })) && act(() => request("DELETE", `/connectors/${enc(name)}`), () => t("cn.removed", { name })), "aria-label": `${t("cn.remove")} ${name}` }, t("cn.remove")),
      );
    }
    return [
      h("strong", {}, name),
      item.info.type,
      item.info.agency,
      item.info.unit,
      item.status.connector.state,
      last ? h("span", { class: `status-${last.status}` }, `${last.status} · ${when(last.started_at)} · ${number(last.rows_in)} → ${number(last.rows_out)}`) : t("ov.never"),
      sparkline(runs.map((r) => r.rows_out).reverse(), `${t("cn.trend")}: ${name}`),
      h("div", { class: "actions" }, buttons),
    ];
  });

  clear(root).append(
    h("h2", {}, t("cn.title")),
    notice,
    h("h3", {}, t("cn.list")),
    items.length
      ? table(null, [t("cn.name"), t("cn.role"), t("cn.agency"), t("cn.unit"), t("cn.state"), t("cn.last"), t("cn.trend"), t("cn.actions")], rows)
      : h("p", {}, t("cn.none")),
    panel,
    operator ? registerForm(announce) : null,
  );
}
