// 设备检测: camera and microphone preview, microphone level, speaker tone, network to the
// server (round trip and loss over HTTP, download of a 256 KB probe, upload to
// /api/netcheck/upload), and one plain verdict.
import { devicesAllowed, listDevices, openCamera, openMic, qualityLevel } from "../client.js";
import { videoTile } from "../lesson.js";
import { apply, catchAll, h, insecurePanel, t, topbar, userMessage } from "../ui.js";

catchAll();
topbar({ title: t("check.title") });
const app = document.getElementById("app");

const camSelect = h("select", { id: "camera-select" });
const micSelect = h("select", { id: "mic-select" });
const preview = videoTile({ placeholder: t("media.camera_off"), id: "camera-preview" });
const meter = h("div", { class: "meter", id: "mic-meter" }, h("div"));
const startBtn = h("button", { class: "primary big", type: "button", id: "check-start", "data-i18n": "check.start" });
const toneBtn = h("button", { type: "button", id: "play-tone", "data-i18n": "check.play_tone" });
const heardYes = h("button", { type: "button", id: "heard-yes", "data-i18n": "check.heard" });
const heardNo = h("button", { type: "button", id: "heard-no", "data-i18n": "check.not_heard" });
const verdict = h("p", { class: "verdict", id: "check-verdict", "data-result": "pending" });

function row(id, key) {
  const value = h("span", { id, "data-result": "pending" }, t("check.pending"));
  return { li: h("li", {}, h("b", { "data-i18n": key }), value), value };
}
const rows = {
  camera: row("check-camera", "check.camera"),
  mic: row("check-mic", "check.microphone"),
  speaker: row("check-speaker", "check.speaker"),
  network: row("check-network", "check.network"),
};
function set(name, result, text) {
  rows[name].value.dataset.result = result;
  rows[name].value.textContent = text;
  rows[name].value.style.color = result === "ok" ? "var(--good)" : result === "fail" ? "var(--poor)" : "";
}

app.replaceChildren(
  h("div", { class: "panel" }, h("h1", { "data-i18n": "check.title" }), h("p", { class: "muted", "data-i18n": "check.intro" }), startBtn),
  h("div", { class: "grid2" },
    h("div", { class: "panel" },
      preview.root,
      h("div", { class: "row", style: "display:flex; gap:.6rem; margin-top:.6rem" },
        h("div", { style: "flex:1" }, h("label", { for: "camera-select", "data-i18n": "check.camera_select" }), camSelect),
        h("div", { style: "flex:1" }, h("label", { for: "mic-select", "data-i18n": "check.mic_select" }), micSelect)),
      h("label", { "data-i18n": "check.level" }), meter,
      h("div", { class: "actions" }, toneBtn, h("span", { class: "muted", "data-i18n": "check.tone_question" }), heardYes, heardNo)),
    h("div", { class: "panel" }, h("ul", { class: "checklist" }, ...Object.values(rows).map((r) => r.li)), verdict)),
);
apply(app);
// Plain http on the LAN: say so first, and never call it a broken device (issue 12).
const secure = devicesAllowed();
if (!secure) app.prepend(insecurePanel({ what: t("insecure.what_check") }));

const results = { camera: "pending", mic: "pending", speaker: "pending", network: null };
let tracks = [];
let audioCtx = null;
let meterTimer = 0;

function ctx() {
  audioCtx ??= new AudioContext();
  audioCtx.resume().catch(() => {});
  return audioCtx;
}

async function fillDevices() {
  try {
    const { cameras, mics } = await listDevices();
    const fill = (select, list) => {
      const keep = select.value;
      select.replaceChildren(...list.map((d, i) => h("option", { value: d.deviceId }, d.label || `#${i + 1}`)));
      if (keep) select.value = keep;
    };
    fill(camSelect, cameras);
    fill(micSelect, mics);
  } catch (err) {
    console.debug("enumerateDevices failed", err);
  }
}

async function checkCamera() {
  if (!secure) {
    results.camera = "insecure";
    return set("camera", "fail", t("insecure.title"));
  }
  set("camera", "running", t("check.running"));
  try {
    const track = await openCamera(camSelect.value || undefined);
    tracks.push(track);
    preview.setTrack(track);
    const video = preview.video;
    for (let i = 0; i < 50 && !video.videoWidth; i++) await new Promise((r) => setTimeout(r, 100));
    if (!video.videoWidth) throw Object.assign(new Error("no frames"), { name: "NotReadableError" });
    results.camera = "ok";
    set("camera", "ok", t("check.camera_ok", { w: video.videoWidth, h: video.videoHeight }));
  } catch (err) {
    results.camera = "fail";
    set("camera", "fail", t("check.camera_fail", { reason: userMessage(err) }));
  }
}

