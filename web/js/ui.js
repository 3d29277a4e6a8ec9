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

/** A plain sentence for any error: signaling/API codes, getUserMedia names, or the message. */
export function userMessage(err) {
  if (!err) return t("err.generic", { message: "?" });
  const code = err.code ?? "";
  if (code && has(`err.${code}`)) return t(`err.${code}`);
  switch (err.name) {
    case "NotAllowedError":
    case "SecurityError":
      return t("err.camera_denied");
    case "NotFoundError":
    case "OverconstrainedError":
      return t("err.camera_missing");
    case "NotReadableError":
    case "AbortError":
      return t("err.camera_busy");
    default:
      return t("err.generic", { message: err.message ?? String(err) });
  }
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
  window.addEventListener("error", (e) => banner(userMessage(e.error ?? { message: e.message })));
  window.addEventListener("unhandledrejection", (e) => banner(userMessage(e.reason)));
}

export { apply, t };
