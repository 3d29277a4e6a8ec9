// 巡课: every live lesson as a tile (the lead's low layer); click one to focus it: the lead's
// camera at the main layer, every receiving classroom as a low thumbnail (click: main), the
// board and slides, a choice of whose sound to hear. Only what is shown is subscribed; a
// hidden tab subscribes to nothing. The patrol is invisible until it talks back (press and
// hold): then only the chosen classroom hears it and sees its name. Timestamped notes (评课).
import { api, logout, me } from "../api.js";
import { LessonClient, LessonMedia, openMic, qualityLevel } from "../client.js";
import { audioSink, every, exchange, followParticipants, loadJoin, qualityPill, videoTile } from "../lesson.js";
import { endedPanel, outcomeByCode, outcomeByLesson, showEnded } from "../lifecycle.js";
import { currentRubric, rubricVersion, scoreFields, scoresText } from "../rubric.js";
import { flagsText } from "../attendance_flags.js";
import { ingestBanner } from "../ingest_state.js";
import { patrolWall } from "../patrol_wall.js";
import { apply, banner, catchAll, fmtOffset, h, t, toast, topbar, userMessage, errorBanner } from "../ui.js";

catchAll();
const account = await me().catch(() => null);
const { slot } = topbar({
  title: t("patrol.title"),
  account,
  onLogout: async () => { await logout(); location.href = "/login/?next=/patrol/"; },
});
const app = document.getElementById("app");
// The wall's grid: one lesson's (a link, ?lesson=) or the paged, filtered wall's (main()).
let wall = h("div", { class: "wall", id: "wall" });
const wallArea = h("div", { id: "wall-area" });
const focusBox = h("div", { class: "classroom hidden", id: "focus" });
app.replaceChildren(
  h("p", { class: "banner info", id: "patrol-note" }, t("patrol.invisible")),
  focusBox,
  wallArea,
);
apply(app);
const sink = audioSink(app);
const lessons = new Map(); // lesson id -> entry
let focused = null;

// Only tiles on screen receive video: one scrolled out of view (or a hidden tab) asks for
// nothing (set_subscriptions []), and gets the wall's default back when seen again.
const tileOf = new WeakMap(); // tile root -> entry
const onScreen = new IntersectionObserver((records) => {
  for (const r of records) {
    const entry = tileOf.get(r.target);
    if (!entry || entry.visible === r.isIntersecting) continue;
    entry.visible = r.isIntersecting;
    if (entry !== focused) wallSubscription(entry);
  }
});

function wallSubscription(entry) {
  if (!entry.joined || entry.client.stopped) return;
  const wants = document.hidden || !entry.visible ? [] : null;
  entry.client.request({ type: "set_subscriptions", wants }).catch(() => {});
}

// A classroom's quality report older than this no longer says how it is now.
const HEALTH_STALE_MS = 5000;
const HEALTH_ORDER = ["good", "unknown", "fair", "poor", "down"];

/** The tile's health badge: the worst fresh `quality` report of the classrooms present
 * (lost: 连接中断; none fresh: 检测中). */
function lessonHealth(entry) {
  let worst = null;
  for (const p of entry.participants.values()) {
    if (!["lead", "receiver"].includes(p.role) || !p.classroom_id) continue;
    const report = entry.health.get(p.classroom_id);
    const fresh = report && Date.now() - report.at < HEALTH_STALE_MS;
    const level = p.state === "lost" ? "down" : fresh ? report.level : "unknown";
    if (!worst || HEALTH_ORDER.indexOf(level) > HEALTH_ORDER.indexOf(worst.level)) worst = { level, detail: fresh ? report.detail : null };
  }
  return worst ?? { level: "unknown", detail: null };
}

