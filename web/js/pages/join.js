// /join/{code} (or /join/?code=...): trade the link for a token, then open the lead, receiver
// or patrol page. A link of an ended lesson shows the ended screen (with the replay); over
// plain http a classroom is told how to open the https link before any device is touched.
import { devicesAllowed } from "../client.js";
import { exchange } from "../lesson.js";
import { outcomeByCode, showEnded, showInsecure } from "../lifecycle.js";
import { apply, banner, catchAll, errorBanner, h, t, topbar } from "../ui.js";

catchAll();
topbar({ title: t("join.title") });
const app = document.getElementById("app");
const status = h("p", { class: "verdict", id: "join-status" }, t("join.opening"));
app.replaceChildren(h("div", { class: "panel" }, h("h1", { "data-i18n": "join.title" }), status,
  h("a", { href: "/", "data-i18n": "common.back_home" })));
apply(app);

const PAGES = { lead: "/lead/", receiver: "/receiver/", patrol: "/patrol/?joined=1" };
const NEEDS_DEVICES = new Set(["lead", "receiver"]);

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
    if (NEEDS_DEVICES.has(join.role) && !devicesAllowed()) {
      return showInsecure(app, t(join.role === "lead" ? "insecure.what_lead" : "insecure.what_classroom"));
    }
    status.textContent = t("join.redirecting", { role: t(`role.${join.role}`) });
    location.replace(PAGES[join.role] ?? "/");
  } catch (err) {
    if (err.code === "lesson_ended") {
      return showEnded(app, { outcome: outcomeByCode(code), role: "receiver" });
    }
    status.textContent = "";
    errorBanner(err);
  }
}

main();
