// /join/{code} (or /join/?code=...): trade the link for a token, then open
// the lead, receiver or patrol page.
import { exchange } from "../lesson.js";
import { apply, banner, catchAll, h, t, topbar, userMessage } from "../ui.js";

catchAll();
topbar({ title: t("join.title") });
const app = document.getElementById("app");
const status = h("p", { class: "verdict", id: "join-status" }, t("join.opening"));
app.replaceChildren(h("div", { class: "panel" }, h("h1", { "data-i18n": "join.title" }), status,
  h("a", { href: "/", "data-i18n": "common.back_home" })));
apply(app);

const PAGES = { lead: "/lead/", receiver: "/receiver/", patrol: "/patrol/?joined=1" };

async function main() {
  const params = new URLSearchParams(location.search);
  // The server serves this page at /join/{code}; /join/?code= works too.
  const fromPath = location.pathname.match(/^\/join\/([^/]+)$/);
  const code = params.get("code") ?? params.get("link") ?? (fromPath ? decodeURIComponent(fromPath[1]) : null);
  if (!code) {
    status.textContent = "";
    banner(t("join.no_code"));
    return;
  }
  try {
    const join = await exchange(code);
    status.textContent = t("join.redirecting", { role: t(`role.${join.role}`) });
    location.replace(PAGES[join.role] ?? "/");
  } catch (err) {
    status.textContent = "";
    banner(userMessage(err));
  }
}

main();
