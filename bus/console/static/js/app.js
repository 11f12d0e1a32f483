// The console's shell: login with an API key, the navigation a role may use, the language switch.
import { ApiError, get, key, setKey } from "./api.js";
import { clear, h, message, problem } from "./dom.js";
import { lang, setLang, t, translateStatic } from "./i18n.js";
import * as audit from "./pages/audit.js";
import * as connectors from "./pages/connectors.js";
import * as datasets from "./pages/datasets.js";
import * as dlq from "./pages/dlq.js";
import * as overview from "./pages/overview.js";
import * as report from "./pages/report.js";

const PAGES = [
  { id: "overview", page: overview, roles: ["operator", "publisher", "consumer", "auditor"] },
  { id: "connectors", page: connectors, roles: ["operator", "auditor"] },
  { id: "dlq", page: dlq, roles: ["operator", "auditor"] },
  { id: "report", page: report, roles: ["operator", "publisher", "consumer", "auditor"] },
  { id: "datasets", page: datasets, roles: ["operator", "publisher", "consumer", "auditor"] },
  { id: "audit", page: audit, roles: ["auditor"] },
];

const main = document.getElementById("main");
let me = null;

function current() {
  const id = location.hash.replace(/^#\/?/, "") || "overview";
  return PAGES.find((p) => p.id === id) || PAGES[0];
}

function renderLogin(problem) {
  document.getElementById("nav").hidden = true;
  document.getElementById("logout").hidden = true;
  clear(document.getElementById("who"));
  const input = h("input", { id: "api-key", name: "api-key", type: "password", autocomplete: "off", required: true, "aria-describedby": "api-key-hint" });
  const form = h(
    "form",
    { class: "login", "aria-labelledby": "login-title" },
    h("h2", { id: "login-title" }, t("login.title")),
    problem ? message("error", problem) : null,
    h("label", { for: "api-key" }, t("login.key")),
    input,
    h("p", { id: "api-key-hint", class: "muted" }, t("login.hint")),
    h("button", { type: "submit" }, t("login.submit")),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    setKey(input.value.trim());
    await start();
  });
  clear(main).append(form);
  input.focus();
}

function renderShell() {
  const who = clear(document.getElementById("who"));
  who.append(t("who", { agency: me.agency }), h("span", { class: "badge", id: "role" }, t(`role.${me.role}`)));
  document.getElementById("logout").hidden = false;
  const nav = document.getElementById("nav");
  const list = clear(nav.querySelector("ul"));
  const here = current();
  for (const p of PAGES.filter((x) => x.roles.includes(me.role))) {
    list.append(h("li", {}, h("a", { href: `#/${p.id}`, "aria-current": p === here ? "page" : null }, t(`nav.${p.id}`))));
  }
  nav.hidden = false;
}

// Each page renders into a view of its own inside <main>: a page whose answers arrive after the
// user went on to another one fills its view, already taken out of <main>, never the page shown.
async function renderPage(focus) {
  const entry = current();
  renderShell();
  const view = h("div", { class: "view", "data-page": entry.id });
  clear(main).append(view);
  if (!entry.roles.includes(me.role)) {
    view.append(h("h2", {}, t(`nav.${entry.id}`)), message("error", t("forbidden")));
    return;
  }
  view.append(h("p", { class: "muted", role: "status" }, t("loading")));
  try {
    await entry.page.render(view, { me });
  } catch (err) {
    clear(view).append(h("h2", {}, t(`nav.${entry.id}`)), problem(err));
  }
  if (focus && view.isConnected) main.focus();
}

async function start() {
  translateStatic();
  if (!key()) {
    renderLogin();
    return;
  }
  try {
    me = await get("/me");
  } catch (err) {
    setKey(null);
    renderLogin(err instanceof ApiError && err.status === 401 ? t("login.bad") : String(err.message || err));
    return;
  }
  await renderPage(false);
}

document.getElementById("lang").addEventListener("click", async () => {
  setLang(lang() === "vi" ? "en" : "vi");
  updateLangButton();
  await start();
});

document.getElementById("logout").addEventListener("click", () => {
  setKey(null);
  me = null;
  location.hash = "";
  renderLogin();
});

function updateLangButton() {
  const button = document.getElementById("lang");
  button.textContent = t("lang.other");
  button.lang = lang() === "vi" ? "en" : "vi";
}

// The skip link's "#main" is not a route: it moves focus to the content and leaves the page.
document.querySelector("a.skip").addEventListener("click", (event) => {
  event.preventDefault();
  main.focus();
});

window.addEventListener("hashchange", () => me && renderPage(true));
document.documentElement.lang = lang();
updateLangButton();
start();