async function checkMic() {
  if (!secure) {
    results.mic = "insecure";
    return set("mic", "fail", t("insecure.title"));
  }
  set("mic", "running", t("check.running"));
  try {
    const track = await openMic(micSelect.value || undefined);
    tracks.push(track);
    const analyser = ctx().createAnalyser();
    analyser.fftSize = 1024;
    ctx().createMediaStreamSource(new MediaStream([track])).connect(analyser);
    const buf = new Float32Array(analyser.fftSize);
    let peak = 0;
    clearInterval(meterTimer);
    meterTimer = setInterval(() => {
      analyser.getFloatTimeDomainData(buf);
      let sum = 0;
      for (const v of buf) sum += v * v;
      const rms = Math.sqrt(sum / buf.length);
      peak = Math.max(peak, rms);
      meter.firstChild.style.width = `${Math.min(100, rms * 400)}%`;
    }, 80);
    await new Promise((r) => setTimeout(r, 2000));
    results.mic = peak > 0.005 ? "ok" : "silent";
    set("mic", peak > 0.005 ? "ok" : "warn", t(peak > 0.005 ? "check.mic_ok" : "check.mic_silent"));
  } catch (err) {
    results.mic = "fail";
    set("mic", "fail", t("check.mic_fail", { reason: userMessage(err) }));
  }
}

function playTone() {
  const c = ctx();
  const osc = c.createOscillator();
  const gain = c.createGain();
  osc.frequency.value = 660;
  gain.gain.setValueAtTime(0.0001, c.currentTime);
  gain.gain.exponentialRampToValueAtTime(0.3, c.currentTime + 0.05);
  gain.gain.exponentialRampToValueAtTime(0.0001, c.currentTime + 0.8);
  osc.connect(gain).connect(c.destination);
  osc.start();
  osc.stop(c.currentTime + 0.85);
  if (results.speaker === "pending") set("speaker", "running", t("check.tone_question"));
}
toneBtn.addEventListener("click", playTone);
heardYes.addEventListener("click", () => { results.speaker = "ok"; set("speaker", "ok", t("check.speaker_ok")); decide(); });
heardNo.addEventListener("click", () => { results.speaker = "fail"; set("speaker", "fail", t("check.speaker_fail")); decide(); });

async function timed(url, init = {}) {
  const start = performance.now();
  const response = await fetch(url, { cache: "no-store", ...init });
  const body = await response.arrayBuffer();
  return { ms: performance.now() - start, ok: response.ok, status: response.status, bytes: body.byteLength };
}

async function checkNetwork() {
  set("network", "running", t("check.running"));
  const rtts = [];
  let failed = 0;
  const tries = 10;
  for (let i = 0; i < tries; i++) {
    try {
      const r = await timed(`/healthz?n=${i}-${Date.now()}`);
      if (r.ok) rtts.push(r.ms);
      else failed++;
    } catch {
      failed++;
    }
  }
  if (!rtts.length) {
    results.network = { level: "poor", failed: true };
    set("network", "fail", t("check.net_fail"));
    return;
  }
  rtts.sort((a, b) => a - b);
  const rtt = Math.round(rtts[Math.floor(rtts.length / 2)]);
  const loss = (100 * failed) / tries;
  let down = 0;
  try {
    let bytes = 0;
    let ms = 0;
    for (let i = 0; i < 2; i++) {
      const r = await timed(`/check/probe.txt?n=${i}-${Date.now()}`);
      bytes += r.bytes;
      ms += r.ms;
    }
    down = (bytes * 8) / (ms / 1000) / 1e6;
  } catch {
    down = 0;
  }
  let up = null;
  try {
    const payload = new Uint8Array(256 * 1024);
    const r = await timed("/api/netcheck/upload", { method: "POST", body: payload, headers: { "Content-Type": "application/octet-stream" } });
    if (r.ok) up = (payload.byteLength * 8) / (r.ms / 1000) / 1e6;
  } catch {
    up = null;
  }
  let level = qualityLevel(rtt, loss);
  const slowest = Math.min(down, up ?? down);
  if (slowest < 1.5) level = "poor";
  else if (slowest < 4 && level === "good") level = "fair";
  results.network = { level, rtt, loss, down, up };
  const fmt = (v) => (v >= 100 ? ">100" : v.toFixed(1));
  set("network", level === "poor" ? "fail" : "ok", t("check.net_result", {
    rtt, loss: loss.toFixed(0), down: fmt(down), up: up === null ? t("check.up_na") : `${fmt(up)} Mbps`,
  }));
  rows.network.value.dataset.level = level;
}

function decide() {
  const broken = [];
  if (results.camera === "fail") broken.push(t("check.camera"));
  if (results.mic === "fail") broken.push(t("check.microphone"));
  if (results.speaker === "fail") broken.push(t("check.speaker"));
  let key = null;
  let text = "";
  if (!secure) {
    key = "insecure";
    text = t("check.verdict_insecure");
  } else if (broken.length) {
    key = "device";
    text = t("check.verdict_device", { what: broken.join("、") });
  } else if (results.network) {
    key = results.network.level === "unknown" ? "fair" : results.network.level;
    text = t(`check.verdict_${key}`);
  }
  if (!key) return;
  verdict.dataset.result = key;
  verdict.textContent = text;
  verdict.style.color = key === "good" ? "var(--good)" : key === "fair" ? "var(--fair)" : "var(--poor)";
  if (key === "insecure") verdict.append(" ", h("a", { href: "/ca/" }, t("insecure.ca_link")));
}

async function run() {
  startBtn.disabled = true;
  for (const track of tracks) track.stop();
  tracks = [];
  verdict.dataset.result = "pending";
  verdict.textContent = t("check.running");
  await checkCamera();
  await checkMic();
  await fillDevices();
  await checkNetwork();
  decide();
  startBtn.dataset.i18n = "check.again";
  startBtn.textContent = t("check.again");
  startBtn.disabled = false;
}
startBtn.addEventListener("click", run);
if (secure) fillDevices();
