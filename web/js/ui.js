// Small DOM helpers shared by the pages: element builder, top bar, banners, plain errors.
import { apply, has, lang, setLang, t } from "./i18n.js";

/** h("div", {class: "x", onclick}, child, "text") -> Element. */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs ?? {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on") && typeof value === "function") el.addEventListener(name.slice(2), value);
    else if (name === "class") el.className = value;
    else if (name === "dataset") Object.assign(el.dataset, value);
    else if (name in el && typeof value !== "string") el[name] = value;
    else el.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

export const $ = (selector, root = document) => root.querySelector(selector);

// getUserMedia failures, each with its own sentence and advice (docs/web.md).
const DEVICE_ERRORS = {
  InsecureContextError: "err.insecure_context",
  NotAllowedError: "err.device_denied",
  SecurityError: "err.device_denied",
  NotFoundError: "err.device_missing",
  NotReadableError: "err.device_busy",
  AbortError: "err.device_busy",
  OverconstrainedError: "err.device_constraints",
};

/** Whether userMessage knows this error (a server code or a device failure by name). */
export function knownError(err) {
  const code = err?.code ?? "";
  return Boolean((code && has(`err.${code}`)) || DEVICE_ERRORS[err?.name]);
}

/**
 * A plain sentence for any error: signaling/API codes, getUserMedia names; anything else is
 * "something went wrong" in the page's language, never the raw (English) exception text, which
 * errorBanner keeps behind a 详细信息 toggle.
 */
export function userMessage(err) {
  if (!err) return t("err.unexpected");
  const code = err.code ?? "";
  if (code && has(`err.${code}`)) return t(`err.${code}`);
  if (DEVICE_ERRORS[err.name]) return t(DEVICE_ERRORS[err.name]);
  return t("err.unexpected");
}

/** The raw text of an error, for the 详细信息 toggle and bug reports. */
export function errorDetail(err) {
  if (!err) return "";
  const parts = [err.name, err.code, err.message ?? (typeof err === "string" ? err : "")];
  return parts.filter(Boolean).join(": ") || String(err);
}

/**
 * The sentence for `err` as a banner; an unexpected error adds a closed 详细信息 toggle
 * with the raw text (what a teacher reads out to the school's IT person).
 */
export function errorBanner(err, id = "page-banner") {
  const el = banner(userMessage(err), "error", id);
  if (!knownError(err)) {
    el.append(h("details", { class: "detail" }, h("summary", {}, t("err.details")),
      h("pre", {}, errorDetail(err))));
  }
  return el;
}

/** Status line under the top bar; `kind` is error, warn, info or ok. Empty text hides it. */
export function banner(text, kind = "error", id = "page-banner") {
  let el = document.getElementById(id);
  if (!el) {
    el = h("div", { id, role: "status", "aria-live": "polite" });
    const main = document.querySelector("main") ?? document.body;
    main.prepend(el);
  }
  el.className = `banner ${kind}`;
  el.textContent = text ?? "";
  el.classList.toggle("hidden", !text);
  return el;
}

/** The same page over https (a server started with --https serves TLS on the same port). */
export function httpsUrl() {
  return `https://${location.host}${location.pathname}${location.search}`;
}

/**
 * A panel saying why this page may not use camera and microphone (plain http on the school
 * LAN) and what to do: open the https link; trust the school certificate once (/ca/).
 */
export function insecurePanel({ what = t("insecure.what_classroom") } = {}) {
  const link = httpsUrl();
  return h("div", { class: "panel notice", id: "insecure-context" },
    h("h1", {}, t("insecure.title")),
    h("p", {}, t("insecure.why", { what })),
    h("ol", { class: "steps" },
      h("li", {}, t("insecure.step_https"), " ", h("a", { href: link, id: "https-link" }, link)),
      h("li", {}, t("insecure.step_trust"), " ", h("a", { href: "/ca/", id: "ca-link" }, t("insecure.ca_link"))),
      h("li", {}, t("insecure.step_ask"))));
}

/** A page-sized explanation (no controls): title, sentences, optional actions. */
export function noticePanel({ id, title, lines = [], actions = [] }) {
  return h("div", { class: "panel notice", id },
    h("h1", {}, title),
    ...lines.map((line) => h("p", {}, line)),
    actions.length ? h("div", { class: "actions" }, ...actions) : "");
}

let toastTimer = 0;
export function toast(text, ms = 3500) {
  let el = document.getElementById("toast");
  if (!el) {
    el = h("div", { id: "toast", class: "toast hidden", role: "status" });
    document.body.append(el);
  }
  el.textContent = text;
  el.classList.remove("hidden");
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => el.classList.add("hidden"), ms);
}

export function fmtTime(iso) {
  if (!iso) return "";
  const d = new Date(iso);
  return d.toLocaleTimeString(lang(), { hour: "2-digit", minute: "2-digit" });
}

export function fmtDateTime(iso) {
  if (!iso) return "";
  const d = new Date(iso);
  return d.toLocaleString(lang(), { month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit" });
}

/** Seconds as m:ss or h:mm:ss (a lesson-time offset). */
export function fmtOffset(seconds) {
  const s = Math.max(0, Math.floor(seconds ?? 0));
  const hh = Math.floor(s / 3600);
  const mm = Math.floor((s % 3600) / 60);
  const ss = String(s % 60).padStart(2, "0");
  return hh ? `${hh}:${String(mm).padStart(2, "0")}:${ss}` : `${mm}:${ss}`;
}

export function statePill(state) {
  return h("span", { class: `pill ${state}` }, t(`state.${state}`));
}

/**
 * The top bar: brand, page title, a slot for page status, the language switch and account links.
 * Returns {bar, slot}.
 */
export function topbar({ title = "", account = undefined, onLogout } = {}) {
  const slot = h("span", { class: "right", id: "topbar-slot" });
  const right = h("span", { class: "right" });
  right.append(
    h("a", { href: "/check/", "data-i18n": "nav.check" }),
    h("button", {
      type: "button",
      id: "lang-switch",
      "data-i18n": "lang.switch",
      onclick: () => {
        setLang(lang() === "zh-CN" ? "en" : "zh-CN");
        location.reload();
      },
    }),
  );
  if (account === null) right.append(h("a", { class: "btn", href: "/login/", "data-i18n": "nav.login" }));
  if (account) {
    right.append(h("a", { href: "/library/", "data-i18n": "nav.library" }));
    right.append(h("span", { class: "muted small" }, account.display_name));
    right.append(h("button", { type: "button", id: "logout", "data-i18n": "nav.logout", onclick: onLogout }));
  }
  const bar = h(
    "header",
    { class: "topbar" },
    h("a", { class: "brand", href: "/" }, h("span", {}, "同课"), lang() === "en" ? " Tongke" : ""),
    h("span", { class: "title", id: "page-title" }, title),
    slot,
    right,
  );
  document.body.prepend(bar);
  apply(bar);
  return { bar, slot };
}

/** Any uncaught failure becomes a visible sentence, never a blank page. */
export function catchAll() {
  window.addEventListener("error", (e) => errorBanner(e.error ?? { message: e.message }));
  window.addEventListener("unhandledrejection", (e) => errorBanner(e.reason));
}

export { apply, t };
