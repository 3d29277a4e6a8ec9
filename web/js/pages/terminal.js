// 教室终端 (/terminal/): the classroom's own device. Enrolled once with a code from the admin
// page; then it shows the classroom's lessons today with a countdown, joins a receiving
// classroom's lesson by itself from join_before_s before the start (a lead classroom opens
// the lead's ready screen), comes back here after the lesson, and after a reload or a power
// cut it finds its credential in localStorage and carries on. Its clock is the service's
// (server_time); it says so when its own clock is far off. Kiosk: large text, big buttons,
// everything reachable with Tab and Enter.
import { ApiError, api } from "../api.js";
import { devicesAllowed } from "../client.js";
import { storeJoin } from "../lesson.js";
import { showInsecure } from "../lifecycle.js";
import { NOT_ENROLLED, forgetTerminal, loadTerminal, saveTerminal, terminalApi, terminalJoin } from "../terminal_link.js";
import { apply, catchAll, errorBanner, h, t, topbar, userMessage } from "../ui.js";

catchAll();
const { slot } = topbar({ title: t("terminal.title") });
const app = document.getElementById("app");

const REFRESH_MS = 30_000; // the schedule is read again this often (and last_seen kept fresh)
const RETRY_MS = 10_000; // after a failed read (the network comes up after the PC, say)
const PAGES = { lead: "/lead/", receiver: "/receiver/" };

const S = {
  today: null, // GET /api/terminal/today
  skewMs: 0, // service clock minus this device's clock
  offline: false,
  joining: null, // the lesson being joined
  refused: "", // why the last join failed (shown until the next try)
};

const now = () => Date.now() + S.skewMs;

// Layout, built once -------------------------------------------------------------------------
const clock = h("div", { class: "terminal-clock", id: "terminal-clock" });
const dateLine = h("div", { class: "muted", id: "terminal-date" });
const roomName = h("h1", { class: "terminal-room", id: "terminal-room" });
const clockWarn = h("p", { class: "banner warn hidden", id: "clock-warning", role: "alert" });
const offline = h("p", { class: "banner warn hidden", id: "terminal-offline", role: "status" }, t("terminal.offline"));
const next = h("section", { class: "panel terminal-next", id: "terminal-next", "aria-live": "polite" });
const list = h("section", { class: "panel" }, h("h2", {}, t("terminal.today")), h("div", { id: "terminal-lessons" }));
const fullBtn = h("button", { type: "button", id: "fullscreen", onclick: () => document.documentElement.requestFullscreen?.().catch(() => {}) },
  t("terminal.fullscreen"));

function layout() {
  app.replaceChildren(
    h("div", { class: "terminal-head" }, h("div", {}, roomName, dateLine), clock),
    clockWarn, offline, next, list,
    h("div", { class: "actions terminal-foot" }, fullBtn));
  apply(app);
}

// Enrollment ----------------------------------------------------------------------------------
function showEnroll(reason = "") {
  S.today = null; // nothing is joined until the device is enrolled again
  const code = h("input", { id: "enroll-code", autocomplete: "off", autocapitalize: "characters", spellcheck: false,
    placeholder: "XXXX-XXXX", class: "terminal-input", required: true });
  code.value = new URLSearchParams(location.search).get("enroll") ?? "";
  const name = h("input", { id: "enroll-name", class: "terminal-input", maxlength: 200, placeholder: t("terminal.name_placeholder") });
  const error = h("p", { class: "banner error hidden", id: "enroll-error", role: "alert" });
  const submit = h("button", { class: "primary big", type: "submit", id: "enroll-submit" }, t("terminal.enroll"));
  const form = h("form", { class: "stack", id: "enroll-form", novalidate: true },
    h("label", { for: "enroll-code" }, t("terminal.code")), code,
    h("label", { for: "enroll-name" }, t("terminal.name")), name,
    error, h("div", { class: "actions" }, submit));
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    error.classList.add("hidden");
    if (!code.value.trim()) {
      error.textContent = t("terminal.code_missing");
      error.classList.remove("hidden");
      return code.focus();
    }
    submit.disabled = true;
    try {
      const enrolled = await api("/api/terminal/enroll", { method: "POST", body: { code: code.value.trim(), name: name.value.trim() } });
      saveTerminal(enrolled);
      history.replaceState(null, "", "/terminal/");
      layout();
      await refresh();
    } catch (err) {
      error.textContent = userMessage(err);
      error.classList.remove("hidden");
      code.focus();
    } finally {
      submit.disabled = false;
    }
  });
  const lines = reason ? [h("p", { class: "banner error", id: "terminal-refused" }, reason)] : [];
  app.replaceChildren(h("div", { class: "panel notice terminal-enroll", id: "terminal-enroll" },
    h("h1", {}, t(reason ? "terminal.enroll_again_title" : "terminal.enroll_title")),
    ...lines,
    h("ol", { class: "steps", id: "enroll-steps" },
      h("li", {}, t("terminal.step_admin")),
      h("li", {}, t("terminal.step_code")),
      h("li", {}, t("terminal.step_kiosk"))),
    form));
  (code.value ? name : code).focus();
}

