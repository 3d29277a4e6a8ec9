// What the dashboard (/reports/) and the printable term report (/reports/print/) share:
// the report's query string, number formats, KPI cards and the breakdown table.
import { h, t } from "./ui.js";

// The parameters /api/reports/* take, in the order a link shows them.
export const PARAMS = ["period", "day", "term_id", "date_from", "date_to", "county_id", "school_id", "by"];

/** The query string of a report request from a plain object (empty values left out). */
export function query(params, keep = PARAMS) {
  const q = new URLSearchParams();
  for (const key of keep) if (params[key]) q.set(key, params[key]);
  return q.toString();
}

export const pct = (v) => (v === null || v === undefined ? "—" : `${(v * 100).toFixed(1)}%`);
export const num = (v) => (v === null || v === undefined ? "—" : Number(v).toLocaleString("zh-CN"));
export const hours = (v) => (v === null || v === undefined ? "—" : Number(v).toLocaleString("zh-CN", { maximumFractionDigits: 1 }));
export const score = (v) => (v === null || v === undefined ? "—" : Number(v).toFixed(1));

/** The headline figures as cards (the same names the XLSX export uses). */
export function kpis(summary) {
  const x = summary.totals;
  const goal = summary.exemplary_target;
  // Of the lessons due so far (lessons still to come are not yet held or missed).
  const due = x.held + x.cancelled + x.not_held;
  const heldShare = due ? x.held / due : null;
  const card = (id, label, value, sub = "", cls = "") =>
    h("div", { class: `kpi ${cls}`, id: `kpi-${id}` }, h("span", { class: "label" }, label), h("b", {}, value), h("span", { class: "sub" }, sub));
  const low = (rate, bar) => (rate !== null && rate !== undefined && rate < bar ? "warn" : "");
  return h("div", { class: "kpis", id: "kpis" },
    card("scheduled", t("dash.scheduled"), num(x.scheduled), t("dash.of_which_cancelled", { n: num(x.cancelled) })),
    card("held", t("dash.held"), num(x.held), t("dash.share", { p: pct(heldShare) }), low(heldShare, 0.9)),
    card("not_held", t("dash.not_held"), num(x.not_held), t("dash.not_held_hint"), x.not_held ? "warn" : ""),
    card("on_time", t("dash.on_time_rate"), pct(x.on_time_rate), t("dash.of_held", { n: num(x.on_time) }), low(x.on_time_rate, 0.9)),
    card("attendance", t("dash.attendance_rate"), pct(x.attendance_rate), t("dash.present_of", { n: num(x.present), m: num(x.expected) }), low(x.attendance_rate, 0.9)),
    card("receivers", t("dash.receivers_per_lesson"), x.receivers_per_lesson === null ? "—" : x.receivers_per_lesson.toFixed(1), t("dash.receivers_total", { n: num(x.receivers) })),
    card("delivered", t("dash.delivered_hours"), hours(x.delivered_hours), t("dash.received", { n: hours(x.received_hours) })),
    card("patrol", t("dash.patrol_rate"), pct(x.patrol_rate), t("dash.talks_n", { n: num(x.talks) })),
    card("evaluations", t("dash.evaluations"), num(x.evaluations), t("dash.mean", { s: score(x.mean_score) })),
    card("exemplary", t("dash.exemplary"), num(x.exemplary), t("dash.recordings_n", { n: num(x.recordings) })),
    card("target", t("dash.target"), `${num(goal.district_exemplary)} / ${num(goal.goal)}`,
      t("dash.expected_by_now", { n: num(goal.expected_by_now) }), goal.district_exemplary < goal.expected_by_now ? "warn" : "good"));
}

