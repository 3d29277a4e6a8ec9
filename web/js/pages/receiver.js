// 接收端: the lead's picture large, the on-stage classroom when there is one, this classroom's
// own preview small; raise/lower hand; connection quality; reconnects by itself.
import { LessonMedia, openCamera, openMic } from "../client.js";
import { audioSink, connectedClient, every, followParticipants, loadJoin, qualityPill, storedJoinSource, videoTile } from "../lesson.js";
import { apply, banner, catchAll, h, t, topbar, userMessage } from "../ui.js";

catchAll();
const saved = loadJoin();
const classroomName = saved?.join?.classroom ? `${saved.join.classroom.school} ${saved.join.classroom.name}` : "";
const { slot } = topbar({ title: [saved?.join?.lesson?.title, classroomName].filter(Boolean).join(" · ") || t("receiver.title") });
const app = document.getElementById("app");

const S = { joined: null, participants: new Map(), stage: null, hands: [], lessonState: "scheduled" };

const quality = qualityPill();
quality.root.id = "quality";
slot.append(quality.root);
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
  status.textContent = onStage ? t("receiver.on_stage_you") : handUp ? t("receiver.hand_up") : "";
  const l = lead();
  leadTile.label(l ? l.name : t("receiver.lead_picture"));
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
  const peerId = l?.peer_id;
  const [screen] = peerId ? media.find({ peerId, source: "screen" }) : [];
  const [camera] = peerId ? media.find({ peerId, source: "camera" }) : [];
  const [board] = peerId ? media.find({ peerId, source: "board" }) : [];
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
    banner(userMessage(err));
  }
});

function applyJoined(m) {
  S.joined = m;
  S.participants = new Map(m.participants.map((p) => [p.peer_id, p]));
  S.stage = m.stage;
  S.hands = m.hands;
  S.lessonState = m.lesson.state;
  render();
}

async function main() {
  if (!saved?.join) {
    banner(t("err.no_token"));
    return;
  }
  client = connectedClient(storedJoinSource(), { slot });
  media = new LessonMedia(client);
  window.tongke = { client, media, state: S };
  client.on("joined", applyJoined);
  followParticipants(client, () => S.participants, render);
  client.on("stage_changed", (m) => { S.stage = m.classroom_id; render(); });
  client.on("hand_raised", (m) => { S.hands = m.hands; render(); });
  client.on("hand_lowered", (m) => { S.hands = m.hands; render(); });
  client.on("lesson_started", () => { S.lessonState = "live"; render(); });
  client.on("lesson_ended", () => { S.lessonState = "ended"; render(); media.close(); });
  media.on("consumers", attachMedia);
  media.on("error", (err) => banner(userMessage(err)));
  try {
    await client.start();
  } catch {
    return;
  }
  const tracks = {};
  try {
    tracks.camera = await openCamera();
    selfTile.setTrack(tracks.camera);
  } catch (err) {
    banner(userMessage(err));
  }
  try {
    tracks.mic = await openMic();
  } catch (err) {
    banner(userMessage(err));
  }
  await media.publish(tracks).catch((err) => banner(userMessage(err)));
  every(2000, async () => {
    const s = await media.stats();
    quality.set(s.level, s);
  });
}

main();