// The district's rubric (signed in, or read with the patrol link: GET /api/rubrics/for-link),
// and every rubric version a note names, by id.
let scoreForm = null;
let rubricLink = null; // the patrol link's code when the page is not signed in
const rubricVersions = new Map();

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
  const count = h("span", { class: "pill count" });
  const stage = h("span", { class: "pill stage hidden" });
  const rec = h("span", { class: "rec hidden recording-notice" }, t("recording.notice"));
  const q = qualityPill();
  q.root.classList.add("health");
  q.root.title = t("patrol.health_title");
  const root = h("div", { class: "tile", title: t("patrol.open"), dataset: { lesson: info.id ?? "" } },
    video.root, h("div", { class: "row" }, title, conn),
    meta, h("div", { class: "row" }, count, q.root, rec, stage));
  // `summary`: the wall list's row (GET /api/patrol/lessons) until the lesson's own signaling
  // says better; `health`: each classroom's newest quality report.
  const entry = { client, media, video, root, info, joined: null, participants: new Map(), notes: [], quality: q, ended: null, sawRecording: false,
    summary: info.expected ? info : null, health: new Map(), stageRoom: null, visible: true };
  root.addEventListener("click", (e) => root.dataset.state !== "ended" && !e.target.closest("a") && focus(entry));
  wall.append(root);
  tileOf.set(root, entry);
  onScreen.observe(root);

  const describe = () => {
    const summary = entry.summary;
    const l = entry.joined?.lesson ?? { title: info.title, school: info.lead?.school, teacher: info.teacher, subject: info.subject, grade: info.grade };
    title.textContent = l.title ?? info.title ?? "";
    meta.textContent = [summary?.county, l.school, l.teacher, l.subject, l.grade].filter(Boolean).join(" · ");
    // Classrooms present (lead and receiving, connected) out of the roster when the list
    // says how many it holds; before joining, the list's own count.
    const rooms = new Set([...entry.participants.values()]
      .filter((p) => ["lead", "receiver"].includes(p.role) && p.state !== "lost").map((p) => p.classroom_id));
    const present = entry.joined ? rooms.size : summary?.present ?? 0;
    count.textContent = summary ? t("patrol.expected", { present, expected: summary.expected })
      : t("patrol.participants", { n: [...entry.participants.values()].filter((p) => p.role === "receiver").length });
    count.dataset.present = String(present);
    const stageId = entry.joined ? entry.stageRoom : summary?.stage_classroom_id ?? null;
    const stageName = [...entry.participants.values()].find((p) => p.classroom_id === stageId)?.name ?? summary?.stage_classroom ?? "";
    stage.classList.toggle("hidden", !stageId);
    stage.textContent = stageId ? t("patrol.on_stage", { room: stageName }) : "";
    stage.dataset.classroom = stageId ?? "";
    root.dataset.lesson = l.id ?? info.id ?? "";
    root.dataset.participants = String(entry.participants.size);
  };
  describe();
  client.on("stage_changed", (m) => { entry.stageRoom = m.classroom_id; describe(); });
  client.on("quality", (m) => {
    if (!m.classroom_id) return;
    const detail = { rtt_ms: m.rtt_ms, loss_pct: m.loss * 100, jitter_ms: m.jitter_ms };
    entry.health.set(m.classroom_id, { level: qualityLevel(m.rtt_ms, m.loss * 100, m.jitter_ms), detail, at: Date.now() });
  });
  entry.update = (row) => {
    entry.summary = row;
    if (!entry.joined) setRecording(row.recording);
    describe();
  };
  entry.keep = () => root.dataset.state === "ended";
  // Off the page: leave the lesson (the patrol was invisible, nobody notices) and free it all.
  entry.close = async () => {
    if (focused === entry) await unfocus();
    onScreen.unobserve(root);
    clearInterval(entry.statsTimer);
    client.close();
    media.close();
    root.remove();
    for (const [id, e] of lessons) if (e === entry) lessons.delete(id);
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
  ingestBanner(client);
  // Late and missing classrooms of this lesson (attendance_flags), under its meta line.
  client.on("attendance_flags", (m) => {
    let line = root.querySelector(".flags-line");
    if (!line) meta.after(line = h("div", { class: "flags-line warn-text small" }));
    line.textContent = flagsText(m.classrooms ?? []);
  });
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
    entry.stageRoom = m.stage ?? null;
    lessons.set(m.lesson.id, entry);
    if (focused === entry) subscribeFocus();
    else if (document.hidden || !entry.visible) wallSubscription(entry);
    if (!video.video.srcObject) video.setPlaceholder(t("media.no_video"));
    setRecording(m.recording);
    describe();
  });
  followParticipants(client, () => entry.participants, () => {
    describe();
    if (focused === entry) {
      refreshPickers(entry);
      subscribeFocus();
    }
  });
  client.on("note_added", (m) => { entry.notes.push(m.note); if (focused === entry) renderNotes(); });
  media.on("consumers", () => attach(entry));
  media.on("error", (err) => console.warn("patrol media", err));
  client.start().catch(() => {});
  entry.statsTimer = every(2000, async () => {
    const health = lessonHealth(entry);
    q.set(health.level, health.detail);
    root.dataset.health = health.level;
    const s = await media.stats();
    root.dataset.frames = String(s.framesDecoded);
  });
  return entry;
}

