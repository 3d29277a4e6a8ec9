// 主讲端: publish camera (main + low), board camera, screen and microphone; see every receiving
// classroom; raised hands in order; stage, mute, recording, start and end the lesson.
import { api } from "../api.js";
import { LessonMedia, devicesAllowed, liveTrackCount, listDevices, openCamera, openMic, openScreen, releaseDevices } from "../client.js";
import { attendanceBanner } from "../attendance_flags.js";
import { ingestBanner } from "../ingest_state.js";
import { audioSink, connectedClient, every, followParticipants, loadJoin, qualityPill, storedJoinSource, talkBanner, videoTile } from "../lesson.js";
import { outcomeByCode, showEnded, showInsecure, showNoLink, showReplaced } from "../lifecycle.js";
import { backToSchedule, terminalOutcome } from "../terminal_link.js";
import { apply, catchAll, errorBanner, fmtOffset, h, t, toast, topbar } from "../ui.js";

catchAll();
const saved = loadJoin();
const { slot } = topbar({ title: saved?.join?.lesson?.title ?? t("lead.title") });
const app = document.getElementById("app");

const S = {
  joined: null,
  participants: new Map(), // peer_id -> participant
  stage: null,
  hands: [],
  muted: new Set(),
  recording: false,
  lessonState: "scheduled",
  quality: new Map(), // peer_id -> quality message
  speaker: null, // classroom_id of the active speaker (active_speaker), null in silence
  startedAt: null, // Date the lesson went live
  sawRecording: false,
  micOn: true,
  cameraOn: true,
};

// Layout ----------------------------------------------------------------------------------
const rec = h("span", { class: "rec hidden", id: "rec-indicator" }, t("lead.recording"));
const liveBadge = h("span", { class: "pill live hidden", id: "live-badge" }, t("lead.live_badge"));
const timer = h("span", { class: "timer hidden", id: "lesson-timer" });
const quality = qualityPill();
slot.append(liveBadge, timer, rec, quality.root);

const mine = videoTile({ placeholder: t("media.camera_off"), id: "my-camera" });
mine.label(t("lead.my_picture"));
const boardTile = videoTile({ placeholder: t("lead.no_board"), id: "my-board" });
boardTile.label(t("lead.board"));
const screenTile = videoTile({ placeholder: t("lead.screen"), id: "my-screen" });
screenTile.label(t("lead.screen"));
const grid = h("div", { class: "receivers", id: "receivers" });
// A lesson may have hundreds of classrooms: the grid shows one page of them, and only the
// page's cameras are asked for, on the low layer (docs/protocol.md, the lead's grid page).
const PAGE = 16;
let page = 0;
let sentPage = null; // the wants last sent ("" = the server's default page)
const pagePrev = h("button", { type: "button", id: "page-prev", onclick: () => { page -= 1; render(); } }, t("lead.page_prev"));
const pageNext = h("button", { type: "button", id: "page-next", onclick: () => { page += 1; render(); } }, t("lead.page_next"));
const pageInfo = h("span", { id: "page-info" });
const pager = h("div", { class: "pager hidden", id: "receivers-pager" }, pagePrev, pageInfo, pageNext);
const empty = h("p", { class: "muted", id: "no-receivers" }, t("lead.no_receivers"));
const handsList = h("ol", { id: "hands" });
const noHands = h("p", { class: "muted" }, t("lead.no_hands"));

const startBtn = h("button", { class: "primary big", type: "button", id: "start-lesson" }, t("lead.start_lesson"));
const recBtn = h("button", { type: "button", id: "toggle-recording" }, t("lead.record_start"));
const noRecordNote = h("span", { class: "muted small hidden", id: "no-recording" }, t("lead.no_recording"));
const spaceNote = h("p", { class: "banner warn hidden", id: "space-low" });
const endBtn = h("button", { class: "danger", type: "button", id: "end-lesson" }, t("lead.end_lesson"));
const notStarted = h("p", { class: "banner info", id: "not-started" }, t("lead.not_started"));

const camSelect = h("select", { id: "camera-select" });
const boardSelect = h("select", { id: "board-select" });
const micSelect = h("select", { id: "mic-select" });
const shareBtn = h("button", { type: "button", id: "share-screen" }, t("lead.share"));
const micBtn = h("button", { type: "button", id: "mic-toggle", onclick: () => setMic(!S.micOn) });
const camBtn = h("button", { type: "button", id: "camera-toggle", onclick: () => setCamera(!S.cameraOn) });

