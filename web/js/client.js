// The one shared client of every page: signaling over the WebSocket and WebRTC media.
//
// LessonClient: join/resume, automatic reconnect with exponential backoff, ping, request/
// response by id with timeouts, events by message type. LessonMedia: the send
// RTCPeerConnection (the client offers with `publish`), the receive one (the server offers with
// `subscribe_offer`), dual-stream camera (main + a 640x360 low copy), stats. docs/protocol.md is
// the contract; docs/web.md describes this module.

export const PROTOCOL_VERSION = 1;

/** A refusal with a stable code (server codes, plus unreachable, timeout, closed). */
export class SignalingError extends Error {
  constructor(code, message) {
    super(message || code);
    this.code = code;
  }
}

export class Emitter {
  #handlers = new Map();
  on(type, fn) {
    if (!this.#handlers.has(type)) this.#handlers.set(type, new Set());
    this.#handlers.get(type).add(fn);
    return () => this.#handlers.get(type)?.delete(fn);
  }
  emit(type, ...args) {
    for (const fn of [...(this.#handlers.get(type) ?? [])]) {
      try {
        fn(...args);
      } catch (err) {
        console.warn("listener failed", type, err); // one listener never breaks the others
      }
    }
  }
}

// Refusals that retrying cannot fix: the page says so and stops.
const FATAL = new Set([
  "token_invalid", "token_revoked", "wrong_lesson", "lesson_not_found", "lesson_ended",
  "forbidden", "not_on_roster", "unsupported_version", "replaced",
]);
const CLOSE_FATAL = { 4403: "forbidden", 4409: "replaced", 4410: "lesson_ended" };
// Many nodes: the lesson now lives on another node (docs/protocol.md). Join from the link again.
const CLOSE_MOVED = 4301;

function wsUrl(path) {
  if (/^wss?:/.test(path)) return path;
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  return `${scheme}://${location.host}${path.startsWith("/") ? "" : "/"}${path}`;
}

/**
 * One peer's signaling session.
 * getJoin(fresh): resolves to {token, ws_url?}; fresh=true after token_expired (re-open the link).
 * Events: state(state, {attempt}), joined(msg), fatal(error), error(msg), and every message type.
 */
export class LessonClient extends Emitter {
  constructor({ getJoin, requestTimeoutMs = 10000, maxBackoffMs = 4000, label = "" }) {
    super();
    this.getJoin = getJoin;
    this.requestTimeoutMs = requestTimeoutMs;
    this.maxBackoffMs = maxBackoffMs;
    this.label = label;
    this.state = "idle";
    this.attempt = 0;
    this.joined = null;
    this.resumeToken = null;
    this.lostAt = 0;
    this.ws = null;
    this.pending = new Map();
    this.nextId = 1;
    this.stopped = false;
    this.timers = { ping: 0, retry: 0 };
    this.lastHeard = 0;
    this.freshTried = false;
    // Many nodes: after a socket that never opened (its node may be gone) or close 4301, the
    // join link is opened again, since it names the lesson's current home; resume is tried
    // only on the node that issued the resume token.
    this.freshJoin = false;
    this.moved = false;
    this.url = null;
    this.resumeUrl = null;
  }

  /** Connects and resolves with the first joined message; rejects on a fatal refusal. */
  start() {
    return new Promise((resolve, reject) => {
      const offJoined = this.on("joined", (m) => { offJoined(); offFatal(); resolve(m); });
      const offFatal = this.on("fatal", (e) => { offJoined(); offFatal(); reject(e); });
      this.#connect();
    });
  }

  #setState(state) {
    if (state === this.state) return;
    this.state = state;
    this.emit("state", state, { attempt: this.attempt });
  }

  async #connect() {
    if (this.stopped) return;
    this.#setState(this.attempt ? "reconnecting" : "connecting");
    let join;
    try {
      join = await this.getJoin(this.freshJoin);
    } catch (err) {
      if (err.code && FATAL.has(err.code)) return this.#fatal(err.code, err.message);
      if (["link_not_found", "link_revoked", "link_expired", "no_token"].includes(err.code)) {
        return this.#fatal(err.code, err.message);
      }
      return this.#retry();
    }
    this.join = join;
    const url = (this.url = wsUrl(join.ws_url ?? "/ws"));
    const ws = (this.ws = new WebSocket(url));
    let opened = false;
    ws.onopen = () => {
      opened = true;
      this.freshJoin = false;
      this.lastHeard = Date.now();
      const window_ms = (this.joined?.resume_window_s ?? 30) * 1000;
      if (this.resumeToken && url === this.resumeUrl && Date.now() - this.lostAt < window_ms - 1000) {
        this.#raw({ type: "resume", version: PROTOCOL_VERSION, resume_token: this.resumeToken });
      } else {
        this.#sendJoin();
      }
    };
    ws.onmessage = (e) => this.#onMessage(ws, e.data);
    ws.onclose = (e) => {
      if (!opened) this.freshJoin = true; // its node may be gone: ask the join link next time
      this.#onClose(ws, e.code);
    };
    ws.onerror = () => {}; // onclose follows and decides
  }

  #sendJoin() {
    this.#raw({ type: "join", version: PROTOCOL_VERSION, token: this.join.token });
  }

