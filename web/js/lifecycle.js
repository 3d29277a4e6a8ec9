// The screens around a lesson, shared by the lead, receiver, patrol and join pages: no link,
// an insecure page, the lesson is over (duration, replay, the lead's summary), and this tab
// was replaced by another device. Each replaces the classroom layout, so no control and no
// stale stage/hand/mute mark is left on screen.
import { api } from "./api.js";
import { releaseDevices } from "./client.js";
import { fmtDateTime, h, insecurePanel, noticePanel, t } from "./ui.js";

/** Seconds as "40 分 5 秒" / "1 小时 2 分" (a lesson's length, read by people). */
export function fmtDuration(seconds) {
  const s = Math.max(0, Math.round(seconds ?? 0));
  const hh = Math.floor(s / 3600);
  const mm = Math.floor((s % 3600) / 60);
  const ss = s % 60;
  if (hh) return t("dur.hm", { h: hh, m: mm });
  if (mm) return t("dur.ms", { m: mm, s: ss });
  return t("dur.s", { s: ss });
}

/** The classroom page opened without a join link: an explanation and nothing to click. */
export function showNoLink(app) {
  app.replaceChildren(noticePanel({
    id: "no-link",
    title: t("nolink.title"),
    lines: [t("nolink.text"), t("nolink.teacher")],
    actions: [h("a", { class: "btn primary", href: "/" }, t("common.back_home")), h("a", { class: "btn", href: "/check/" }, t("nav.check"))],
  }));
}

/** Plain http on the LAN: the page may not use devices; say what to do (issue 12). */
export function showInsecure(app, what) {
  app.replaceChildren(insecurePanel({ what }));
}

/** GET /api/join/{code}/outcome (docs/api.md). */
export function outcomeByCode(code) {
  return () => api(`/api/join/${encodeURIComponent(code)}/outcome`);
}

/**
 * The same facts for a signed-in inspector's wall, which holds no link: the lesson (times) and
 * the recording the service made last.
 */
export function outcomeByLesson(lessonId) {
  return async () => {
    const lesson = await api(`/api/lessons/${encodeURIComponent(lessonId)}`);
    const status = await api(`/api/library/recording-status/${encodeURIComponent(lessonId)}`).catch(() => null);
    const recordings = [];
    if (status?.recording_id) {
      const rec = await api(`/api/library/${encodeURIComponent(status.recording_id)}`).catch(() => null);
      if (rec) {
        recordings.push({
          recording_id: rec.id, state: rec.state, rendition_state: rec.rendition_state,
          rendition_progress: rec.rendition_progress, replay_url: `/replay/?id=${rec.id}`,
        });
      }
    }
    const duration = lesson.started_at && lesson.ended_at ? (new Date(lesson.ended_at) - new Date(lesson.started_at)) / 1000 : null;
    return { lesson, state: lesson.state, started_at: lesson.started_at, ended_at: lesson.ended_at, duration_s: duration, recordings };
  };
}

const POLL_MS = 3000;
const WAIT_FOR_CATALOGUE_MS = 60_000; // a stopped recording is catalogued within seconds
const WAIT_FOR_RENDITION_MS = 30 * 60_000;

/**
 * The "本节课已结束" panel. `ended` is the lesson_ended message (null when the page learnt it
 * from a refused join); `outcome()` resolves to the outcome (docs/api.md); `sawRecording`:
 * the page saw the recording on (for servers whose lesson_ended carries no `recorded`).
 * Returns {root, stop()}.
 */
