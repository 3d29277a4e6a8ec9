// 巡课: every live lesson as a tile (the lead's low layer); click one for its main picture and
// sound. The patrol peer is invisible to the lesson and publishes nothing (it has no control to
// try). Timestamped evaluation notes with scores (评课).
import { api, me } from "../api.js";
import { LessonClient, LessonMedia } from "../client.js";
import { audioSink, every, exchange, followParticipants, loadJoin, qualityPill, videoTile } from "../lesson.js";
import { endedPanel, outcomeByCode, outcomeByLesson, showEnded } from "../lifecycle.js";
import { apply, banner, catchAll, fmtOffset, h, t, toast, topbar, userMessage, errorBanner } from "../ui.js";

catchAll();
const { slot } = topbar({ title: t("patrol.title") });
const app = document.getElementById("app");
const wall = h("div", { class: "wall", id: "wall" });
const focusBox = h("div", { class: "classroom hidden", id: "focus" });
app.replaceChildren(
  h("p", { class: "banner info", id: "patrol-note" }, t("patrol.invisible")),
  focusBox,
  wall,
);
apply(app);
const sink = audioSink(app);
const lessons = new Map(); // lesson id -> entry
let focused = null;

const SCORES = ["goal", "process", "effect", "interaction"];

/**
 * One lesson on the wall: its own signaling client and receive-only media. `outcome` reads how
 * the lesson went once it ends (by link or, signed in, by lesson id).
 */
function addLesson(getJoin, info = {}, outcome = null) {
  const client = new LessonClient({ getJoin, label: `p${lessons.size}` });
  const media = new LessonMedia(client);
  const video = videoTile({ placeholder: t("common.loading") });
  video.root.classList.add("clickable");
  const title = h("div", { class: "name" }, info.title ?? "");
  const meta = h("div", { class: "meta small muted" });
  const conn = h("span", { class: "pill" }, t("conn.connecting"));
  const count = h("span", { class: "pill" });
  const rec = h("span", { class: "rec hidden recording-notice" }, t("recording.notice"));
  const q = qualityPill();
  const root = h("div", { class: "tile", title: t("patrol.open") }, video.root, h("div", { class: "row" }, title, conn),
    meta, h("div", { class: "row" }, count, rec, q.root));
  const entry = { client, media, video, root, info, joined: null, participants: new Map(), notes: [], quality: q, ended: null, sawRecording: false };
  root.addEventListener("click", (e) => root.dataset.state !== "ended" && !e.target.closest("a") && focus(entry));
  wall.append(root);

  const describe = () => {
    const l = entry.joined?.lesson ?? {};
    title.textContent = l.title ?? info.title ?? "";
    meta.textContent = [l.school, l.teacher, l.subject, l.grade].filter(Boolean).join(" · ");
    const receivers = [...entry.participants.values()].filter((p) => p.role === "receiver").length;
    count.textContent = t("patrol.participants", { n: receivers });
    root.dataset.lesson = l.id ?? "";
    root.dataset.participants = String(entry.participants.size);
  };
  client.on("state", (state, { attempt }) => {
    conn.className = `pill ${state === "joined" ? "good" : state === "reconnecting" ? "poor" : ""}`;
    conn.textContent = state === "reconnecting" ? t("conn.reconnecting", { n: attempt }) : t(`conn.${state}`) ?? state;
  });
  const setRecording = (on) => {
    rec.classList.toggle("hidden", !on);
    entry.sawRecording ||= on;
    if (focused === entry) focusRec.classList.toggle("hidden", !on);
  };
  client.on("recording_changed", (m) => setRecording(m.on));
  client.on("lesson_ended", (m) => { entry.ended = m; });
  client.on("fatal", (err) => {
    conn.className = "pill";
    clearInterval(entry.statsTimer);
    media.close();
    rec.classList.add("hidden");
    q.root.classList.add("hidden");
    if (err.code !== "lesson_ended") {
      conn.className = "pill poor";
      conn.textContent = userMessage(err);
      video.setPlaceholder(userMessage(err));
      return;
    }
    // The lesson is over: the tile becomes its ended card (duration, replay link).
    conn.textContent = t("state.ended");
    video.setTrack(null);
    const id = entry.joined?.lesson?.id ?? info.id;
    const panel = endedPanel({ ended: entry.ended, outcome: outcome ?? outcomeByLesson(id), role: "patrol", sawRecording: entry.sawRecording, compact: true });
    video.root.replaceWith(panel.root);
    root.classList.add("ended");
    root.dataset.state = "ended";
    if (focused === entry) unfocus();
  });
  client.on("joined", (m) => {
    entry.joined = m;
    entry.participants = new Map(m.participants.map((p) => [p.peer_id, p]));
    lessons.set(m.lesson.id, entry);
    if (!video.video.srcObject) video.setPlaceholder(t("media.no_video"));
    setRecording(m.recording);
    describe();
  });
  followParticipants(client, () => entry.participants, describe);
  client.on("note_added", (m) => { entry.notes.push(m.note); if (focused === entry) renderNotes(); });
  media.on("consumers", () => attach(entry));
  media.on("error", (err) => console.warn("patrol media", err));
  client.start().catch(() => {});
  entry.statsTimer = every(3000, async () => {
    const s = await media.stats();
    q.set(s.level, s);
    root.dataset.frames = String(s.framesDecoded);
  });
  return entry;
}