function attach(entry) {
  const lead = [...entry.participants.values()].find((p) => p.role === "lead");
  // By classroom: a 录播 host pulled as the lead classroom's camera is its picture too.
  const [camera] = entry.media.find({ classroomId: lead?.classroom_id, source: "camera" });
  const [any] = [...entry.media.consumers.values()].filter((c) => c.producer.kind === "video");
  const pick = camera ?? any;
  entry.video.setTrack(pick?.track ?? null);
  entry.video.root.dataset.mid = pick?.mid ?? "";
  if (!pick) entry.video.setPlaceholder(t("media.no_video"));
  if (focused === entry) renderFocus(entry);
}

// Focus: one lesson's main picture, thumbnails, sound, talkback and the evaluation form -------
const focusVideo = videoTile({ placeholder: t("common.loading"), id: "focus-video" });
const thumbs = h("div", { class: "thumbs", id: "focus-thumbs" });
const audioPick = h("select", { id: "audio-choice" });
const talkPick = h("select", { id: "talk-target" });
const talkButton = h("button", { type: "button", class: "primary big", id: "talk" }, t("patrol.talk"));
const talkState = h("p", { class: "small muted", id: "talk-state" }, t("patrol.talk_hint"));
const notesList = h("ul", { class: "checklist notes", id: "notes" });
const noteText = h("textarea", { id: "note-text", placeholder: t("patrol.note_placeholder") });
const scoreBox = h("div", { id: "note-scores" });
const noteError = h("p", { class: "field-error hidden", role: "alert", id: "note-error" });
// novalidate: the page says what is wrong in Chinese (js/rubric.js), never the browser.
const noteForm = h("form", { id: "note-form", novalidate: true },
  noteText, scoreBox, noteError,
  h("div", { class: "actions" }, h("button", { class: "primary", type: "submit" }, t("patrol.add_note"))));
const back = h("button", { type: "button", id: "focus-close" }, t("patrol.close_focus"));
const focusTitle = h("h2", {});
const focusRec = h("span", { class: "rec hidden", id: "focus-recording" }, t("recording.notice"));
focusBox.append(
  h("section", { class: "stack" },
    h("div", { class: "row", style: "display:flex; gap:.6rem; align-items:center" }, back, focusTitle, focusRec),
    focusVideo.root,
    h("label", {}, t("patrol.classrooms")), thumbs),
  h("aside", { class: "side" },
    h("div", { class: "panel" }, h("label", { for: "audio-choice" }, t("patrol.audio")), audioPick),
    h("div", { class: "panel", id: "talk-panel" }, h("label", { for: "talk-target" }, t("patrol.talk_to")), talkPick, talkButton, talkState),
    h("div", { class: "panel" }, h("h3", {}, t("patrol.notes")), noteForm, notesList)),
);

