// The course-example library (示范课例库): search form, results with posters, paging, counts.
import { api, logout, me } from "../api.js";
import { apply, banner, catchAll, fmtDateTime, fmtOffset, h, t, topbar, userMessage, errorBanner } from "../ui.js";

catchAll();
const app = document.getElementById("app");

const FIELDS = [
  ["q", "library.q"],
  ["stage", "library.stage"],
  ["subject", "library.subject"],
  ["grade", "library.grade"],
  ["textbook_version", "library.textbook_version"],
  ["volume", "library.volume"],
  ["unit", "library.unit"],
  ["teacher", "library.teacher"],
  ["school", "library.school"],
  ["district", "library.district"],
];
const PER_PAGE = 12;

function params() {
  return new URLSearchParams(location.search);
}

function badges(item) {
  const out = [];
  if (item.interrupted) out.push(h("span", { class: "pill interrupted" }, t("library.interrupted")));
  if (item.error_code) out.push(h("span", { class: "pill interrupted" }, t("library.failed")));
  if (item.rendition_state !== "done") {
    const pct = Math.round((item.rendition_progress ?? 0) * 100);
    out.push(h("span", { class: "pill rendering" }, t(`rendition.${item.rendition_state}`, { pct })));
  }
  if (item.exemplary_state !== "none") {
    out.push(h("span", { class: `pill ${item.exemplary_state}` }, t(`exemplary.${item.exemplary_state}`)));
  }
  return out;
}

function card(item) {
  const empty = () => h("div", { class: "poster empty" }, t("library.no_poster"));
  const poster = item.poster_url
    ? h("img", { class: "poster", src: item.poster_url, alt: "", loading: "lazy", onerror: (e) => e.target.replaceWith(empty()) })
    : empty();
  const meta = [item.stage, item.subject, item.grade, item.textbook_version, item.volume].filter(Boolean).join(" · ");
  return h(
    "a",
    { class: "card", href: `/replay/?id=${encodeURIComponent(item.id)}`, dataset: { recording: item.id } },
    poster,
    h("b", {}, item.title),
    h("div", { class: "meta" }, meta),
    h("div", { class: "meta" }, `${item.teacher} · ${item.school}`),
    h("div", { class: "meta" }, `${fmtDateTime(item.started_at)} · ${fmtOffset(item.duration_s)}`
      + (item.score != null ? ` · ${t("library.score")} ${item.score}` : "")),
    h("div", { class: "row" }, badges(item)),
  );
}

function searchForm(current) {
  const inputs = FIELDS.map(([name, key]) =>
    h("label", {}, t(key), h("input", { name, value: current.get(name) ?? "" })));
  const select = (name, options) =>
    h("select", { name }, options.map(([value, key]) =>
      h("option", { value, selected: (current.get(name) ?? "") === value }, t(key))));
  const form = h(
    "form",
    {
      class: "search panel",
      id: "library-search",
      onsubmit: (e) => {
        e.preventDefault();
        const next = new URLSearchParams();
        for (const [name, value] of new FormData(form)) if (String(value).trim()) next.set(name, String(value).trim());
        history.pushState(null, "", `?${next}`);
        load();
      },
    },
    inputs,
    h("label", {}, t("library.exemplary"), select("exemplary", [
      ["", "library.any"], ["nominated", "exemplary.nominated"], ["exemplary", "exemplary.exemplary"],
      ["returned", "exemplary.returned"],
    ])),
    h("label", {}, t("library.sort"), select("sort", [["date", "library.sort_date"], ["score", "library.sort_score"]])),
    h("button", { class: "primary", type: "submit" }, t("library.search")),
  );
  return form;
}

async function counts() {
  const data = await api("/api/library/exemplary/counts");
  if (!data.counts.length) return h("p", { class: "muted" }, t("library.no_counts"));
  return h(
    "table",
    {},
    h("tr", {}, ["library.district", "library.year", "exemplary.nominated", "exemplary.exemplary", "exemplary.returned"]
      .map((key) => h("th", {}, t(key)))),
    data.counts.map((c) => h("tr", {}, [c.district || "—", c.year, c.nominated, c.exemplary, c.returned].map((v) => h("td", {}, v)))),
  );
}

async function load() {
  const current = params();
  const page = Math.max(1, Number(current.get("page") ?? 1));
  const query = new URLSearchParams(current);
  query.set("per_page", String(PER_PAGE));
  const results = document.getElementById("results");
  const pager = document.getElementById("pager");
  try {
    const data = await api(`/api/library?${query}`);
    results.replaceChildren(...(data.items.length ? data.items.map(card) : [h("p", { class: "muted" }, t("library.empty"))]));
    const pages = Math.max(1, Math.ceil(data.total / PER_PAGE));
    const go = (n) => () => {
      current.set("page", String(n));
      history.pushState(null, "", `?${current}`);
      load();
    };
    pager.replaceChildren(
      h("button", { type: "button", disabled: page <= 1, onclick: go(page - 1) }, t("library.prev")),
      h("span", { id: "page-info" }, t("library.page", { page, pages, total: data.total })),
      h("button", { type: "button", disabled: page >= pages, onclick: go(page + 1) }, t("library.next")),
    );
    banner("");
  } catch (err) {
    errorBanner(err);
  }
}

async function main() {
  const account = await me().catch(() => null);
  topbar({
    title: t("library.title"),
    account,
    onLogout: async () => {
      await logout();
      location.href = "/";
    },
  });
  if (!account) {
    app.replaceChildren(h("p", {}, t("library.sign_in"), " ", h("a", { href: "/login/?next=/library/" }, t("nav.login"))));
    return;
  }
  app.replaceChildren(
    searchForm(params()),
    h("div", { class: "cards", id: "results" }),
    h("div", { class: "pager", id: "pager" }),
    h("details", { class: "panel" }, h("summary", {}, t("library.counts")), h("div", { id: "counts" })),
  );
  apply(app);
  window.addEventListener("popstate", load);
  await load();
  const box = document.getElementById("counts");
  box.replaceChildren(await counts().catch((err) => h("p", { class: "banner error" }, userMessage(err))));
}

main();