app.replaceChildren(
  h("div", { class: "classroom" },
    h("section", { class: "stack" },
      notStarted,
      h("h2", {}, t("lead.receivers")),
      empty,
      pager,
      grid),
    h("aside", { class: "side" },
      mine.root,
      h("div", { class: "actions self", style: "margin-top:0" }, micBtn, camBtn),
      h("div", { class: "strip" }, boardTile.root, screenTile.root),
      h("div", { class: "panel" }, h("div", { class: "actions", style: "margin-top:0" }, startBtn, recBtn, noRecordNote, endBtn), spaceNote),
      h("div", { class: "panel hands" }, h("h3", {}, t("lead.hands")), noHands, handsList),
      h("div", { class: "panel" }, h("h3", {}, t("lead.devices")),
        h("label", { for: "camera-select" }, t("lead.camera")), camSelect,
        h("label", { for: "board-select" }, t("lead.board")), boardSelect,
        h("label", { for: "mic-select" }, t("lead.mic")), micSelect,
        h("div", { class: "actions" }, shareBtn)))),
);
apply(app);

// Receiving classroom tiles ---------------------------------------------------------------
const tiles = new Map(); // classroom_id -> {root, video, stageBtn, muteBtn, badges, quality}

function tileFor(p) {
  let tile = tiles.get(p.classroom_id);
  if (tile) return tile;
  const video = videoTile({ placeholder: t("media.no_video") });
  const stageBtn = h("button", { type: "button", class: "stage-btn", onclick: () => toggleStage(p.classroom_id) });
  const muteBtn = h("button", { type: "button", class: "mute-btn", onclick: () => toggleMute(p.classroom_id) });
  const badges = h("span", { class: "row", style: "margin:0" });
  const q = qualityPill({ hiddenUntilKnown: true });
  const name = h("span", { class: "name" });
  const root = h("div", { class: "tile", dataset: { classroom: p.classroom_id } }, video.root,
    h("div", { class: "row" }, name, q.root), h("div", { class: "row" }, badges, stageBtn, muteBtn));
  tile = { root, video, stageBtn, muteBtn, badges, name, quality: q };
  tiles.set(p.classroom_id, tile);
  grid.append(root);
  return tile;
}