// The schedule --------------------------------------------------------------------------------
async function refresh() {
  clearTimeout(refresh.timer);
  const sent = Date.now();
  try {
    const today = await terminalApi("/api/terminal/today");
    const received = Date.now();
    // The answer was made about halfway through the round trip.
    S.skewMs = new Date(today.server_time).getTime() - (sent + received) / 2;
    S.today = today;
    S.offline = false;
    refresh.timer = setTimeout(refresh, REFRESH_MS);
  } catch (err) {
    if (err instanceof ApiError && NOT_ENROLLED.has(err.code)) {
      forgetTerminal();
      return showEnroll(t(`terminal.refused.${err.code}`));
    }
    S.offline = true;
    refresh.timer = setTimeout(refresh, RETRY_MS);
  }
  render();
}

/** The lesson to show large: live, or the next one not over yet. */
function current() {
  const at = now();
  return (S.today?.lessons ?? []).find((l) => l.state === "live"
    || (l.state === "scheduled" && new Date(l.scheduled_end).getTime() > at)) ?? null;
}

/** Whether `lesson` is to be joined now: live, or within join_before_s of its start. */
function due(lesson) {
  if (!lesson) return false;
  if (lesson.state === "live") return true;
  return now() >= new Date(lesson.scheduled_start).getTime() - S.today.join_before_s * 1000;
}

function countdown(ms) {
  const s = Math.max(0, Math.ceil(ms / 1000));
  const hh = Math.floor(s / 3600);
  const mm = Math.floor((s % 3600) / 60);
  const ss = String(s % 60).padStart(2, "0");
  return hh ? `${hh}:${String(mm).padStart(2, "0")}:${ss}` : `${mm}:${ss}`;
}

function lessonLine(lesson) {
  const who = [lesson.subject, lesson.teacher].filter(Boolean).join(" · ");
  const role = lesson.role === "lead" ? t("terminal.role_lead") : t("terminal.role_receiver", { room: `${lesson.lead.school} ${lesson.lead.name}` });
  return [who, role].filter(Boolean).join(" · ");
}

function renderNext() {
  const lesson = current();
  if (!lesson) {
    next.dataset.state = "none";
    next.replaceChildren(h("p", { class: "terminal-big", id: "no-more" }, t(S.today?.lessons?.length ? "terminal.no_more" : "terminal.none_today")));
    return;
  }
  const start = new Date(lesson.scheduled_start).getTime();
  const joinAt = start - S.today.join_before_s * 1000;
  const before = S.today.join_before_s >= 60
    ? t("terminal.minutes", { n: Math.round(S.today.join_before_s / 60) })
    : t("terminal.seconds", { n: S.today.join_before_s });
  let status;
  let state;
  if (S.joining === lesson.id) {
    state = "joining";
    status = h("p", { class: "terminal-count", id: "terminal-status" }, t("terminal.joining"));
  } else if (lesson.state === "live") {
    state = "live";
    status = h("p", { class: "terminal-count live-text", id: "terminal-status" }, t("terminal.live_now"));
  } else {
    state = "countdown";
    const toStart = start - now();
    status = h("div", {},
      h("p", { class: "terminal-count", id: "terminal-countdown" }, toStart > 0 ? t("terminal.starts_in", { t: countdown(toStart) }) : t("terminal.starting")),
      h("p", { class: "terminal-auto", id: "terminal-auto" }, lesson.role === "lead"
        ? t("terminal.auto_lead", { before, mode: t(`terminal.mode_${lesson.start_mode}`) })
        : t("terminal.auto_receiver", { before, t: shown(new Date(joinAt).toISOString()) })));
  }
  next.dataset.state = state;
  next.dataset.lesson = lesson.id;
  const enter = h("button", { class: "primary big terminal-enter", type: "button", id: "enter-now", onclick: () => join(lesson) },
    t(lesson.role === "lead" ? "terminal.enter_lead" : "terminal.enter_now"));
  const hadFocus = next.contains(document.activeElement) || document.activeElement === document.body;
  next.replaceChildren(
    h("p", { class: "muted" }, `${shown(lesson.scheduled_start)}–${shown(lesson.scheduled_end)}`),
    h("h2", { class: "terminal-title", id: "terminal-lesson-title" }, lesson.title),
    h("p", { class: "terminal-who" }, lessonLine(lesson)),
    status,
    S.refused ? h("p", { class: "banner error", id: "join-refused" }, S.refused) : "",
    h("div", { class: "actions" }, enter));
  if (hadFocus) enter.focus();
}