function attach(entry) {
  const lead = [...entry.participants.values()].find((p) => p.role === "lead");
  const [camera] = entry.media.find({ peerId: lead?.peer_id, source: "camera" });
  const [any] = [...entry.media.consumers.values()].filter((c) => c.producer.kind === "video");
  const pick = camera ?? any;
  entry.video.setTrack(pick?.track ?? null);
  entry.video.root.dataset.mid = pick?.mid ?? "";
  if (!pick) entry.video.setPlaceholder(t("media.no_video"));
  if (focused === entry) {
    focusVideo.setTrack(pick?.track ?? null);
    if (!pick) focusVideo.setPlaceholder(t("media.no_video"));
    sink.set([...entry.media.consumers.values()].filter((c) => c.producer.kind === "audio").map((c) => c.track));
  }
}

// Focus: one lesson's main picture, sound and the evaluation form ---------------------------
const focusVideo = videoTile({ placeholder: t("common.loading"), id: "focus-video" });
const notesList = h("ul", { class: "checklist notes", id: "notes" });
const noteText = h("textarea", { id: "note-text", placeholder: t("patrol.note_placeholder") });
const scoreInputs = Object.fromEntries(SCORES.map((s) => [s, h("input", { type: "number", min: 0, max: 100, id: `score-${s}` })]));
const noteForm = h("form", { id: "note-form" },
  noteText,
  h("label", {}, t("patrol.scores")),
  h("div", { class: "strip" }, ...SCORES.map((s) => h("div", {}, h("label", { for: `score-${s}` }, t(`patrol.score.${s}`)), scoreInputs[s]))),
  h("div", { class: "actions" }, h("button", { class: "primary", type: "submit" }, t("patrol.add_note"))));
const back = h("button", { type: "button", id: "focus-close" }, t("patrol.close_focus"));
const focusTitle = h("h2", {});
const focusRec = h("span", { class: "rec hidden", id: "focus-recording" }, t("recording.notice"));
focusBox.append(
  h("section", { class: "stack" }, h("div", { class: "row", style: "display:flex; gap:.6rem; align-items:center" }, back, focusTitle, focusRec), focusVideo.root),
  h("aside", { class: "side" }, h("div", { class: "panel" }, h("h3", {}, t("patrol.notes")), noteForm, notesList)),
);

function renderNotes() {
  notesList.replaceChildren(...[...(focused?.notes ?? [])].reverse().map((n) =>
    h("li", {}, h("b", {}, n.offset_s === null ? "" : t("patrol.at", { t: fmtOffset(n.offset_s) })),
      h("span", {}, `${n.author}：${n.text}`, Object.keys(n.scores ?? {}).length
        ? h("span", { class: "muted small" }, ` (${Object.entries(n.scores).map(([k, v]) => `${t(`patrol.score.${k}`)} ${v}`).join("，")})`) : ""))));
}

async function focus(entry) {
  if (focused === entry) return;
  await unfocus();
  focused = entry;
  focusBox.classList.remove("hidden");
  focusTitle.textContent = entry.joined?.lesson?.title ?? "";
  focusRec.classList.toggle("hidden", entry.root.querySelector(".recording-notice").classList.contains("hidden"));
  entry.root.classList.add("focus");
  renderNotes();
  try {
    // The lead's main camera and microphone of this lesson.
    await entry.client.request({ type: "set_subscriptions", wants: [
      { source: "camera", classroom_id: null, layer: "main" },
      { source: "mic", classroom_id: null, layer: "main" },
    ] });
  } catch (err) {
    errorBanner(err);
  }
  attach(entry);
}

async function unfocus() {
  const entry = focused;
  if (!entry) return;
  focused = null;
  entry.root.classList.remove("focus");
  focusBox.classList.add("hidden");
  focusVideo.setTrack(null);
  sink.set([]);
  await entry.client.request({ type: "set_subscriptions", wants: null }).catch(() => {});
}
back.addEventListener("click", unfocus);

noteForm.addEventListener("submit", async (e) => {
  e.preventDefault();
  const text = noteText.value.trim();
  if (!focused || !text) return;
  const scores = {};
  for (const s of SCORES) {
    const v = scoreInputs[s].value;
    if (v !== "") scores[s] = Math.max(0, Math.min(100, Math.round(Number(v))));
  }
  try {
    await focused.client.request({ type: "add_note", text, ...(Object.keys(scores).length ? { scores } : {}) });
    noteText.value = "";
    toast(t("admin.saved"));
  } catch (err) {
    errorBanner(err);
  }
});

// Which lessons: a patrol link, a stored join, one lesson or every live lesson --------------
async function main() {
  const params = new URLSearchParams(location.search);
  const link = params.get("link");
  if (link) {
    try {
      await exchange(link);
    } catch (err) {
      if (err.code === "lesson_ended") return showEnded(app, { outcome: outcomeByCode(link), role: "patrol" });
      errorBanner(err);
      return;
    }
  }
  const saved = loadJoin();
  if ((link || params.get("joined")) && saved?.join?.role === "patrol") {
    const entry = addLesson(async (fresh) => (fresh && saved.code ? exchange(saved.code) : saved.join), saved.join.lesson, outcomeByCode(saved.code));
    window.tongke = { lessons, entry };
    return;
  }
  const account = await me().catch(() => null);
  if (!account) {
    banner(t("patrol.login_needed"), "warn");
    slot.append(h("a", { class: "btn primary", href: `/login/?next=${encodeURIComponent(location.pathname + location.search)}` }, t("nav.login")));
    return;
  }
  const one = params.get("lesson");
  let list;
  try {
    list = one ? [await api(`/api/lessons/${encodeURIComponent(one)}`)] : await api("/api/lessons?state=live");
  } catch (err) {
    errorBanner(err);
    return;
  }
  if (!list.length) wall.append(h("p", { class: "muted", id: "no-lessons" }, t("patrol.none")));
  for (const lesson of list) {
    addLesson(() => api(`/api/lessons/${lesson.id}/patrol-token`, { method: "POST" }), lesson);
  }
  window.tongke = { lessons };
}

main();
