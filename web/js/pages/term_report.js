// 学期督导报告: the printable A4 report of a county (or any scope) for a term.
// /reports/print/?period=term&term_id=…&county_id=… (the dashboard's 打印学期报告 link).
import { api, logout, me } from "../api.js";
import { draw, exemplary, quality, resizeAll, weekly } from "../report_charts.js";
import { breakdown, COLUMNS, hours, num, PARAMS, pct, periodLine, query, score, teachingPointsTable } from "../report_view.js";
import { apply, catchAll, errorBanner, h, t, topbar } from "../ui.js";

catchAll();
const app = document.getElementById("app");
// The columns that fit an A4 page in portrait.
const PRINT_COLUMNS = COLUMNS.filter(([key]) =>
  ["scheduled", "held", "cancelled", "on_time_rate", "delivered_hours", "attendance_rate", "patrol_rate", "evaluations"].includes(key));

function kpiTable(summary) {
  const x = summary.totals;
  const goal = summary.exemplary_target;
  const pair = (label, value) => [h("td", {}, t(label)), h("td", {}, h("b", {}, value))];
  return h("table", { class: "kpi-table", id: "print-kpis" }, h("tbody", {},
    h("tr", {}, pair("dash.scheduled", num(x.scheduled)), pair("dash.held", num(x.held))),
    h("tr", {}, pair("dash.cancelled", num(x.cancelled)), pair("dash.not_held", num(x.not_held))),
    h("tr", {}, pair("dash.on_time_rate", pct(x.on_time_rate)), pair("dash.receivers_per_lesson", x.receivers_per_lesson === null ? "—" : x.receivers_per_lesson.toFixed(1))),
    h("tr", {}, pair("dash.delivered_hours", hours(x.delivered_hours)), pair("dash.received_hours", hours(x.received_hours))),
    h("tr", {}, pair("dash.attendance_rate", pct(x.attendance_rate)), pair("dash.patrol_rate", pct(x.patrol_rate))),
    h("tr", {}, pair("dash.evaluations", `${num(x.evaluations)}（${t("dash.mean", { s: score(x.mean_score) })}）`),
      pair("dash.exemplary", t("dash.exemplary_line", { n: num(x.exemplary), d: num(goal.district_exemplary), goal: num(goal.goal) })))));
}

function render(summary, termName) {
  const chart = (id) => h("div", { class: "print-chart", id });
  const x = summary.totals;
  const goal = summary.exemplary_target;
  app.replaceChildren(
    h("div", { class: "print-actions" },
      h("button", { type: "button", class: "primary", id: "print-now", onclick: () => { resizeAll(); window.print(); } }, t("dash.print_now")),
      h("a", { class: "btn", href: `/reports/?${query(Object.fromEntries(new URLSearchParams(location.search)))}` }, t("dash.back_to_dashboard"))),
    h("h1", { id: "print-title" }, t("dash.print_title", { scope: summary.scope.name })),
    h("p", { class: "subtitle" }, [termName, periodLine(summary.period)].filter(Boolean).join(" · ")),
    h("h2", {}, t("dash.print_s1")),
    kpiTable(summary),
    h("p", {}, t("dash.print_summary", {
      held: num(x.held), scheduled: num(x.scheduled), rate: pct(x.attendance_rate),
      hours: hours(x.received_hours), points: num(summary.teaching_points.length),
    })),
    h("h2", {}, t("dash.print_s2")),
    chart("print-weekly"),
    h("h2", {}, t("dash.print_s3", { by: t(`dash.by_${summary.by}`) })),
    breakdown(summary, { columns: PRINT_COLUMNS, id: "print-breakdown" }),
    h("h2", {}, t("dash.print_s4")),
    h("div", { class: "two" },
      h("div", {}, h("p", { class: "note" }, t("dash.chart_quality")), chart("print-quality")),
      h("div", {}, h("p", { class: "note" }, t("dash.chart_exemplary")), chart("print-exemplary"))),
    teachingPointsTable(summary, 40),
    summary.teaching_points.length > 40 ? h("p", { class: "note" }, t("dash.points_more", { n: summary.teaching_points.length - 40 })) : "",
    h("p", { class: "note" }, t("dash.target_line", { n: num(goal.district_exemplary), goal: num(goal.goal), end: goal.end, expected: num(goal.expected_by_now) })),
    h("div", { class: "signature" }, h("span", {}, t("dash.sign_unit")), h("span", {}, t("dash.sign_date"))));
  draw(document.getElementById("print-weekly"), weekly(summary));
  draw(document.getElementById("print-quality"), quality(summary));
  draw(document.getElementById("print-exemplary"), exemplary(summary));
  document.title = `${t("dash.print_title", { scope: summary.scope.name })} · 同课`;
  apply(app);
}

async function main() {
  const account = await me().catch(() => null);
  topbar({ title: t("dash.print_page"), account, onLogout: async () => { await logout(); location.href = "/"; } });
  if (!account) {
    const next = encodeURIComponent(location.pathname + location.search);
    app.replaceChildren(h("p", { class: "panel" }, t("dash.sign_in"), " ", h("a", { href: `/login/?next=${next}` }, t("nav.login"))));
    return;
  }
  const params = Object.fromEntries(new URLSearchParams(location.search));
  try {
    const summary = await api(`/api/reports/summary?${query(params, PARAMS)}`);
    let termName = "";
    if (params.term_id) termName = (await api(`/api/terms/${encodeURIComponent(params.term_id)}`).catch(() => null))?.name ?? "";
    render(summary, termName);
  } catch (err) {
    errorBanner(err);
    app.replaceChildren(h("p", { class: "panel" }, h("a", { href: "/reports/" }, t("dash.back_to_dashboard"))));
  }
  window.addEventListener("beforeprint", resizeAll);
}

main();