function render() {
  const receivers = [...S.participants.values()].filter((p) => p.role === "receiver");
  const pages = Math.max(1, Math.ceil(receivers.length / PAGE));
  page = Math.min(Math.max(page, 0), pages - 1);
  const shown = receivers.slice(page * PAGE, (page + 1) * PAGE);
  const staged = receivers.find((p) => p.classroom_id === S.stage);
  if (staged && !shown.includes(staged)) shown.unshift(staged); // the stage stays in sight
  pager.classList.toggle("hidden", pages <= 1);
  pagePrev.disabled = page <= 0;
  pageNext.disabled = page >= pages - 1;
  pageInfo.textContent = t("lead.page_of", { page: page + 1, pages, total: receivers.length });
  requestPage(receivers.length > PAGE ? shown.map((p) => p.classroom_id) : null);
  const present = new Set(shown.map((p) => p.classroom_id));
  for (const [id, tile] of tiles) {
    if (!present.has(id)) {
      tile.root.remove();
      tiles.delete(id);
    }
  }
  empty.classList.toggle("hidden", receivers.length > 0);
  const live = S.lessonState === "live";
  for (const p of shown) {
    const tile = tileFor(p);
    tile.name.textContent = p.name;
    tile.name.title = p.name;
    const onStage = S.stage === p.classroom_id;
    const hand = S.hands.indexOf(p.classroom_id);
    const muted = S.muted.has(p.classroom_id);
    tile.video.root.classList.toggle("on-stage", onStage);
    tile.root.dataset.stage = String(onStage);
    const speaking = S.speaker === p.classroom_id;
    tile.root.dataset.speaking = String(speaking);
    tile.badges.replaceChildren(
      onStage ? h("span", { class: "pill stage" }, t("lead.stage_now")) : "",
      hand >= 0 ? h("span", { class: "pill hand" }, `${t("lead.hands")} ${hand + 1}`) : "",
      p.state === "lost" ? h("span", { class: "pill poor" }, t("lead.lost")) : "",
      muted ? h("span", { class: "pill muted-mark" }, t("lead.muted")) : "",
      // The marker says who talks; `muted` says whether the lead hears it (docs/protocol.md).
      speaking ? h("span", { class: "pill speaking" }, t(muted ? "lead.speaking_unheard" : "lead.speaking")) : "",
      p.camera_on === false ? h("span", { class: "pill" }, t("lead.their_camera_off")) : "",
    );
    tile.stageBtn.textContent = onStage ? t("lead.off_stage") : t("lead.on_stage");
    tile.stageBtn.className = onStage ? "stage-btn on" : "stage-btn";
    tile.stageBtn.disabled = !live;
    tile.muteBtn.textContent = muted ? t("lead.unmute") : t("lead.mute");
    const q = S.quality.get(p.peer_id);
    // Only a fresh report is the classroom's network now (reports come every 2 s).
    if (p.state === "lost") tile.quality.set("down");
    else if (q && Date.now() - q.at > QUALITY_STALE_MS) tile.quality.set("unknown");
    else if (q) tile.quality.set(levelOf(q), { rtt_ms: q.rtt_ms, loss_pct: q.loss * 100, jitter_ms: q.jitter_ms });
  }
  const names = new Map(receivers.map((p) => [p.classroom_id, p.name]));
  handsList.replaceChildren(...S.hands.map((id) =>
    h("li", {}, names.get(id) ?? id, " ",
      h("button", { type: "button", disabled: !live, onclick: () => toggleStage(id) }, t("lead.on_stage")))));
  noHands.classList.toggle("hidden", S.hands.length > 0);
  startBtn.classList.toggle("hidden", live);
  notStarted.classList.toggle("hidden", live);
  recBtn.disabled = !live && !S.recording;
  recBtn.textContent = S.recording ? t("lead.record_stop") : t("lead.record_start");
  recBtn.className = S.recording ? "on" : "";
  // The timetable slot says this lesson is never recorded: no button that would be refused.
  const noRecording = S.joined?.lesson?.recording_policy === "never" && !S.recording;
  recBtn.classList.toggle("hidden", noRecording);
  noRecordNote.classList.toggle("hidden", !noRecording);
  rec.classList.toggle("hidden", !S.recording);
  liveBadge.classList.toggle("hidden", !live);
  timer.classList.toggle("hidden", !live || !S.startedAt);
  tick();
  micBtn.textContent = S.micOn ? t("lead.mic_mute") : t("lead.mic_unmute");
  micBtn.className = S.micOn ? "" : "on warn";
  micBtn.dataset.on = String(S.micOn);
  camBtn.textContent = S.cameraOn ? t("lead.cam_off") : t("lead.cam_on");
  camBtn.className = S.cameraOn ? "" : "on warn";
  camBtn.dataset.on = String(S.cameraOn);
  mine.label(t("lead.my_picture"), S.micOn ? "" : h("span", { class: "pill poor" }, t("lead.mic_muted_self")));
  attachMedia();
}

function tick() {
  if (!S.startedAt) return;
  timer.textContent = t("lead.timer", { t: fmtOffset((Date.now() - S.startedAt) / 1000) });
}
setInterval(tick, 1000);

// A classroom's quality report older than this says nothing about its network now.
const QUALITY_STALE_MS = 5000;

function levelOf(q) {
  const loss = q.loss * 100;
  if ((q.rtt_ms ?? 0) > 400 || loss > 8) return "poor";
  if ((q.rtt_ms ?? 0) > 150 || loss > 2) return "fair";
  return "good";
}

// Media -------------------------------------------------------------------------------------
let media = null;
const sink = audioSink(app);

function attachMedia() {
  if (!media) return;
  for (const [classroomId, tile] of tiles) {
    const [video] = media.find({ classroomId, source: "camera" });
    tile.video.setTrack(video?.track ?? null);
    tile.root.dataset.mid = video?.mid ?? "";
  }
  sink.set([...media.consumers.values()].filter((c) => c.producer.kind === "audio").map((c) => c.track));
}

async function fillDevices() {
  const { cameras, mics } = await listDevices();
  const opts = (list) => list.map((d, i) => h("option", { value: d.deviceId }, d.label || `#${i + 1}`));
  camSelect.replaceChildren(...opts(cameras));
  boardSelect.replaceChildren(h("option", { value: "" }, t("lead.no_board")), ...opts(cameras));
  micSelect.replaceChildren(...opts(mics));
}

async function startMedia() {
  const tracks = {};
  try {
    tracks.camera = await openCamera();
    mine.setTrack(tracks.camera);
  } catch (err) {
    S.cameraOn = false;
    errorBanner(err);
  }
  try {
    tracks.mic = await openMic();
  } catch (err) {
    S.micOn = false;
    errorBanner(err);
  }
  if (client.stopped) return releaseDevices(); // ended or replaced while the devices opened
  render();
  if (!S.cameraOn || !S.micOn) sendMediaState();
  await fillDevices().catch(() => {});
  if (tracks.camera) camSelect.value = tracks.camera.getSettings().deviceId ?? "";
  if (tracks.mic) micSelect.value = tracks.mic.getSettings().deviceId ?? "";
  await media.publish(tracks).catch((err) => errorBanner(err));
}

