// Dead letters: parked records per topic with origin and reason (the records themselves are
// never shown), and the replay after a fix (operator).
import { get, request } from "../api.js";
import { clear, h, message, problem, table } from "../dom.js";
import { number, t, when } from "../i18n.js";

const enc = encodeURIComponent;

async function show(panel, topic) {
  const data = await get(`/dlq/${enc(topic)}`);
  clear(panel).append(
    h("h3", { id: "dlq-entries-title", tabindex: "-1" }, t("dl.entries", { topic })),
    h("p", { class: "muted" }, t("dl.masked")),
    data.entries.length
      ? table(
          null,
          [t("dl.pos"), t("dl.origin"), t("dl.stage"), t("dl.class"), t("dl.reason"), { label: t("dl.attempts"), num: true }, t("dl.at")],
          data.entries.map((d) => [
            `${d.partition}@${d.offset}`,
            `${d.origin_topic}[${d.origin_partition ?? "–"}]@${d.origin_offset ?? "–"}`,
            d.stage,
            d.error_class,
            d.error,
            number(d.attempts),
            when(d.parked_at),
          ]),
        )
      : h("p", {}, t("dl.none")),
  );
  panel.querySelector("#dlq-entries-title").focus();
}

export async function render(root, { me }) {
  const all = await get("/dlq");
  const topics = all.filter((x) => x.parked > 0).sort((a, b) => b.parked - a.parked);
  const empty = all.length - topics.length;
  const notice = h("div", { id: "dlq-notice", "aria-live": "polite" });
  const panel = h("section", { id: "dlq-panel" });

  async function replay(topic) {
    if (!confirm(t("dl.confirm", { topic }))) return;
    clear(notice);
    try {
      const report = await request("POST", `/dlq/${enc(topic)}/replay`);
      await render(root, { me });
      root.querySelector("#dlq-notice").append(message("ok", t("dl.replayed", report)));
    } catch (err) {
      notice.append(problem(err));
    }
  }

  async function open(topic) {
    try {
      await show(panel, topic);
    } catch (err) {
      clear(panel).append(problem(err));
    }
  }

  clear(root).append(
    h("h2", {}, t("dl.title")),
    notice,
    topics.length
      ? table(
          null,
          [t("dl.topic"), { label: t("dl.parked"), num: true }, t("cn.actions")],
          topics.map((x) => [
            h("code", {}, x.topic),
            number(x.parked),
            h(
              "div",
              { class: "actions" },
              h("button", { type: "button", class: "secondary", onclick: () => open(x.topic), "aria-label": `${t("dl.show")} ${x.topic}` }, t("dl.show")),
              me.role === "operator"
                ? h("button", { type: "button", onclick: () => replay(x.topic), "aria-label": `${t("dl.replay")} ${x.topic}` }, t("dl.replay"))
                : null,
            ),
          ]),
        )
      : h("p", {}, t("dl.none")),
    empty ? h("p", { class: "muted" }, t("dl.empty", { count: empty })) : null,
    panel,
  );
}