  #raw(message) {
    if (this.ws?.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(message));
  }

  #onMessage(ws, data) {
    if (ws !== this.ws) return;
    this.lastHeard = Date.now();
    let msg;
    try {
      msg = JSON.parse(data);
    } catch {
      return;
    }
    if (msg.type === "joined") return this.#onJoined(msg);
    if (msg.id && this.pending.has(msg.id)) {
      const p = this.pending.get(msg.id);
      this.pending.delete(msg.id);
      clearTimeout(p.timer);
      if (msg.type === "error") p.reject(new SignalingError(msg.code, msg.message));
      else p.resolve(msg);
      if (msg.type === "error" || msg.type === "ok") return;
    } else if (msg.type === "error" && this.state !== "joined") {
      return this.#onJoinError(msg);
    }
    this.emit("message", msg);
    this.emit(msg.type, msg);
    if (msg.type === "lesson_ended") this.#fatal("lesson_ended", msg.message);
  }

  async #onJoinError(msg) {
    if (msg.code === "resume_failed") {
      this.resumeToken = null;
      return this.#sendJoin();
    }
    if (msg.code === "token_expired" && !this.freshTried) {
      this.freshTried = true;
      try {
        this.join = { ...this.join, ...(await this.getJoin(true)) };
        return this.#sendJoin();
      } catch (err) {
        return this.#fatal(err.code ?? "token_expired", err.message);
      }
    }
    if (FATAL.has(msg.code) || msg.code === "token_expired") return this.#fatal(msg.code, msg.message);
    if (msg.code === "wrong_node") {
      // Many nodes: the lesson lives on another node. The join link names it: open the link
      // again (the stored join is replaced), then reconnect, to the new ws_url.
      try {
        await this.getJoin(true);
      } catch (err) {
        return this.#fatal(err.code ?? "wrong_node", err.message);
      }
      return this.ws?.close();
    }
    this.emit("error", msg); // capacity, rate_limited...: the close that follows retries
  }

  #onJoined(msg) {
    const again = this.joined !== null;
    this.joined = msg;
    this.resumeToken = msg.resume_token;
    this.resumeUrl = this.url;
    this.moved = false;
    this.attempt = 0;
    this.freshTried = false;
    this.#setState("joined");
    clearInterval(this.timers.ping);
    const every = Math.max(500, (msg.heartbeat_interval_s ?? 2) * 1000);
    const dead = Math.max(2000, (msg.heartbeat_timeout_s ?? 6) * 1000 + 1000);
    this.timers.ping = setInterval(() => {
      if (Date.now() - this.lastHeard > dead) return this.#abandon(); // silent server: reconnect
      this.#raw({ type: "ping" });
    }, every);
    this.emit("joined", msg, { again });
  }

  #onClose(ws, code) {
    if (ws !== this.ws) return;
    this.ws = null;
    clearInterval(this.timers.ping);
    for (const [, p] of this.pending) {
      clearTimeout(p.timer);
      p.reject(new SignalingError("unreachable", "connection closed"));
    }
    this.pending.clear();
    if (this.stopped) return this.#setState("closed");
    if (CLOSE_FATAL[code]) return this.#fatal(CLOSE_FATAL[code], `closed ${code}`);
    if (code === CLOSE_MOVED) {
      this.resumeToken = null; // the old node has no room for this peer any more
      this.freshJoin = this.moved = true;
    }
    if (this.state === "joined") this.lostAt = Date.now();
    this.#retry();
  }

  #retry() {
    if (this.stopped) return;
    this.attempt += 1;
    this.state = "reconnecting"; // emitted on every attempt so the page can show its number
    this.emit("state", "reconnecting", { attempt: this.attempt, moved: this.moved });
    // Capped at 4 s: after a node dies its classrooms are back within ~4 s of its heartbeat
    // expiring; the ±20 % jitter spreads a school's worth of rejoins over that span.
    const base = Math.min(this.maxBackoffMs, 500 * 2 ** (this.attempt - 1));
    const delay = base * (0.8 + Math.random() * 0.4);
    clearTimeout(this.timers.retry);
    this.timers.retry = setTimeout(() => this.#connect(), delay);
  }

  #fatal(code, message) {
    if (this.stopped) return;
    this.stopped = true;
    clearTimeout(this.timers.retry);
    clearInterval(this.timers.ping);
    this.ws?.close();
    this.#setState("closed");
    this.emit("fatal", new SignalingError(code, message));
  }

  /** Sends a message and resolves with the reply carrying its id (error replies reject). */
  request(message, timeoutMs = this.requestTimeoutMs) {
    if (this.state !== "joined" || this.ws?.readyState !== WebSocket.OPEN) {
      return Promise.reject(new SignalingError("unreachable", "not connected"));
    }
    const id = `${this.label}r${this.nextId++}`;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new SignalingError("timeout", `${message.type} timed out`));
      }, timeoutMs);
      this.pending.set(id, { resolve, reject, timer });
      this.#raw({ ...message, id });
    });
  }

  /** Drops the socket as a network failure would (the tests use it), reconnecting at once. */
  dropConnection() {
    this.#abandon();
  }

  // A dead network may never finish the closing handshake: stop waiting for it.
  #abandon() {
    const ws = this.ws;
    if (!ws) return;
    ws.onclose = ws.onmessage = null;
    try {
      ws.close();
    } catch {
      // already closed
    }
    this.#onClose(ws, 1006);
  }

  close() {
    if (this.stopped) return;
    this.#raw({ type: "leave" });
    this.stopped = true;
    clearTimeout(this.timers.retry);
    clearInterval(this.timers.ping);
    this.ws?.close(1000);
    this.#setState("closed");
  }
}

