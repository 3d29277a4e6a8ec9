// The lesson report (课堂考勤报告): who came, when, how long, on stage, how well connected.
// /lesson-report/?id=<lesson id>; a live lesson refreshes itself.
import { api, logout, me } from "../api.js";
import { apply, banner, catchAll, errorBanner, fmtDateTime, fmtTime, h, t, topbar } from "../ui.js";

catchAll();
const app = document.getElementById("app");
const REFRESH_MS = 15_000;

const minutes = (s) => (s === null || s === undefined ? "—" : (s / 60).toFixed(1));
const pct = (v) => (v === null || v === undefined ? "—" : `${(v * 100).toFixed(1)}%`);
const ms = (v) => (v === null || v === undefined ? "—" : `${Math.round(v)}`);

function pair(p50, p95, fmt) {
  if (p50 === null || p50 === undefined) return "—";
  return `${fmt(p50)} / ${fmt(p95)}`;
}

function row(c) {
  const q = c.quality;
  const late = c.status === "late" ? t("report.late_by", { m: minutes(c.late_s) }) : "";
  return h("tr", { class: c.status, dataset: { classroom: c.classroom.id, status: c.status } },
    h("td", {}, h("b", {}, c.classroom.name), h("span", { class: "sub" }, c.classroom.school)),
    h("td", {}, t(`report.role_${c.role}`)),
    h("td", {}, h("span", { class: `pill ${c.status}` }, t(`report.status_${c.status}`)), late ? h("span", { class: "sub" }, late) : ""),
    h("td", {}, c.joined_at ? fmtTime(c.joined_at) : "—"),
    h("td", {}, c.left_at ? fmtTime(c.left_at) : c.joined_at ? t("report.still_here") : "—"),
    h("td", { class: "num" }, minutes(c.present_s)),
    h("td", { class: "num" }, c.periods_lost),
    h("td", { class: "num" }, minutes(c.stage_s)),
    h("td", { class: "num" }, pair(q.loss_p50, q.loss_p95, pct)),
    h("td", { class: "num" }, pair(q.jitter_p50_ms, q.jitter_p95_ms, ms)),
    h("td", { class: "num" }, pair(q.rtt_p50_ms, q.rtt_p95_ms, ms)));
}

function counts(report) {
  const receivers = report.classrooms.filter((c) => c.role === "receiver");
  const n = (status) => receivers.filter((c) => c.status === status).length;
  const ended = report.lesson.state === "ended";
  const box = (cls, label, value) => h("div", { class: `count ${cls}` }, h("b", {}, value), label);
  if (!ended) {
    const here = receivers.filter((c) => c.joined_at && !c.left_at).length;
    return h("div", { class: "report-counts", id: "report-counts" },
      box("", t("report.expected"), receivers.length), box("", t("report.here_now"), here));
  }
  return h("div", { class: "report-counts", id: "report-counts" },
    box("", t("report.expected"), receivers.length),
    box("present", t("report.status_present"), n("present")),
    box("late", t("report.status_late"), n("late")),
    box("absent", t("report.status_absent"), n("absent")));
}

function render(report) {
  const l = report.lesson;
  const meta = [l.subject, l.grade, l.teacher].filter(Boolean).join(" · ");
  const planned = t("report.planned", { from: fmtDateTime(l.scheduled_start), to: fmtTime(l.scheduled_end) });
  const actual = l.started_at
    ? t("report.actual", { from: fmtDateTime(l.started_at), to: l.ended_at ? fmtTime(l.ended_at) : t("report.now"), m: minutes(report.live_s) })
    : t("report.never_live");
  const head = ["report.col_classroom", "report.col_role", "report.col_status", "report.col_joined", "report.col_left",
    "report.col_present", "report.col_lost", "report.col_stage", "report.col_loss", "report.col_jitter", "report.col_rtt"];
  const numeric = new Set(["report.col_present", "report.col_lost", "report.col_stage", "report.col_loss", "report.col_jitter", "report.col_rtt"]);
  app.replaceChildren(
    h("section", { class: "panel report-head" },
      h("h1", { id: "report-title" }, l.title),
      h("p", { class: "meta" }, meta, " · ", t("report.lead_room", { room: `${l.lead.school} ${l.lead.name}` })),
      h("p", { class: "meta" }, planned),
      h("p", { class: "meta", id: "report-actual" }, actual, " ", h("span", { class: `pill ${l.state}` }, t(`state.${l.state}`))),
      counts(report)),
    h("section", { class: "panel" },
      h("table", { class: "report-table", id: "report-table" },
        h("thead", {}, h("tr", {}, head.map((k) => h("th", { class: numeric.has(k) ? "num" : "" }, t(k))))),
        h("tbody", {}, report.classrooms.map(row))),
      h("p", { class: "report-note" }, t("report.note", { late: Math.round(report.late_after_s / 60 * 10) / 10 })),
      h("p", { class: "report-note" }, t("report.as_of", { t: fmtDateTime(report.as_of) }))),
    h("div", { class: "actions", id: "report-actions" },
      h("button", { type: "button", onclick: () => window.print() }, t("report.print")),
      h("a", { class: "btn", href: "/admin/" }, t("nav.admin"))));
}

async function load(id) {
  try {
    const report = await api(`/api/lessons/${encodeURIComponent(id)}/attendance`);
    render(report);
    banner("");
    if (report.lesson.state !== "ended") setTimeout(() => load(id), REFRESH_MS);
  } catch (err) {
    errorBanner(err);
  }
}

async function main() {
  const account = await me().catch(() => null);
  topbar({ title: t("report.title"), account, onLogout: async () => { await logout(); location.href = "/"; } });
  const id = new URLSearchParams(location.search).get("id");
  if (!account) {
    const next = encodeURIComponent(location.pathname + location.search);
    app.replaceChildren(h("p", { class: "panel" }, t("report.sign_in"), " ", h("a", { href: `/login/?next=${next}` }, t("nav.login"))));
    return;
  }
  if (!id) {
    app.replaceChildren(h("p", { class: "panel" }, t("report.no_id")));
    return;
  }
  await load(id);
  apply();
}

main();