// Switching cameras while live: replaceTrack on the same senders, no renegotiation.
camSelect.addEventListener("change", async () => {
  if (!S.cameraOn) return; // the choice applies when the camera is turned on again
  try {
    const track = await openCamera(camSelect.value);
    media.tracks.camera?.stop();
    mine.setTrack(track);
    await media.setSource("camera", track);
  } catch (err) {
    errorBanner(err);
  }
});

// Camera off stops the track (the light goes off) and sends nothing (replaceTrack(null));
// on opens it again into the same senders. Receivers learn it through set_media_state.
async function setCamera(on) {
  try {
    if (on) {
      const track = await openCamera(camSelect.value || undefined);
      mine.setTrack(track);
      await media.setSource("camera", track);
    } else {
      media.tracks.camera?.stop();
      mine.setTrack(null);
      await media.setSource("camera", null);
    }
    S.cameraOn = on;
  } catch (err) {
    errorBanner(err);
  }
  render();
  sendMediaState();
}

// Mic mute keeps the device open (no prompt, no glitch) and sends silence.
function setMic(on) {
  if (media.tracks.mic) media.tracks.mic.enabled = on;
  S.micOn = on;
  render();
  sendMediaState();
}

function sendMediaState() {
  if (client?.state !== "joined") return;
  client.request({ type: "set_media_state", mic_on: S.micOn, camera_on: S.cameraOn })
    .catch((err) => console.debug("set_media_state refused", err)); // an older server
}
boardSelect.addEventListener("change", async () => {
  try {
    const track = boardSelect.value ? await openCamera(boardSelect.value, { width: 1920, height: 1080, frameRate: 15 }) : null;
    media.tracks.board?.stop();
    boardTile.setTrack(track);
    await media.setSource("board", track);
  } catch (err) {
    errorBanner(err);
  }
});
micSelect.addEventListener("change", async () => {
  try {
    const track = await openMic(micSelect.value);
    track.enabled = S.micOn;
    media.tracks.mic?.stop();
    await media.setSource("mic", track);
  } catch (err) {
    errorBanner(err);
  }
});
shareBtn.addEventListener("click", async () => {
  try {
    if (media.tracks.screen) {
      media.tracks.screen.stop();
      screenTile.setTrack(null);
      await media.setSource("screen", null);
      shareBtn.textContent = t("lead.share");
      return;
    }
    const track = await openScreen();
    track.addEventListener("ended", () => shareBtn.click());
    screenTile.setTrack(track);
    shareBtn.textContent = t("lead.stop_share");
    await media.setSource("screen", track);
  } catch (err) {
    errorBanner(err);
  }
});

// Commands ---------------------------------------------------------------------------------
let client = null;

async function send(message) {
  try {
    return await client.request(message);
  } catch (err) {
    errorBanner(err);
    return null;
  }
}
function requestPage(ids) {
  const key = ids ? ids.join(",") : "";
  if (!client || !S.joined || key === sentPage) return;
  sentPage = key;
  const wants = ids ? ids.map((id) => ({ source: "camera", classroom_id: id, layer: "low" })) : null;
  send({ type: "set_subscriptions", wants });
}
const toggleStage = (id) => send({ type: "set_stage", classroom_id: S.stage === id ? null : id });
const toggleMute = (id) => send({ type: "mute", classroom_id: id, muted: !S.muted.has(id) });
startBtn.addEventListener("click", () => send({ type: "start_lesson" }));
recBtn.addEventListener("click", () => {
  if (!S.recording) checkSpace();
  send({ type: "set_recording", on: !S.recording });
});

// The recording folder nearly full: say so before (and while) the teacher records, not after
// the disk ran out mid-lesson (GET /api/join/{code}/recording-space, docs/api.md).
async function checkSpace() {
  if (!saved?.code) return;
  try {
    const s = await api(`/api/join/${encodeURIComponent(saved.code)}/recording-space`);
    spaceNote.textContent = s.free_bytes === null
      ? t("lead.space_unreadable")
      : t("lead.space_low", { mb: Math.floor(s.free_bytes / 1048576) });
    spaceNote.classList.toggle("hidden", !s.space_low);
  } catch (err) {
    console.debug("recording space unknown", err); // the recorder itself still reports failures
  }
}
endBtn.addEventListener("click", () => {
  if (confirm(t("lead.end_confirm"))) send({ type: "end_lesson" });
});