// What the focused lesson shows: `main` is a classroom id (null: the lead), `audio` likewise.
const view = { main: null, audio: null };

function leadOf(entry) {
  return [...entry.participants.values()].find((p) => p.role === "lead");
}

function receiversOf(entry) {
  return [...entry.participants.values()].filter((p) => p.role === "receiver");
}

function roomName(entry, classroomId) {
  if (classroomId === null) return t("patrol.lead_room");
  return [...entry.participants.values()].find((p) => p.classroom_id === classroomId)?.name ?? classroomId;
}

/** The wants of the focused view: main camera, every other camera low, board and slides low, one mic. */
function focusWants(entry) {
  if (document.hidden) return [];
  const wants = [{ source: "camera", classroom_id: view.main, layer: "main" }];
  if (view.main !== null) wants.push({ source: "camera", classroom_id: null, layer: "low" });
  for (const p of receiversOf(entry)) {
    if (p.classroom_id !== view.main) wants.push({ source: "camera", classroom_id: p.classroom_id, layer: "low" });
  }
  wants.push({ source: "board", classroom_id: null, layer: "low" }, { source: "screen", classroom_id: null, layer: "low" });
  wants.push({ source: "mic", classroom_id: view.audio, layer: "main" });
  return wants;
}

async function subscribeFocus() {
  const entry = focused;
  // Not joined yet: the joined handler asks for the focus then (no false error banner).
  if (!entry?.joined) return;
  try {
    await entry.client.request({ type: "set_subscriptions", wants: focusWants(entry) });
  } catch (err) {
    errorBanner(err);
  }
}

function consumerOf(entry, classroomId, source) {
  const lead = leadOf(entry);
  const query = { classroomId: classroomId ?? lead?.classroom_id, source };
  return entry.media.find(query)[0] ?? null;
}

function renderFocus(entry) {
  const main = consumerOf(entry, view.main, "camera");
  focusVideo.setTrack(main?.track ?? null);
  focusVideo.root.dataset.classroom = view.main ?? "lead";
  focusVideo.label(roomName(entry, view.main));
  if (!main) focusVideo.setPlaceholder(t("media.no_video"));
  const tiles = [];
  const addThumb = (classroomId, source, label) => {
    const c = consumerOf(entry, classroomId, source);
    if (source !== "camera" && !c) return; // no board or slides published
    const tile = videoTile({ placeholder: t("media.no_video") });
    tile.setTrack(c?.track ?? null);
    tile.label(label);
    tile.root.classList.add("clickable", "thumb");
    tile.root.dataset.classroom = classroomId ?? "lead";
    tile.root.dataset.source = source;
    if (source === "camera") {
      tile.root.addEventListener("click", () => {
        view.main = classroomId;
        refreshPickers(entry);
        renderFocus(entry);
        subscribeFocus();
      });
    }
    tiles.push(tile.root);
  };
  if (view.main !== null) addThumb(null, "camera", t("patrol.lead_room"));
  for (const p of receiversOf(entry)) if (p.classroom_id !== view.main) addThumb(p.classroom_id, "camera", p.name);
  addThumb(null, "board", t("source.board"));
  addThumb(null, "screen", t("source.screen"));
  thumbs.replaceChildren(...(tiles.length ? tiles : [h("p", { class: "muted small", id: "no-thumbs" }, t("patrol.no_classrooms"))]));
  sink.set([...entry.media.consumers.values()].filter((c) => c.producer.kind === "audio").map((c) => c.track));
}

