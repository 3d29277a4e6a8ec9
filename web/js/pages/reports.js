// 督导报表: the supervisors' dashboard for the caller's scope and a period.
// /reports/?period=term&term_id=…&county_id=…&school_id=…&by=… (the URL is the state, so a
// drill-down can be bookmarked and the back button climbs back up).
import { api, logout, me } from "../api.js";
import { CHARTS, draw, resizeAll } from "../report_charts.js";
import { breakdown, kpis, num, PARAMS, periodLine, query, teachingPointsTable } from "../report_view.js";
import { apply, banner, catchAll, errorBanner, fmtDateTime, h, t, topbar } from "../ui.js";

catchAll();
const app = document.getElementById("app");
let account = null;
let terms = [];
let counties = [];

const CHART_BOXES = [
  ["weekly", "dash.chart_weekly"],
  ["attendance", "dash.chart_attendance"],
  ["teachingPoints", "dash.chart_points"],
  ["quality", "dash.chart_quality"],
  ["patrol", "dash.chart_patrol"],
  ["evaluations", "dash.chart_evaluations"],
  ["exemplary", "dash.chart_exemplary"],
];

function today() {
  const d = new Date();
  return `${d.getFullYear()}-${String(d.getMonth() + 1).padStart(2, "0")}-${String(d.getDate()).padStart(2, "0")}`;
}

/** The report's parameters from the URL; without any, the term running today (else the month). */
function fromUrl() {
  const q = new URLSearchParams(location.search);
  const p = Object.fromEntries(PARAMS.map((k) => [k, q.get(k) || ""]));
  if (!p.period) {
    const now = today();
    const term = terms.find((x) => x.first_day <= now && now <= x.last_day) ?? terms.filter((x) => x.first_day <= now).at(-1);
    if (term) Object.assign(p, { period: "term", term_id: term.id });
    else p.period = "month";
  }
  return p;
}

function go(params, replace = false) {
  const url = `/reports/?${query(params)}`;
  if (replace) history.replaceState(null, "", url);
  else history.pushState(null, "", url);
  load();
}

function level(p) {
  if (p.school_id || account.scope === "school") return "school";
  if (p.county_id || account.scope === "county") return "county";
  return "district";
}

async function schoolsFor(countyId) {
  const q = countyId ? `?county_id=${encodeURIComponent(countyId)}` : "";
  return api(`/api/schools${q}`).catch(() => []);
}

async function controls(p) {
  const field = (id, label, input, show = true) =>
    h("label", { class: show ? "" : "hidden", id: `${id}-field` }, t(label), input);
  const period = h("select", { id: "period" },
    ["week", "month", "term", "custom"].map((k) => h("option", { value: k, selected: p.period === k }, t(`dash.period_${k}`))));
  const day = h("input", { type: "date", id: "day", value: p.day || today() });
  const term = h("select", { id: "term" }, terms.length
    ? terms.map((x) => h("option", { value: x.id, selected: p.term_id === x.id }, x.name))
    : h("option", { value: "" }, t("dash.no_terms")));
  const from = h("input", { type: "date", id: "date-from", value: p.date_from || "" });
  const to = h("input", { type: "date", id: "date-to", value: p.date_to || "" });
  const county = h("select", { id: "county" },
    h("option", { value: "" }, t("dash.all_counties")),
    counties.map((c) => h("option", { value: c.id, selected: p.county_id === c.id }, c.name)));
  const school = h("select", { id: "school" }, h("option", { value: "" }, t("dash.all_schools")));
  const fillSchools = async () => {
    const list = await schoolsFor(county.value || (account.scope === "county" ? account.county_id : ""));
    school.replaceChildren(h("option", { value: "" }, t("dash.all_schools")),
      list.map((s) => h("option", { value: s.id, selected: p.school_id === s.id }, s.name)));
  };
  county.addEventListener("change", () => { p.school_id = ""; fillSchools(); });
  const showFor = () => {
    const k = period.value;
    document.getElementById("day-field").classList.toggle("hidden", !(k === "week" || k === "month"));
    document.getElementById("term-field").classList.toggle("hidden", k !== "term");
    document.getElementById("from-field").classList.toggle("hidden", k !== "custom");
    document.getElementById("to-field").classList.toggle("hidden", k !== "custom");
  };
  period.addEventListener("change", showFor);
  const submit = (e) => {
    e.preventDefault();
    const k = period.value;
    go({
      period: k,
      day: k === "week" || k === "month" ? day.value : "",
      term_id: k === "term" ? term.value : "",
      date_from: k === "custom" ? from.value : "",
      date_to: k === "custom" ? to.value : "",
      county_id: account.scope === "district" ? county.value : "",
      school_id: account.scope === "school" ? "" : school.value,
      by: "",
    });
  };
  const form = h("form", { class: "panel report-controls", id: "report-controls", onsubmit: submit },
    field("period", "dash.period", period),
    field("day", "dash.day", day, p.period === "week" || p.period === "month"),
    field("term", "dash.term", term, p.period === "term"),
    field("from", "dash.date_from", from, p.period === "custom"),
    field("to", "dash.date_to", to, p.period === "custom"),
    field("county", "dash.county", county, account.scope === "district"),
    field("school", "dash.school", school, account.scope !== "school"),
    h("button", { type: "submit", class: "primary", id: "report-go" }, t("dash.show")),
    h("span", { class: "actions" },
      h("a", { class: "btn", id: "export-xlsx", download: "", href: `/api/reports/summary.xlsx?${query(p)}` }, t("dash.export_xlsx")),
      h("a", { class: "btn", id: "export-csv", download: "", href: `/api/reports/summary.csv?${query(p)}` }, t("dash.export_csv")),
      h("a", { class: "btn", id: "print-report", href: `/reports/print/?${query(p, PARAMS.filter((k) => k !== "by"))}` }, t("dash.print"))));
  if (account.scope !== "school") await fillSchools();
  return form;
}