// Devices ----------------------------------------------------------------------------------

export const AUDIO_CONSTRAINTS = { echoCancellation: true, noiseSuppression: true, autoGainControl: true };

// Every local track this page opened, so that one call turns the camera light off at the end
// of a lesson or when another tab takes the classroom (a forgotten clone keeps it on).
const localTracks = new Set();

function own(track) {
  localTracks.add(track);
  track.addEventListener("ended", () => localTracks.delete(track));
  return track;
}

/** Stops every camera, microphone and screen track the page opened. */
export function releaseDevices() {
  for (const track of localTracks) track.stop();
  localTracks.clear();
}

/** How many local tracks are still live (0 once the devices are released). */
export function liveTrackCount() {
  return [...localTracks].filter((track) => track.readyState === "live").length;
}

/**
 * Browsers give cameras and microphones only to secure pages (HTTPS, or localhost). Over plain
 * http on a school LAN `navigator.mediaDevices` is missing; say so instead of a TypeError.
 */
export class InsecureContextError extends Error {
  constructor() {
    super("getUserMedia needs a secure context (HTTPS)");
    this.name = "InsecureContextError";
    this.code = "insecure_context";
  }
}

export function devicesAllowed() {
  return Boolean(globalThis.isSecureContext && navigator.mediaDevices?.getUserMedia);
}

function mediaDevices() {
  if (!devicesAllowed()) throw new InsecureContextError();
  return navigator.mediaDevices;
}

export async function openCamera(deviceId, { width = 1280, height = 720, frameRate = 25 } = {}) {
  const video = { width: { ideal: width }, height: { ideal: height }, frameRate: { ideal: frameRate } };
  if (deviceId) video.deviceId = { exact: deviceId };
  const stream = await mediaDevices().getUserMedia({ video, audio: false });
  return own(stream.getVideoTracks()[0]);
}

export async function openMic(deviceId) {
  const audio = { ...AUDIO_CONSTRAINTS };
  if (deviceId) audio.deviceId = { exact: deviceId };
  const stream = await mediaDevices().getUserMedia({ audio, video: false });
  return own(stream.getAudioTracks()[0]);
}

export async function openScreen() {
  const stream = await mediaDevices().getDisplayMedia({ video: { frameRate: 15 }, audio: false });
  const track = own(stream.getVideoTracks()[0]);
  track.contentHint = "detail";
  return track;
}

