// 接收端: the lead's picture large, the on-stage classroom when there is one, this classroom's
// own preview small; raise/lower hand; whether the lead hears this room; connection quality;
// reconnects by itself; the ended and replaced screens.
import { LessonMedia, devicesAllowed, liveTrackCount, openCamera, openMic, releaseDevices } from "../client.js";
import { audioSink, connectedClient, every, followParticipants, loadJoin, qualityPill, storedJoinSource, talkBanner, videoTile } from "../lesson.js";
import { outcomeByCode, showEnded, showInsecure, showNoLink, showReplaced } from "../lifecycle.js";
import { backToSchedule, terminalOutcome } from "../terminal_link.js";
import { apply, catchAll, errorBanner, h, t, topbar } from "../ui.js";

catchAll();
const saved = loadJoin();
const classroomName = saved?.join?.classroom ? `${saved.join.classroom.school} ${saved.join.classroom.name}` : "";
const { slot } = topbar({ title: [saved?.join?.lesson?.title, classroomName].filter(Boolean).join(" · ") || t("receiver.title") });
const app = document.getElementById("app");

const S = {
  joined: null,
  participants: new Map(),
  stage: null,
  hands: [],
  muted: new Set(), // receiving classrooms the lead does not hear (joined, stage_changed, muted_changed)
  recording: false,
  sawRecording: false,
  lessonState: "scheduled",
};

const recNotice = h("span", { class: "rec hidden", id: "recording-notice" }, t("recording.notice"));
const quality = qualityPill();
quality.root.id = "quality";
slot.append(recNotice, quality.root);
const leadTile = videoTile({ placeholder: t("receiver.waiting_lead"), id: "lead-video" });
const leadSmall = videoTile({ placeholder: t("media.no_video"), id: "lead-small" });
const stageTile = videoTile({ placeholder: t("media.no_video"), id: "stage-video" });
const selfTile = videoTile({ placeholder: t("media.camera_off"), id: "self-video" });
selfTile.label(t("receiver.self"));
const stageBox = h("div", { class: "stack hidden", id: "stage-box" }, h("h3", {}, t("receiver.stage")), stageTile.root);
const smallBox = h("div", { class: "hidden", id: "lead-small-box" }, leadSmall.root);
const handBtn = h("button", { class: "primary big", type: "button", id: "hand" }, t("receiver.raise"));
const status = h("p", { class: "muted", id: "receiver-status" });
const waiting = h("p", { class: "banner info hidden", id: "waiting-start" }, t("receiver.waiting_start"));

app.replaceChildren(
  h("div", { class: "classroom" },
    h("section", { class: "stack" }, waiting, leadTile.root),
    h("aside", { class: "side" }, stageBox, smallBox, selfTile.root,
      h("div", { class: "panel" }, handBtn, status))),
);
apply(app);

let client = null;
let media = null;
const sink = audioSink(app);

function lead() {
  return [...S.participants.values()].find((p) => p.role === "lead") ?? null;
}

/** Whether the lead hears this classroom, said one way only: from the `muted` list. */
function audioSentence(me, onStage) {
  const live = S.lessonState === "live";
  if (!live || !me) return { key: "", heard: false };
  const heardHere = !S.muted.has(me);
  if (onStage) return { key: heardHere ? "receiver.on_stage_you" : "receiver.on_stage_muted", heard: heardHere };
  return { key: heardHere ? "receiver.heard" : "", heard: heardHere };
}

function render() {
  const me = S.joined?.you?.classroom_id;
  const live = S.lessonState === "live";
  waiting.classList.toggle("hidden", live || S.lessonState === "ended");
  const handUp = S.hands.includes(me);
  const onStage = S.stage !== null && S.stage === me;
  handBtn.textContent = handUp ? t("receiver.lower") : t("receiver.raise");
  handBtn.className = handUp ? "big on" : "primary big";
  handBtn.disabled = !live || onStage;
  handBtn.dataset.state = handUp ? "up" : "down";
  const sentence = audioSentence(me, onStage);
  const lines = [sentence.key ? t(sentence.key) : "", handUp && !onStage ? t("receiver.hand_up") : ""];
  status.textContent = lines.filter(Boolean).join(" ");
  status.className = sentence.heard ? "heard" : sentence.key ? "unheard" : "muted";
  status.dataset.heard = String(sentence.heard);
  recNotice.classList.toggle("hidden", !S.recording);
  const l = lead();
  leadTile.label(l ? l.name : t("receiver.lead_picture"),
    l?.mic_on === false ? h("span", { class: "pill poor", id: "lead-mic-off" }, t("receiver.lead_mic_off")) : "");
  leadTile.setPlaceholder(l?.camera_on === false ? t("receiver.lead_camera_off") : t("receiver.waiting_lead"));
  leadTile.root.dataset.camera = l?.camera_on === false ? "off" : "on";
  const other = S.stage !== null && S.stage !== me;
  stageBox.classList.toggle("hidden", !other);
  stageBox.dataset.classroom = other ? S.stage : "";
  if (other) {
    const p = [...S.participants.values()].find((x) => x.classroom_id === S.stage);
    stageTile.label(h("span", { class: "pill stage" }, t("lead.stage_now")), p?.name ?? "");
  }
  attachMedia();
}

