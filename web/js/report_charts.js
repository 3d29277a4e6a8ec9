// The 督导 dashboard's charts: Apache ECharts (vendored, web/vendor/echarts/) drawing SVG,
// so charts are sharp on screen and on paper (the A4 term report) and no canvas is needed.
// Each builder takes the /api/reports/summary answer and returns an ECharts option.
import * as echarts from "../vendor/echarts/echarts.esm.min.js";
import { t } from "./i18n.js";

const FONT = '"PingFang SC", "Microsoft YaHei", "Noto Sans CJK SC", "Source Han Sans SC", sans-serif';
const COLORS = { held: "#1a7f37", cancelled: "#c62828", not_held: "#b7791f", upcoming: "#c7d0db", brand: "#1f6feb" };
const QUALITY = { good: "#1a7f37", fair: "#d4a72c", poor: "#e8590c", bad: "#c62828", unknown: "#adb5bd" };

const pct = (v) => (v === null || v === undefined ? null : Math.round(v * 1000) / 10);
const monday = (iso) => { const [, m, d] = iso.split("-"); return `${Number(m)}/${Number(d)}`; };
const base = (extra = {}) => ({
  animation: false,
  textStyle: { fontFamily: FONT },
  grid: { left: 48, right: 24, top: 40, bottom: 36, containLabel: true },
  tooltip: { trigger: "axis" },
  ...extra,
});
const short = (name) => (name.length > 8 ? `${name.slice(0, 8)}…` : name);

/** Lessons held, cancelled, not held and still to come, by week. */
export function weekly(summary) {
  const weeks = summary.weekly;
  const rest = (w) => Math.max(w.scheduled - w.held - w.cancelled - w.not_held, 0);
  const bar = (key, name, data) => ({ name, type: "bar", stack: "lessons", data, itemStyle: { color: COLORS[key] } });
  return base({
    legend: { top: 0 },
    grid: { left: 48, right: 24, top: 48, bottom: 24, containLabel: true },
    xAxis: { type: "category", data: weeks.map((w) => monday(w.key)) },
    yAxis: { type: "value", name: t("dash.lessons") },
    series: [
      bar("held", t("dash.held"), weeks.map((w) => w.held)),
      bar("cancelled", t("dash.cancelled"), weeks.map((w) => w.cancelled)),
      bar("not_held", t("dash.not_held"), weeks.map((w) => w.not_held)),
      bar("upcoming", t("dash.upcoming"), weeks.map(rest)),
    ],
  });
}

/** Attendance rate of the receiving classrooms, per breakdown row. */
export function attendance(summary) {
  const rows = summary.rows.filter((r) => r.expected > 0);
  return base({
    xAxis: { type: "category", data: rows.map((r) => short(r.name || "—")), axisLabel: { interval: 0, rotate: rows.length > 6 ? 30 : 0 } },
    yAxis: { type: "value", max: 100, axisLabel: { formatter: "{value}%" } },
    series: [{ name: t("dash.attendance_rate"), type: "bar", data: rows.map((r) => pct(r.attendance_rate)),
      itemStyle: { color: COLORS.brand }, label: { show: rows.length <= 12, position: "top", formatter: "{c}%" } }],
  });
}

/** Hours received by each 教学点 (the top 15). */
export function teachingPoints(summary) {
  const points = summary.teaching_points.slice(0, 15).reverse();
  return base({
    grid: { left: 8, right: 40, top: 16, bottom: 24, containLabel: true },
    xAxis: { type: "value", name: t("dash.hours") },
    yAxis: { type: "category", data: points.map((p) => short(p.name)) },
    series: [{ name: t("dash.received_hours"), type: "bar", data: points.map((p) => p.hours),
      itemStyle: { color: COLORS.held }, label: { show: true, position: "right" } }],
  });
}