function applyJoined(m) {
  S.joined = m;
  sentPage = null; // a new connection starts from the server's default page
  S.participants = new Map(m.participants.map((p) => [p.peer_id, p]));
  S.stage = m.stage;
  S.hands = m.hands;
  S.muted = new Set(m.muted);
  S.recording = m.recording;
  S.sawRecording ||= m.recording;
  S.lessonState = m.lesson.state;
  S.startedAt = m.lesson.started_at ? new Date(m.lesson.started_at) : null;
  render();
  // A rejoin (new peer) starts from the server's defaults: tell it what is really on.
  if (!S.micOn || !S.cameraOn) sendMediaState();
}

// A terminal's lesson whose timetable slot starts it at its time (start_mode "time") starts
// by itself then, on the service's clock; the teacher may still click 开始上课 earlier.
let autoStartTimer = 0;
function scheduleAutoStart() {
  clearTimeout(autoStartTimer);
  if (!saved.terminal || saved.join.start_mode !== "time" || S.lessonState !== "scheduled") return;
  const start = new Date(saved.join.lesson.scheduled_start);
  notStarted.textContent = t("lead.auto_start", { t: start.toLocaleTimeString("zh-CN", { hour: "2-digit", minute: "2-digit", timeZone: saved.timezone }) });
  notStarted.dataset.auto = "time";
  const wait = start.getTime() - (Date.now() + (saved.skewMs ?? 0));
  autoStartTimer = setTimeout(() => {
    if (S.lessonState === "scheduled") send({ type: "start_lesson" });
  }, Math.max(0, wait));
}

let endedMsg = null;
let statsTimer = 0;

function finish(err) {
  clearInterval(statsTimer);
  media?.close();
  sink.set([]);
  for (const el of [rec, liveBadge, timer, quality.root]) el.classList.add("hidden");
  if (err.code === "replaced") return showReplaced(app);
  S.lessonState = "ended";
  const outcome = saved.terminal ? terminalOutcome : outcomeByCode(saved.code);
  showEnded(app, { ended: endedMsg, outcome, role: "lead", sawRecording: S.sawRecording });
  if (saved.terminal) backToSchedule(app); // a classroom terminal goes back to its day
}

async function main() {
  if (!saved?.join || !devicesAllowed()) {
    quality.root.classList.add("hidden");
    return saved?.join ? showInsecure(app, t("insecure.what_lead")) : showNoLink(app);
  }
  client = connectedClient(storedJoinSource(), { slot });
  talkBanner(client);
  attendanceBanner(client);
  ingestBanner(client);
  media = new LessonMedia(client);
  window.tongke = { client, media, state: S, liveTrackCount };
  client.on("joined", applyJoined);
  client.on("joined", scheduleAutoStart);
  followParticipants(client, () => S.participants, render);
  client.on("stage_changed", (m) => { S.stage = m.classroom_id; S.muted = new Set(m.muted); render(); });
  client.on("hand_raised", (m) => { S.hands = m.hands; render(); toast(`${t("lead.hands")}：${nameOf(m.classroom_id)}`); });
  client.on("hand_lowered", (m) => { S.hands = m.hands; render(); });
  client.on("muted_changed", (m) => { S.muted = new Set(m.all_muted); render(); });
  client.on("recording_changed", (m) => { S.recording = m.on; S.sawRecording ||= m.on; render(); });
  client.on("lesson_started", (m) => { S.lessonState = "live"; S.startedAt = new Date(m.at); render(); });
  client.on("lesson_ended", (m) => { endedMsg = m; });
  client.on("fatal", finish);
  client.on("quality", (m) => { S.quality.set(m.peer_id, { ...m, at: Date.now() }); render(); });
  client.on("active_speaker", (m) => { S.speaker = m.classroom_id; render(); });
  media.on("consumers", attachMedia);
  media.on("error", (err) => errorBanner(err));
  try {
    await client.start();
  } catch {
    return; // finish() shows why
  }
  await startMedia();
  if (client.stopped) return;
  checkSpace();
  every(60_000, checkSpace);
  statsTimer = every(2000, async () => {
    const s = await media.stats();
    quality.set(s.level, s);
    if (S.quality.size) render(); // classrooms' reports turn stale without a message
  });
}

function nameOf(classroomId) {
  return [...S.participants.values()].find((p) => p.classroom_id === classroomId)?.name ?? "";
}

render();
main();