function attachMedia() {
  if (!media) return;
  const l = lead();
  // By classroom, not by peer: a 录播 host pulled as the lead classroom's camera (an ingest,
  // docs/protocol.md "Ingest") is the lead's picture too.
  const classroomId = l?.classroom_id;
  const [screen] = classroomId ? media.find({ classroomId, source: "screen" }) : [];
  const [found] = classroomId ? media.find({ classroomId, source: "camera" }) : [];
  // The lead page's camera off: its consumer stays, but sends nothing; show the sentence
  // instead (a host's picture is shown whatever the page's own camera does).
  const camera = found && (l?.camera_on !== false || found.producer.peer_id !== l?.peer_id) ? found : undefined;
  const [board] = classroomId ? media.find({ classroomId, source: "board" }) : [];
  const big = screen ?? camera ?? board;
  const small = big === screen ? camera : big === camera ? board : null;
  leadTile.setTrack(big?.track ?? null);
  leadTile.root.dataset.mid = big?.mid ?? "";
  leadSmall.setTrack(small?.track ?? null);
  leadSmall.label(small === camera ? (l?.name ?? "") : t("lead.board"));
  smallBox.classList.toggle("hidden", !small);
  const me = S.joined?.you?.classroom_id;
  const [stage] = S.stage && S.stage !== me ? media.find({ classroomId: S.stage, source: "camera" }) : [];
  stageTile.setTrack(stage?.track ?? null);
  stageTile.root.dataset.mid = stage?.mid ?? "";
  sink.set([...media.consumers.values()].filter((c) => c.producer.kind === "audio").map((c) => c.track));
}

handBtn.addEventListener("click", async () => {
  const me = S.joined?.you?.classroom_id;
  try {
    await client.request({ type: S.hands.includes(me) ? "lower_hand" : "raise_hand" });
  } catch (err) {
    errorBanner(err);
  }
});

function applyJoined(m) {
  S.joined = m;
  S.participants = new Map(m.participants.map((p) => [p.peer_id, p]));
  S.stage = m.stage;
  S.hands = m.hands;
  S.muted = new Set(m.muted ?? []);
  S.recording = m.recording;
  S.sawRecording ||= m.recording;
  S.lessonState = m.lesson.state;
  render();
}

let endedMsg = null;
let statsTimer = 0;

function finish(err) {
  clearInterval(statsTimer);
  media?.close();
  sink.set([]);
  recNotice.classList.add("hidden");
  quality.root.classList.add("hidden");
  if (err.code === "replaced") return showReplaced(app);
  S.lessonState = "ended";
  const outcome = saved.terminal ? terminalOutcome : outcomeByCode(saved.code);
  showEnded(app, { ended: endedMsg, outcome, role: "receiver", sawRecording: S.sawRecording });
  if (saved.terminal) backToSchedule(app); // a classroom terminal goes back to its day
}

async function main() {
  if (!saved?.join || !devicesAllowed()) {
    quality.root.classList.add("hidden");
    return saved?.join ? showInsecure(app, t("insecure.what_classroom")) : showNoLink(app);
  }
  client = connectedClient(storedJoinSource(), { slot });
  talkBanner(client);
  media = new LessonMedia(client);
  window.tongke = { client, media, state: S, liveTrackCount };
  client.on("joined", applyJoined);
  followParticipants(client, () => S.participants, render);
  client.on("stage_changed", (m) => { S.stage = m.classroom_id; S.muted = new Set(m.muted ?? []); render(); });
  client.on("muted_changed", (m) => { S.muted = new Set(m.all_muted); render(); });
  client.on("hand_raised", (m) => { S.hands = m.hands; render(); });
  client.on("hand_lowered", (m) => { S.hands = m.hands; render(); });
  client.on("recording_changed", (m) => { S.recording = m.on; S.sawRecording ||= m.on; render(); });
  client.on("lesson_started", () => { S.lessonState = "live"; render(); });
  client.on("lesson_ended", (m) => { endedMsg = m; });
  client.on("fatal", finish);
  media.on("consumers", attachMedia);
  media.on("error", (err) => errorBanner(err));
  try {
    await client.start();
  } catch {
    return; // finish() shows why
  }
  const tracks = {};
  try {
    tracks.camera = await openCamera();
    selfTile.setTrack(tracks.camera);
  } catch (err) {
    errorBanner(err);
  }
  try {
    tracks.mic = await openMic();
  } catch (err) {
    errorBanner(err);
  }
  if (client.stopped) return releaseDevices(); // ended or replaced while the devices opened
  await media.publish(tracks).catch((err) => errorBanner(err));
  if (client.stopped) return;
  statsTimer = every(1000, async () => {
    const s = await media.stats();
    quality.set(s.level, s);
  });
}

main();