/** Receiving classrooms that came, by the 95th percentile of their packet loss. */
export function quality(summary) {
  const bands = ["good", "fair", "poor", "bad", "unknown"];
  return base({
    tooltip: { trigger: "item", formatter: "{b}: {c} ({d}%)" },
    legend: { orient: "vertical", right: 0, top: "middle", itemGap: 6 },
    series: [{ type: "pie", radius: ["38%", "66%"], center: ["32%", "50%"],
      label: { show: false },
      data: bands.map((b) => ({ name: t(`dash.quality_${b}`), value: summary.quality[b], itemStyle: { color: QUALITY[b] } })) }],
  });
}

/** Patrol coverage and talkbacks by week. */
export function patrol(summary) {
  const weeks = summary.weekly;
  return base({
    legend: { top: 0 },
    xAxis: { type: "category", data: weeks.map((w) => monday(w.key)) },
    yAxis: [
      { type: "value", max: 100, axisLabel: { formatter: "{value}%" } },
      { type: "value", name: t("dash.talks"), splitLine: { show: false } },
    ],
    series: [
      { name: t("dash.patrol_rate"), type: "line", data: weeks.map((w) => pct(w.patrol_rate)), itemStyle: { color: COLORS.brand } },
      { name: t("dash.talks"), type: "bar", yAxisIndex: 1, data: weeks.map((w) => w.talks), itemStyle: { color: "#b6c8e6" } },
    ],
  });
}

/** Evaluations and their mean score, per breakdown row. */
export function evaluations(summary) {
  const rows = summary.rows;
  return base({
    legend: { top: 0 },
    xAxis: { type: "category", data: rows.map((r) => short(r.name || "—")), axisLabel: { interval: 0, rotate: rows.length > 6 ? 30 : 0 } },
    yAxis: [
      { type: "value", name: t("dash.evaluations") },
      { type: "value", name: t("dash.mean_score"), min: 0, max: 100, splitLine: { show: false } },
    ],
    series: [
      { name: t("dash.evaluations"), type: "bar", data: rows.map((r) => r.evaluations), itemStyle: { color: "#7c3aed" } },
      { name: t("dash.mean_score"), type: "line", yAxisIndex: 1, data: rows.map((r) => r.mean_score), itemStyle: { color: COLORS.not_held } },
    ],
  });
}

/** The district's exemplary lessons toward the target, with where the plan expects it now. */
export function exemplary(summary) {
  const goal = summary.exemplary_target;
  return base({
    tooltip: { show: false },
    series: [{
      type: "gauge", min: 0, max: goal.goal, startAngle: 200, endAngle: -20, radius: "95%", center: ["50%", "60%"],
      progress: { show: true, width: 14, itemStyle: { color: COLORS.held } },
      axisLine: { lineStyle: { width: 14, color: [[Math.min(goal.expected_by_now / goal.goal, 1), "#e3e7ee"], [1, "#f4f6f8"]] } },
      pointer: { show: false }, axisTick: { show: false }, splitLine: { show: false },
      axisLabel: { show: false },
      title: { offsetCenter: [0, "30%"], fontSize: 12, color: "#5b6776" },
      detail: { offsetCenter: [0, "0%"], fontSize: 22, formatter: `{value} / ${goal.goal}` },
      data: [{ value: goal.district_exemplary, name: t("dash.expected_by_now", { n: goal.expected_by_now }) }],
    }],
  });
}

export const CHARTS = { weekly, attendance, teachingPoints, quality, patrol, evaluations, exemplary };

const live = new Map();

/** Draws (or redraws) one chart into `el`; SVG so print is sharp. */
export function draw(el, option) {
  let chart = live.get(el);
  if (!chart) {
    chart = echarts.init(el, null, { renderer: "svg" });
    live.set(el, chart);
  }
  chart.setOption(option, true);
  return chart;
}

/** Resizes every chart drawn (window resize, before printing). */
export function resizeAll() {
  for (const chart of live.values()) chart.resize();
}