/** A time as the service's clock reads it (the wall clocks of the district). */
function shown(iso) {
  return new Date(iso).toLocaleTimeString("zh-CN", { hour: "2-digit", minute: "2-digit", timeZone: S.today?.timezone });
}

function renderList() {
  const box = document.getElementById("terminal-lessons");
  const lessons = S.today?.lessons ?? [];
  if (!lessons.length) {
    box.replaceChildren(h("p", { class: "muted" }, t("terminal.none_today")));
    return;
  }
  box.replaceChildren(h("table", { class: "terminal-table" },
    h("tbody", {}, ...lessons.map((l) => h("tr", { dataset: { lesson: l.id, state: l.state } },
      h("td", { class: "nowrap" }, `${shown(l.scheduled_start)}–${shown(l.scheduled_end)}`),
      h("td", {}, h("b", {}, l.title), h("div", { class: "muted small" }, lessonLine(l))),
      h("td", { class: "nowrap" }, h("span", { class: `pill ${l.state}` }, t(`state.${l.state}`))))))));
}

function renderClock() {
  if (!S.today) return;
  const at = new Date(now());
  clock.textContent = at.toLocaleTimeString("zh-CN", { hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false, timeZone: S.today.timezone });
  dateLine.textContent = at.toLocaleDateString("zh-CN", { year: "numeric", month: "long", day: "numeric", weekday: "long", timeZone: S.today.timezone });
  const off = Math.abs(S.skewMs) / 1000;
  clockWarn.classList.toggle("hidden", off <= S.today.clock_warn_s);
  if (off > S.today.clock_warn_s) {
    // Both readings, as a person compares two clocks: "本机显示 …，服务器时间 …".
    const fmt = (ms, timeZone) => new Date(ms).toLocaleString("zh-CN", { year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit", hour12: false, timeZone });
    clockWarn.textContent = t("terminal.clock_off", { device: fmt(Date.now()), server: fmt(now(), S.today.timezone) });
  }
}

function render() {
  if (!S.today) return;
  roomName.textContent = `${S.today.classroom.school} ${S.today.classroom.name}`;
  offline.classList.toggle("hidden", !S.offline);
  renderClock();
  renderNext();
  renderList();
}

// Joining -------------------------------------------------------------------------------------
async function join(lesson) {
  if (S.joining) return;
  if (!devicesAllowed()) return showInsecure(app, t(lesson.role === "lead" ? "insecure.what_lead" : "insecure.what_classroom"));
  S.joining = lesson.id;
  S.refused = "";
  renderNext();
  try {
    const joined = await terminalJoin(lesson.id);
    storeJoin(null, joined, { terminal: true, skewMs: S.skewMs, timezone: S.today?.timezone });
    location.replace(PAGES[joined.role] ?? "/");
  } catch (err) {
    S.joining = null;
    if (err instanceof ApiError && NOT_ENROLLED.has(err.code)) {
      forgetTerminal();
      return showEnroll(t(`terminal.refused.${err.code}`));
    }
    S.refused = userMessage(err);
    joinFailedAt = Date.now();
    await refresh();
  }
}

let joinFailedAt = 0;
const JOIN_RETRY_MS = 15_000; // a refused or failed auto-join is tried again after this

function tick() {
  if (!S.today || S.joining) return;
  renderClock();
  const lesson = current();
  if (due(lesson) && Date.now() - joinFailedAt > JOIN_RETRY_MS) {
    join(lesson);
    return;
  }
  renderNext();
}

async function main() {
  slot.append(h("span", { class: "pill", id: "terminal-badge" }, t("terminal.badge")));
  setInterval(tick, 1000);
  if (!loadTerminal()) return showEnroll();
  layout();
  await refresh();
}

main().catch((err) => errorBanner(err));
window.tongkeTerminal = { state: S };