function refreshPickers(entry) {
  const rooms = [{ id: null, name: t("patrol.lead_room") }, ...receiversOf(entry).map((p) => ({ id: p.classroom_id, name: p.name }))];
  if (!rooms.some((r) => r.id === view.audio)) view.audio = null;
  if (!rooms.some((r) => r.id === view.main)) view.main = null;
  for (const [select, chosen] of [[audioPick, view.audio], [talkPick, talkPick.value === "" ? null : talkPick.value]]) {
    select.replaceChildren(...rooms.map((r) => h("option", { value: r.id ?? "" }, r.name)));
    select.value = chosen ?? "";
  }
}

audioPick.addEventListener("change", () => {
  view.audio = audioPick.value === "" ? null : audioPick.value;
  subscribeFocus();
});

// Talkback: press and hold. talk_start first (the server allows the mic only while talking),
// then the mic is published, or its paused sender resumed; release stops both.
const talk = { active: false, mic: null, published: false, pending: null };

async function startTalk() {
  const entry = focused;
  if (!entry || talk.active) return;
  talk.active = true;
  const target = talkPick.value === "" ? null : talkPick.value;
  talk.pending = (async () => {
    try {
      await entry.client.request({ type: "talk_start", classroom_id: target });
      talk.mic = await openMic();
      if (!talk.active) return;
      if (talk.published) await entry.media.setSource("mic", talk.mic);
      else await entry.media.publish({ mic: talk.mic });
      talk.published = true;
      talkButton.classList.add("talking");
      talkState.textContent = t("patrol.talking", { room: roomName(entry, target) });
      talkState.dataset.state = "talking";
    } catch (err) {
      talk.active = false;
      errorBanner(err);
      await entry.client.request({ type: "talk_stop" }).catch(() => {});
    }
  })();
}

async function stopTalk() {
  const entry = focused;
  if (!talk.active) return;
  talk.active = false;
  await talk.pending;
  talkButton.classList.remove("talking");
  talkState.textContent = t("patrol.talk_hint");
  talkState.dataset.state = "idle";
  if (entry && talk.published) await entry.media.setSource("mic", null).catch(() => {});
  talk.mic?.stop();
  talk.mic = null;
  await entry?.client.request({ type: "talk_stop" }).catch(() => {});
}

// The pointer is captured: the talk ends on release wherever the finger or mouse is then.
talkButton.addEventListener("pointerdown", (e) => {
  e.preventDefault();
  talkButton.setPointerCapture(e.pointerId);
  startTalk();
});
for (const type of ["pointerup", "pointercancel"]) talkButton.addEventListener(type, stopTalk);
talkButton.addEventListener("keydown", (e) => { if (e.key === " " && !e.repeat) startTalk(); });
talkButton.addEventListener("keyup", (e) => { if (e.key === " ") stopTalk(); });

function renderNotes() {
  notesList.replaceChildren(...[...(focused?.notes ?? [])].reverse().map((n) =>
    h("li", {}, h("b", {}, n.offset_s === null ? "" : t("patrol.at", { t: fmtOffset(n.offset_s) })),
      h("span", {}, `${n.author}：${n.text}`, Object.keys(n.scores ?? {}).length
        ? h("span", { class: "muted small note-scores" }, `（${noteScores(n)}）`) : ""))));
}

async function focus(entry) {
  if (focused === entry) return;
  await unfocus();
  focused = entry;
  view.main = null;
  view.audio = null;
  focusBox.classList.remove("hidden");
  focusTitle.textContent = entry.joined?.lesson?.title ?? "";
  focusRec.classList.toggle("hidden", entry.root.querySelector(".recording-notice").classList.contains("hidden"));
  entry.root.classList.add("focus");
  refreshPickers(entry);
  renderNotes();
  await subscribeFocus();
  attach(entry);
}

async function unfocus() {
  const entry = focused;
  if (!entry) return;
  await stopTalk();
  focused = null;
  entry.root.classList.remove("focus");
  focusBox.classList.add("hidden");
  focusVideo.setTrack(null);
  thumbs.replaceChildren();
  sink.set([]);
  // Back to the wall's default (lead camera low + lead mic), or nothing while not seen.
  wallSubscription(entry);
}
back.addEventListener("click", unfocus);