// The breakdown's columns: [key, label key, format].
export const COLUMNS = [
  ["scheduled", "dash.scheduled", num],
  ["held", "dash.held", num],
  ["cancelled", "dash.cancelled", num],
  ["not_held", "dash.not_held", num],
  ["on_time_rate", "dash.on_time_rate", pct],
  ["receivers_per_lesson", "dash.receivers_per_lesson", (v) => (v === null ? "—" : v.toFixed(1))],
  ["delivered_hours", "dash.delivered_hours", hours],
  ["expected", "dash.expected", num],
  ["attendance_rate", "dash.attendance_rate", pct],
  ["received_hours", "dash.received_hours", hours],
  ["patrol_rate", "dash.patrol_rate", pct],
  ["evaluations", "dash.evaluations", num],
  ["mean_score", "dash.mean_score", score],
  ["exemplary", "dash.exemplary", num],
];

const RATES = new Set(["on_time_rate", "attendance_rate"]);

/** The breakdown table: one row per county / school / subject / teacher and a 合计 row.
 * `onRow(row)`, when given, makes rows clickable (the drill-down). */
export function breakdown(summary, { onRow, columns = COLUMNS, id = "breakdown" } = {}) {
  const cell = (row, [key, , fmt]) => {
    const v = row[key];
    const low = RATES.has(key) && v !== null && v !== undefined && v < 0.9;
    return h("td", { class: `num${low ? " rate-low" : ""}` }, fmt(v));
  };
  const body = summary.rows.map((row) =>
    h("tr", {
      class: onRow ? "drill" : "",
      dataset: { key: row.key ?? "" },
      tabindex: onRow ? "0" : undefined,
      onclick: onRow ? () => onRow(row) : undefined,
      onkeydown: onRow ? (e) => { if (e.key === "Enter") onRow(row); } : undefined,
    },
    h("td", {}, onRow ? h("a", { href: "#", onclick: (e) => e.preventDefault() }, row.name || t("dash.unnamed")) : row.name || t("dash.unnamed")),
    columns.map((c) => cell(row, c))));
  return h("div", { class: "table-scroll" },
    h("table", { class: "breakdown", id },
      h("thead", {}, h("tr", {}, h("th", {}, t(`dash.by_${summary.by}`)), columns.map(([, label]) => h("th", { class: "num" }, t(label))))),
      h("tbody", {}, body.length ? body : h("tr", {}, h("td", { colspan: columns.length + 1, class: "note" }, t("dash.no_rows")))),
      h("tfoot", {}, h("tr", {}, h("td", {}, t("dash.total")), columns.map((c) => cell(summary.totals, c))))));
}

/** The teaching points (教学点): hours received and attendance, most hours first. */
export function teachingPointsTable(summary, limit = Infinity) {
  const rows = summary.teaching_points.slice(0, limit);
  return h("div", { class: "table-scroll" },
    h("table", { class: "breakdown", id: "teaching-points" },
      h("thead", {}, h("tr", {},
        h("th", {}, t("dash.teaching_point")), h("th", {}, t("dash.county")),
        h("th", { class: "num" }, t("dash.received_hours")), h("th", { class: "num" }, t("dash.expected")),
        h("th", { class: "num" }, t("dash.present")), h("th", { class: "num" }, t("dash.attendance_rate")))),
      h("tbody", {}, rows.length
        ? rows.map((p) => h("tr", {},
          h("td", {}, p.name), h("td", {}, p.county || t("dash.district_direct")),
          h("td", { class: "num" }, hours(p.hours)), h("td", { class: "num" }, num(p.expected)),
          h("td", { class: "num" }, num(p.present)),
          h("td", { class: `num${p.attendance_rate !== null && p.attendance_rate < 0.9 ? " rate-low" : ""}` }, pct(p.attendance_rate))))
        : h("tr", {}, h("td", { colspan: 6, class: "note" }, t("dash.no_points"))))));
}

/** "2026-03-02 至 2026-07-10" with the period's kind. */
export function periodLine(period) {
  return t("dash.period_line", { kind: t(`dash.period_${period.kind}`), from: period.first_day, to: period.last_day });
}
