// 404 page. /join/{code} (the URL join links carry) has no file of its own: forward it.
import { apply, catchAll, h, t, topbar } from "../ui.js";

const m = location.pathname.match(/^\/join\/([^/]+)\/?$/);
if (m) {
  location.replace(`/join/?code=${encodeURIComponent(decodeURIComponent(m[1]))}${location.hash}`);
} else {
  catchAll();
  topbar({ title: "" });
  const app = document.getElementById("app");
  app.replaceChildren(h("div", { class: "panel" }, h("h1", { "data-i18n": "err.not_found" }),
    h("a", { class: "btn primary", href: "/", "data-i18n": "common.back_home" })));
  apply(app);
}