noteForm.addEventListener("submit", async (e) => {
  e.preventDefault();
  const text = noteText.value.trim();
  noteError.classList.add("hidden");
  if (!focused) return;
  const read = scoreForm ? scoreForm.read() : { scores: {} };
  if (!read) return; // the rubric's fields say what is wrong
  if (!text) {
    noteError.textContent = t("patrol.need_text");
    noteError.classList.remove("hidden");
    noteText.focus();
    return;
  }
  const scored = Object.keys(read.scores).length ? { scores: read.scores, rubric_version_id: read.rubric_version_id } : {};
  try {
    await focused.client.request({ type: "add_note", text, ...scored });
    noteText.value = "";
    scoreForm?.clear();
    toast(t("admin.saved"));
  } catch (err) {
    errorBanner(err);
  }
});

async function loadRubric(linkCode = null) {
  rubricLink = linkCode;
  try {
    const rubric = await currentRubric(linkCode);
    rubricVersions.set(rubric.version_id, rubric);
    scoreForm = scoreFields(rubric, "score-");
    scoreBox.replaceChildren(scoreForm.root);
    renderNotes();
  } catch (err) {
    // Notes still work; the page says why they carry no scores.
    scoreBox.replaceChildren(h("p", { class: "small muted", id: "rubric-missing" }, t("patrol.rubric_unavailable")));
    console.warn("rubric not loaded: notes without scores", err);
  }
}

/** A note's scores labelled by its own rubric version (fetched once if not the one in use). */
function noteScores(note) {
  const id = note.rubric_version_id;
  if (id && !rubricVersions.has(id) && (account || rubricLink)) {
    rubricVersions.set(id, null);
    rubricVersion(id, account ? null : rubricLink).then((v) => { rubricVersions.set(id, v); renderNotes(); }).catch(() => {});
  }
  return scoresText(rubricVersions.get(id) ?? null, note.scores);
}

// Which lessons: a patrol link, a stored join, one lesson or every live lesson --------------
async function main() {
  if (account) loadRubric();
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
    wallArea.append(wall);
    if (!account && saved.code) loadRubric(saved.code);
    const entry = addLesson(async (fresh) => (fresh && saved.code ? exchange(saved.code) : saved.join), saved.join.lesson, outcomeByCode(saved.code));
    window.tongke = { lessons, entry };
    return;
  }
  if (!account) {
    banner(t("patrol.login_needed"), "warn");
    slot.append(h("a", { class: "btn primary", href: `/login/?next=${encodeURIComponent(location.pathname + location.search)}` }, t("nav.login")));
    return;
  }
  const one = params.get("lesson");
  const token = (lesson) => () => api(`/api/lessons/${encodeURIComponent(lesson.id)}/patrol-token`, { method: "POST" });
  if (!one) {
    // The wall: the inspector's live lessons, a page at a time (js/patrol_wall.js).
    const view = patrolWall(wallArea, { addTile: (lesson) => addLesson(token(lesson), lesson), dropTile: (entry) => entry.close() });
    wall = view.grid;
    window.tongke = { lessons, wall: view, focused: () => focused };
    await view.refresh();
    return;
  }
  wallArea.append(wall);
  let lesson;
  try {
    lesson = await api(`/api/lessons/${encodeURIComponent(one)}`);
  } catch (err) {
    errorBanner(err);
    return;
  }
  addLesson(token(lesson), lesson);
  window.tongke = { lessons, focused: () => focused };
}

main();

// A hidden tab receives nothing; shown again, each lesson gets its view back.
document.addEventListener("visibilitychange", () => {
  for (const entry of new Set(lessons.values())) {
    if (entry === focused) subscribeFocus();
    else wallSubscription(entry);
  }
});