export async function listDevices() {
  const all = await mediaDevices().enumerateDevices();
  return {
    cameras: all.filter((d) => d.kind === "videoinput"),
    mics: all.filter((d) => d.kind === "audioinput"),
  };
}

/**
 * The low copy of the dual stream (大小流): the same camera, 640x360 at 15 fps, ~150 kbps.
 * Still a lesson: the teacher's face and large board writing stay legible (320x180 was not),
 * and with the voice (Opus ~32 kbps + FEC) and headers it fills ~70 % of a 300 kbps rural
 * line, which leaves room for a keyframe and NACK repairs (at 200 kbps it filled ~90 %, and
 * a 200 ms line buffer overflowed at every keyframe: 12-20 freezes in 20 s, issue 20).
 */
export async function lowCopy(track) {
  const low = own(track.clone());
  try {
    await low.applyConstraints({ width: { ideal: 640 }, height: { ideal: 360 }, frameRate: { ideal: 15 } });
  } catch (err) {
    console.warn("low layer constraints refused; the bitrate cap still applies", err);
  }
  return low;
}

// Media ------------------------------------------------------------------------------------

const BITRATE = { camera: 1_200_000, low: 150_000, board: 1_500_000, screen: 1_500_000 };
// A transport disconnected this long is restarted (Chromium says `disconnected` after ~5 s
// without ICE answers and `failed` only after ~30 s; a classroom should not wait that long).
const STUCK_MS = 4000;

function iceConfig(joined) {
  const servers = (joined?.ice_servers ?? []).map((s) =>
    typeof s === "string" ? { urls: [s] } : { urls: s.urls, username: s.username ?? undefined, credential: s.credential ?? undefined },
  );
  // Explicit servers (possibly none): never a browser default.
  return { iceServers: servers, bundlePolicy: "max-bundle", rtcpMuxPolicy: "require" };
}

function gathered(pc, timeoutMs = 3000) {
  if (pc.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => { clearTimeout(timer); pc.removeEventListener("icegatheringstatechange", check); resolve(); };
    const check = () => pc.iceGatheringState === "complete" && done();
    const timer = setTimeout(done, timeoutMs); // use what was gathered so far
    pc.addEventListener("icegatheringstatechange", check);
  });
}

/**
 * The media of one peer. publish(tracks) sends {camera, board, screen, mic} (camera also as
 * the low layer); the server's subscribe offers are answered here and exposed as consumers.
 * Events: consumers(list of {consumer_id, mid, producer, track}), publish_state(state), error(err).
 */
export class LessonMedia extends Emitter {
  constructor(client, { dualStream = true } = {}) {
    super();
    this.client = client;
    this.dualStream = dualStream;
    this.sendPc = null;
    this.recvPc = null;
    this.senders = new Map(); // "camera:main" -> transceiver
    this.tracks = {}; // what the page wants published, by source
    this.consumers = new Map(); // mid -> consumer with track
    this.closed = false;
    this.chain = Promise.resolve();
    this.prev = null;
    this.restarts = 0; // media restarts after a loss or a stuck transport (tests, stats)
    this.stuckTimer = 0;
    client.on("subscribe_offer", (m) => this.#serial(() => this.#answer(m)));
    client.on("joined", (m, { again } = {}) => again && this.#rejoined(m));
  }

  // A transport that fails, or stays disconnected for STUCK_MS, is not waited for: the page
  // reconnects its signaling (a resume), the server releases this peer's media, and
  // #rejoined publishes again on fresh transports and answers a fresh subscription offer.
  #watch(pc) {
    const check = () => {
      if (this.closed || (pc !== this.sendPc && pc !== this.recvPc)) return;
      const stuck = () => [this.sendPc, this.recvPc].some((p) => p && ["failed", "disconnected"].includes(p.connectionState));
      if (pc.connectionState === "failed") return this.#recover();
      if (pc.connectionState === "disconnected" && !this.stuckTimer) {
        this.stuckTimer = setTimeout(() => {
          this.stuckTimer = 0;
          if (!this.closed && stuck()) this.#recover();
        }, STUCK_MS);
      }
    };
    pc.addEventListener("connectionstatechange", check);
  }

  #recover() {
    clearTimeout(this.stuckTimer);
    this.stuckTimer = 0;
    // Not joined: the reconnect under way ends in #rejoined anyway.
    if (this.closed || this.client.state !== "joined") return;
    this.emit("recovering");
    this.client.dropConnection();
  }