function crumbs(summary, p) {
  const parts = [];
  const link = (label, params) => h("a", { href: `/reports/?${query(params)}`, onclick: (e) => { e.preventDefault(); go(params); } }, label);
  const periodOnly = { ...p, county_id: "", school_id: "", by: "" };
  if (account.scope === "district") parts.push(link(t("dash.district"), periodOnly));
  const s = summary.scope;
  if (s.county_id && account.scope !== "school") {
    const county = counties.find((c) => c.id === s.county_id);
    const name = s.level === "county" ? s.name : county?.name ?? "";
    parts.push(s.level === "county" ? h("b", {}, name) : link(name, { ...periodOnly, county_id: account.scope === "district" ? s.county_id : "" }));
  }
  if (s.level === "school") parts.push(h("b", {}, s.name));
  if (s.level === "district") parts[0] = h("b", {}, t("dash.district"));
  const out = [];
  parts.forEach((part, i) => { if (i) out.push(h("span", { class: "sep" }, "›")); out.push(part); });
  return h("nav", { class: "crumbs", id: "crumbs" }, out, h("span", { class: "period" }, periodLine(summary.period)));
}

function byTabs(summary, p) {
  const options = { district: ["county", "school", "subject", "teacher"], county: ["school", "subject", "teacher"], school: ["subject", "teacher"] }[summary.scope.level];
  return h("div", { class: "tabs", id: "by-tabs" }, options.map((by) =>
    h("button", { type: "button", class: summary.by === by ? "active" : "", dataset: { by }, onclick: () => go({ ...p, by }) }, t(`dash.by_${by}`))));
}

function drill(summary, p) {
  if (summary.by === "county") return (row) => row.key && go({ ...p, county_id: row.key, school_id: "", by: "school" });
  if (summary.by === "school") return (row) => row.key && go({ ...p, school_id: row.key, by: "subject" });
  return undefined;
}