export function endedPanel({ ended = null, outcome, role = "receiver", sawRecording = false, compact = false }) {
  const duration = h("p", { class: "big-line", id: "ended-duration" }, t("common.loading"));
  const when = h("p", { class: "muted", id: "ended-at" });
  const replay = h("div", { id: "ended-replay" });
  const summary = role === "lead" && ended?.report ? reportList(ended.report) : "";
  const root = h("div", { class: compact ? "ended compact" : "panel notice ended", id: "lesson-ended", dataset: { role } },
    h(compact ? "h3" : "h1", {}, t("ended.title")),
    duration, when, replay,
    summary,
    compact ? "" : h("p", { class: "muted" }, t("ended.devices_off")),
    role === "lead" && !compact ? h("p", { class: "muted", id: "ended-no-restart" }, t("ended.cannot_restart")) : "",
    compact ? "" : h("div", { class: "actions" }, h("a", { class: "btn", href: "/" }, t("common.back_home"))));
  const expectRecording = ended?.recorded ?? sawRecording;
  const started = Date.now();
  let timer = 0;
  let stopped = false;

  const showDuration = (seconds, startedAt) => {
    if (seconds === null || seconds === undefined) {
      duration.textContent = startedAt === null ? t("ended.never_started") : "";
    } else {
      duration.textContent = t("ended.duration", { d: fmtDuration(seconds) });
      duration.dataset.seconds = String(Math.round(seconds));
    }
  };
  if (ended && "duration_s" in ended) showDuration(ended.duration_s, ended.started_at);

  const showRecordings = (recordings) => {
    if (!recordings.length) {
      const waiting = expectRecording && Date.now() - started < WAIT_FOR_CATALOGUE_MS;
      replay.replaceChildren(h("p", { class: "muted", id: waiting ? "recording-pending" : "not-recorded" },
        t(waiting ? "ended.recording_pending" : "ended.not_recorded")));
      return waiting;
    }
    let busy = false;
    replay.replaceChildren(...recordings.map((rec, i) => {
      const making = ["queued", "running"].includes(rec.rendition_state);
      busy ||= making;
      const label = recordings.length > 1 ? t("ended.replay_n", { n: i + 1 }) : t("ended.replay");
      return h("p", { class: "replay-line", dataset: { rendition: rec.rendition_state } },
        h("a", { class: "btn primary replay-link", href: rec.replay_url }, label), " ",
        h("span", { class: "muted rendition-state" }, t(`rendition.${rec.rendition_state}`, { pct: Math.round(rec.rendition_progress * 100) })));
    }), h("p", { class: "muted small" }, t("ended.replay_hint")));
    return busy && Date.now() - started < WAIT_FOR_RENDITION_MS;
  };

  const poll = async () => {
    if (stopped) return;
    let again = true;
    try {
      const o = await outcome();
      if (!ended || !("duration_s" in ended) || ended.duration_s === null) showDuration(o.duration_s, o.started_at);
      when.textContent = o.ended_at ? t("ended.ended_at", { t: fmtDateTime(o.ended_at) }) : "";
      again = showRecordings(o.recordings ?? []);
    } catch (err) {
      // The facts are a bonus: the title already says the lesson is over.
      console.debug("lesson outcome unavailable", err);
      if (duration.textContent === t("common.loading")) duration.textContent = "";
      again = Date.now() - started < WAIT_FOR_CATALOGUE_MS;
    }
    if (again && !stopped) timer = setTimeout(poll, POLL_MS);
  };
  poll();
  return { root, stop() { stopped = true; clearTimeout(timer); } };
}

function reportList(report) {
  const rooms = report.classrooms ?? [];
  const came = rooms.filter((c) => c.joins > 0).length;
  return h("div", { class: "summary", id: "lesson-summary" },
    h("h3", {}, t("ended.summary")),
    h("p", {}, t("ended.summary_counts", { came, rooms: rooms.length, hands: report.hands_raised ?? 0, notes: report.notes ?? 0 })),
    came
      ? h("ul", { class: "checklist" }, ...rooms.map((c) => h("li", { dataset: { classroom: c.classroom_id, came: String(c.joins > 0) } },
        h("b", {}, c.name),
        c.joins > 0
          ? t("ended.present", { d: fmtDuration(c.present_s), n: c.joins })
          : h("span", { class: "warn-text" }, t("ended.absent")))))
      : h("p", { class: "muted" }, t("ended.no_classrooms")));
}

/** The lesson is over: devices off, and the ended panel instead of the classroom. */
export function showEnded(app, options) {
  releaseDevices();
  document.getElementById("toast")?.classList.add("hidden"); // no stale "举手" over the ended screen
  const panel = endedPanel(options);
  app.replaceChildren(panel.root);
  return panel;
}

/** Another device (or tab) joined as this classroom: one explanation and a way back. */
export function showReplaced(app) {
  releaseDevices();
  app.replaceChildren(noticePanel({
    id: "replaced",
    title: t("replaced.title"),
    lines: [t("replaced.text"), t("replaced.devices_off")],
    // Joining again from this tab's stored join takes the classroom back (the other gets replaced).
    actions: [h("button", { class: "primary big", type: "button", id: "take-back", onclick: () => location.reload() }, t("replaced.take_back"))],
  }));
}