  #serial(task) {
    this.chain = this.chain.then(task).catch((err) => this.emit("error", err));
    return this.chain;
  }

  /** Publishes {camera, board, screen, mic} tracks (any may be missing). */
  publish(tracks) {
    Object.assign(this.tracks, tracks);
    return this.#serial(() => this.#negotiate());
  }

  /** Replaces one source's track (null stops it); renegotiates only when a new m-line is needed. */
  setSource(source, track) {
    this.tracks[source] = track;
    return this.#serial(async () => {
      const main = this.senders.get(`${source}:main`);
      if (main) {
        await main.sender.replaceTrack(track ?? null);
        const low = this.senders.get(`${source}:low`);
        if (low) {
          low.sender.track?.stop();
          await low.sender.replaceTrack(track ? await lowCopy(track) : null);
        }
        return;
      }
      if (track) await this.#negotiate();
    });
  }

  async #negotiate() {
    if (this.closed) return; // the lesson ended or the tab was replaced: no new connections
    let pc = this.sendPc;
    if (!pc || ["failed", "closed"].includes(pc.connectionState)) {
      pc?.close();
      pc = this.sendPc = new RTCPeerConnection(iceConfig(this.client.joined));
      this.#dropSenders();
      pc.addEventListener("connectionstatechange", () => this.emit("publish_state", pc.connectionState));
      this.#watch(pc);
    }
    const wanted = [];
    for (const source of ["camera", "board", "screen", "mic"]) {
      const track = this.tracks[source];
      if (!track && !this.senders.has(`${source}:main`)) continue;
      wanted.push([source, "main", track]);
      if (source === "camera" && this.dualStream) wanted.push([source, "low", track]);
    }
    for (const [source, layer, track] of wanted) {
      const key = `${source}:${layer}`;
      if (this.senders.has(key)) continue;
      const sendTrack = layer === "low" && track ? await lowCopy(track) : track;
      const init = { direction: "sendonly" };
      if (source !== "mic") init.sendEncodings = [{ maxBitrate: BITRATE[layer === "low" ? "low" : source] }];
      const kind = source === "mic" ? "audio" : "video";
      this.senders.set(key, pc.addTransceiver(sendTrack ?? kind, init));
    }
    if (!this.senders.size) return;
    await pc.setLocalDescription(await pc.createOffer());
    await gathered(pc);
    const specs = [...this.senders].map(([key, tr]) => {
      const [source, layer] = key.split(":");
      return { mid: tr.mid, source, layer };
    });
    const reply = await this.client.request({ type: "publish", sdp: pc.localDescription.sdp, tracks: specs }, 20000);
    await pc.setRemoteDescription({ type: "answer", sdp: reply.sdp });
  }

  async #answer(msg) {
    if (this.closed) return;
    let pc = this.recvPc;
    if (!pc || ["failed", "closed"].includes(pc.connectionState)) {
      pc?.close();
      pc = this.recvPc = new RTCPeerConnection(iceConfig(this.client.joined));
      pc.addEventListener("connectionstatechange", () => this.emit("receive_state", pc.connectionState));
      this.#watch(pc);
    }
    await pc.setRemoteDescription({ type: "offer", sdp: msg.sdp });
    await pc.setLocalDescription(await pc.createAnswer());
    await gathered(pc);
    await this.client.request({ type: "subscribe_answer", sdp: pc.localDescription.sdp }, 20000);
    const byMid = new Map(pc.getTransceivers().map((tr) => [tr.mid, tr]));
    this.consumers = new Map();
    for (const c of msg.consumers ?? []) {
      const tr = byMid.get(c.mid);
      if (tr) this.consumers.set(c.mid, { ...c, track: tr.receiver.track });
    }
    this.emit("consumers", [...this.consumers.values()]);
  }

  async #rejoined() {
    // Joined again, resumed or not: the server released this peer's media when it lost the
    // connection (docs/protocol.md), so the old transports lead nowhere, however healthy
    // they look. Start over: publish on a fresh send transport; the server's next
    // subscription offer builds a fresh receive transport.
    clearTimeout(this.stuckTimer);
    this.stuckTimer = 0;
    this.restarts += 1;
    this.recvPc?.close();
    this.recvPc = null;
    this.sendPc?.close();
    this.sendPc = null;
    this.#dropSenders();
    this.prev = null;
    if (Object.values(this.tracks).some(Boolean)) await this.#serial(() => this.#negotiate());
  }

  // The low copies are this module's own clones: stop them with their transceivers.
  #dropSenders() {
    for (const [key, tr] of this.senders) if (key.endsWith(":low")) tr.sender.track?.stop();
    this.senders.clear();
  }

  /** Consumers of one source from a peer (peerId) or a classroom (classroomId), main first. */
  find({ peerId, classroomId, source }) {
    const out = [...this.consumers.values()].filter((c) => {
      const p = c.producer;
      if (p.source !== source) return false;
      return peerId ? p.peer_id === peerId : p.classroom_id === classroomId;
    });
    return out.sort((a, b) => (a.producer.layer === "main" ? -1 : 1) - (b.producer.layer === "main" ? -1 : 1));
  }

  /** Connection numbers for the quality indicator: rtt, loss, jitter, frames decoded, per mid. */
  async stats() {
    const out = {
      rtt_ms: null, loss_pct: 0, jitter_ms: 0, framesDecoded: 0, audioPackets: 0, freezes: 0, byMid: {},
      level: "unknown",
    };
    let lost = 0;
    let received = 0;
    const read = async (pc) => (pc && pc.connectionState !== "closed" ? await pc.getStats() : new Map());
    for (const report of (await read(this.recvPc)).values()) {
      if (report.type === "inbound-rtp") {
        lost += report.packetsLost ?? 0;
        received += report.packetsReceived ?? 0;
        out.jitter_ms = Math.max(out.jitter_ms, (report.jitter ?? 0) * 1000);
        if (report.kind === "video") out.framesDecoded += report.framesDecoded ?? 0;
        if (report.kind === "video") out.freezes += report.freezeCount ?? 0;
        if (report.kind === "audio") out.audioPackets += report.packetsReceived ?? 0;
        if (report.mid) {
          out.byMid[report.mid] = {
            kind: report.kind, framesDecoded: report.framesDecoded ?? 0, packetsReceived: report.packetsReceived ?? 0,
            packetsLost: report.packetsLost ?? 0, width: report.frameWidth ?? 0, height: report.frameHeight ?? 0,
          };
        }
      }
      if (report.type === "candidate-pair" && report.nominated && report.currentRoundTripTime !== undefined) {
        out.rtt_ms = Math.round(report.currentRoundTripTime * 1000);
      }
    }
    for (const report of (await read(this.sendPc)).values()) {
      if (out.rtt_ms !== null) break;
      if (report.type === "candidate-pair" && report.nominated && report.currentRoundTripTime !== undefined) {
        out.rtt_ms = Math.round(report.currentRoundTripTime * 1000);
      }
      // The server's receiver reports give the round trip when ICE consent checks do not.
      if (report.type === "remote-inbound-rtp" && report.roundTripTime !== undefined) {
        out.rtt_ms = Math.round(report.roundTripTime * 1000);
      }
    }
    const prev = this.prev ?? { lost: 0, received: 0, freezes: 0 };
    const dLost = Math.max(0, lost - prev.lost);
    const dRecv = Math.max(0, received - prev.received);
    const froze = this.prev !== null && out.freezes > prev.freezes;
    this.prev = { lost, received, freezes: out.freezes };
    out.loss_pct = dLost + dRecv ? (100 * dLost) / (dLost + dRecv) : 0;
    out.level = received || out.rtt_ms !== null ? qualityLevel(out.rtt_ms, out.loss_pct, out.jitter_ms) : "unknown";
    // What this classroom lives through, not only what the numbers average: nothing arrived
    // since the last reading (the link or the server is gone), or the picture froze.
    out.stalled = received > 0 && dRecv === 0 && this.consumers.size > 0;
    if (out.stalled || (this.client.state !== "joined" && this.client.joined)) out.level = "down";
    else if (froze) out.level = "poor";
    return out;
  }

  close() {
    clearTimeout(this.stuckTimer);
    for (const track of Object.values(this.tracks)) track?.stop?.();
    for (const tr of this.senders.values()) tr.sender.track?.stop();
    this.sendPc?.close();
    this.recvPc?.close();
    this.sendPc = this.recvPc = null;
    this.tracks = {};
    this.senders.clear();
    this.consumers = new Map();
    this.closed = true;
  }
}

/** good / fair / poor from round-trip time (ms), loss (%) and jitter (ms); ITU-T G.114 bands. */
export function qualityLevel(rtt, lossPct, jitter = 0) {
  if (rtt === null || rtt === undefined) rtt = 0; // judged by loss and jitter alone
  if (rtt > 400 || lossPct > 8 || jitter > 100) return "poor";
  if (rtt > 150 || lossPct > 2 || jitter > 40) return "fair";
  return "good";
}