function lessonsPanel(data) {
  const state = (l) => (l.state === "ended" && !l.started_at ? t("dash.cancelled") : t(`state.${l.state}`));
  const onTime = (l) => (l.on_time === null ? "—" : l.on_time ? t("common.yes") : t("common.no"));
  return h("section", { class: "panel", id: "lessons-panel" },
    h("div", { class: "head" }, h("h2", {}, t("dash.lessons_title")), h("span", { class: "note" }, data.truncated ? t("dash.truncated", { n: data.lessons.length }) : t("dash.lessons_n", { n: data.lessons.length }))),
    h("div", { class: "table-scroll" }, h("table", { class: "breakdown", id: "lessons" },
      h("thead", {}, h("tr", {}, ["dash.col_time", "dash.col_title", "dash.col_teacher", "dash.col_state", "dash.col_on_time", "dash.col_receivers", "dash.col_present", "dash.talks"]
        .map((k, i) => h("th", { class: i >= 5 ? "num" : "" }, t(k))))),
      h("tbody", {}, data.lessons.length ? data.lessons.map((l) => h("tr", { dataset: { lesson: l.id } },
        h("td", {}, fmtDateTime(l.scheduled_start)),
        h("td", {}, h("a", { href: `/lesson-report/?id=${encodeURIComponent(l.id)}` }, l.title || l.subject || "—"), h("span", { class: "note" }, ` ${l.subject} ${l.grade}`)),
        h("td", {}, l.teacher),
        h("td", {}, state(l)),
        h("td", {}, onTime(l)),
        h("td", { class: "num" }, num(l.receivers)),
        h("td", { class: "num" }, l.expected ? `${l.present} / ${l.expected}` : "—"),
        h("td", { class: "num" }, num(l.talks))))
        : h("tr", {}, h("td", { colspan: 8, class: "note" }, t("dash.no_lessons")))))));
}

function chartsSection(summary) {
  const boxes = CHART_BOXES.map(([key, title]) => {
    const el = h("div", { class: "chart", id: `chart-${key}` });
    const empty = (key === "teachingPoints" && !summary.teaching_points.length)
      || (key === "quality" && !Object.values(summary.quality).some(Boolean))
      || ((key === "attendance" || key === "evaluations") && !summary.rows.length);
    return { key, box: h("section", { class: "chart-box", dataset: { chart: key } }, h("h2", {}, t(title)), empty ? h("p", { class: "empty" }, t("dash.no_data")) : el), el, empty };
  });
  return { section: h("div", { class: "charts", id: "charts" }, boxes.map((b) => b.box)), boxes };
}

async function load() {
  const p = fromUrl();
  try {
    const lvl = level(p);
    const [summary, lessons] = await Promise.all([
      api(`/api/reports/summary?${query(p)}`),
      lvl === "school" ? api(`/api/reports/lessons?${query(p, PARAMS.filter((k) => k !== "by"))}`) : null,
    ]);
    const { section, boxes } = chartsSection(summary);
    app.replaceChildren(
      await controls(p),
      crumbs(summary, p),
      kpis(summary),
      section,
      h("section", { class: "panel", id: "breakdown-panel" },
        h("div", { class: "head" }, h("h2", {}, t("dash.breakdown")), drill(summary, p) ? h("span", { class: "note" }, t("dash.drill_hint")) : ""),
        byTabs(summary, p),
        breakdown(summary, { onRow: drill(summary, p) })),
      lessons ? lessonsPanel(lessons) : "",
      h("section", { class: "panel", id: "points-panel" },
        h("h2", {}, t("dash.points_title")), teachingPointsTable(summary),
        h("p", { class: "note" }, t("dash.note_quality"))));
    for (const b of boxes) if (!b.empty) draw(b.el, CHARTS[b.key](summary));
    document.title = `${t("dash.title")} · ${summary.scope.name} · 同课`;
    banner("");
    apply(app);
  } catch (err) {
    if (err.code === "invalid_period") banner(t("dash.bad_period", { m: err.message }));
    else errorBanner(err);
    if (!app.querySelector("#report-controls")) app.replaceChildren(await controls(p));
  }
}

async function main() {
  account = await me().catch(() => null);
  topbar({ title: t("dash.title"), account, onLogout: async () => { await logout(); location.href = "/"; } });
  if (!account) {
    const next = encodeURIComponent(location.pathname + location.search);
    app.replaceChildren(h("p", { class: "panel" }, t("dash.sign_in"), " ", h("a", { href: `/login/?next=${next}` }, t("nav.login"))));
    return;
  }
  if (account.role === "teacher") {
    app.replaceChildren(h("p", { class: "panel", id: "not-allowed" }, t("dash.not_allowed")));
    return;
  }
  [terms, counties] = await Promise.all([api("/api/terms").catch(() => []), api("/api/counties").catch(() => [])]);
  terms.sort((a, b) => (a.first_day < b.first_day ? -1 : 1));
  window.addEventListener("popstate", load);
  window.addEventListener("resize", resizeAll);
  await load();
}

main();
