// Sign in; then back to where the user came from (?next=/path) or home.
import { api, rememberSignIn } from "../api.js";
import { sameOriginPath } from "../next.js";
import { apply, banner, catchAll, h, t, topbar, userMessage } from "../ui.js";

catchAll();

/** 登录失败次数过多: when to try again, in minutes and as a clock time. */
function throttled(err) {
  const wait = err.retryAfterS ?? 60;
  const at = new Date(Date.now() + wait * 1000).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  return t("login.throttled", { minutes: Math.max(1, Math.ceil(wait / 60)), time: at });
}
topbar({ title: t("login.title") });
const app = document.getElementById("app");
const user = h("input", { id: "username", name: "username", autocomplete: "username", required: true });
const pass = h("input", { id: "password", name: "password", type: "password", autocomplete: "current-password", required: true });
const submit = h("button", { class: "primary big", type: "submit", "data-i18n": "login.submit" });
const form = h(
  "form",
  {
    id: "login-form",
    onsubmit: async (e) => {
      e.preventDefault();
      submit.disabled = true;
      banner("");
      try {
        await api("/api/auth/login", { method: "POST", body: { username: user.value.trim(), password: pass.value } });
        rememberSignIn(true);
        location.href = sameOriginPath(new URLSearchParams(location.search).get("next"));
      } catch (err) {
        banner(err.status === 401 ? t("login.failed") : err.code === "login_throttled" ? throttled(err) : userMessage(err));
        submit.disabled = false;
      }
    },
  },
  h("label", { for: "username", "data-i18n": "login.username" }), user,
  h("label", { for: "password", "data-i18n": "login.password" }), pass,
  h("div", { class: "actions" }, submit),
);
app.replaceChildren(h("div", { class: "panel", style: "max-width: 28rem; margin: 2rem auto" }, h("h1", { "data-i18n": "login.title" }), form));
apply(app);
user.focus();
