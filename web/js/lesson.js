// Page-side helpers of the classroom pages (lead, receiver, patrol): the stored join, video
// tiles, audio playback, the connection and quality indicators.
import { api } from "./api.js";
import { LessonClient, SignalingError } from "./client.js";
import { banner, errorBanner, h, t, toast } from "./ui.js";
import { terminalJoin } from "./terminal_link.js";

const JOIN_KEY = "tongke.join";

/** Keeps what /api/join/{code} answered so the classroom page can (re)join. */
export function storeJoin(code, join, extra = {}) {
  sessionStorage.setItem(JOIN_KEY, JSON.stringify({ code, join, at: Date.now(), ...extra }));
}

export function loadJoin() {
  try {
    return JSON.parse(sessionStorage.getItem(JOIN_KEY) ?? "null");
  } catch {
    return null;
  }
}

/** Exchanges a join code for a token (POST /api/join/{code}). */
export async function exchange(code) {
  const join = await api(`/api/join/${encodeURIComponent(code)}`, { method: "POST" });
  storeJoin(code, join);
  return join;
}

/** getJoin for LessonClient from the stored join: a fresh token from the code when old. */
export function storedJoinSource() {
  return async (fresh) => {
    const saved = loadJoin();
    if (!saved?.join) throw new SignalingError("no_token", t("err.no_token"));
    const age = (Date.now() - saved.at) / 1000;
    if ((fresh || age > saved.join.expires_in - 30) && saved.code) return exchange(saved.code);
    if ((fresh || age > saved.join.expires_in - 30) && saved.terminal) {
      // A classroom terminal has no link: its credential mints the token.
      const join = await terminalJoin(saved.join.lesson.id);
      storeJoin(null, join, { terminal: true, skewMs: saved.skewMs ?? 0, timezone: saved.timezone });
      return join;
    }
    return saved.join;
  };
}

/** A LessonClient whose state is shown in the top bar and in a banner while reconnecting. */
export function connectedClient(getJoin, { label = "", slot } = {}) {
  const client = new LessonClient({ getJoin, label });
  const pill = h("span", { class: "pill", id: "conn-state" }, t("conn.connecting"));
  slot?.append(pill);
  let wasJoined = false;
  client.on("state", (state, { attempt, moved }) => {
    pill.dataset.state = state;
    if (state === "joined") {
      pill.className = "pill good";
      pill.textContent = t("conn.joined");
      banner("", "info", "conn-banner");
      if (wasJoined) toast(t("conn.reconnected"));
      wasJoined = true;
    } else if (state === "reconnecting") {
      pill.className = "pill poor";
      const text = t(moved ? "conn.moved" : "conn.reconnecting", { n: attempt });
      pill.textContent = text;
      banner(wasJoined ? text : t("err.unreachable"), "warn", "conn-banner");
    } else if (state === "closed") {
      pill.className = "pill";
      pill.textContent = t("conn.closed");
    }
  });
  client.on("fatal", (err) => {
    banner("", "info", "conn-banner");
    pill.className = "pill";
    if (err.code === "lesson_ended") pill.textContent = t("state.ended");
    // The page shows the ended and replaced screens itself: one message, not two.
    if (!SCREENS.has(err.code)) errorBanner(err, "conn-banner");
  });
  // `replaced` and `lesson_ended` arrive as an error before the close that makes them fatal.
  client.on("error", (msg) => SCREENS.has(msg.code) || errorBanner(msg));
  return client;
}

/**
 * Talkback: while an inspector talks to this classroom, a banner names them ("巡课员 李XX
 * 正在讲话"); its sound plays like every other audio consumer. Gone when the talk stops, the
 * connection is new (a resumed one is told again) or the lesson ends.
 */
export function talkBanner(client) {
  const id = "talk-banner";
  const clear = () => banner("", "info", id);
  client.on("talk_started", (m) => {
    banner(t("talk.banner", { name: m.name }), "warn", id).dataset.talk = m.talk_id;
  });
  client.on("talk_stopped", clear);
  client.on("joined", clear);
  client.on("fatal", clear);
}

// Fatal codes each classroom page answers with a screen of its own (js/lifecycle.js).
const SCREENS = new Set(["lesson_ended", "replaced"]);

/**
 * Keeps a roster (Map peer_id -> participant, read through `roster()`: `joined` replaces it)
 * in step with the lesson's participant events, calling `changed()` after each.
 */
export function followParticipants(client, roster, changed) {
  const upsert = (m) => { roster().set(m.participant.peer_id, m.participant); changed(); };
  for (const type of ["participant_joined", "participant_updated", "participant_lost"]) {
    client.on(type, upsert);
  }
  client.on("participant_left", (m) => { roster().delete(m.peer_id); changed(); });
}

/** A 16:9 video tile with a label row. setTrack(track|null), label(...nodes). */
export function videoTile({ muted = true, placeholder = t("media.no_video"), id } = {}) {
  const video = h("video", { autoplay: true, playsInline: true, muted: true });
  video.muted = muted;
  const hint = h("div", { class: "placeholder" }, placeholder);
  const label = h("div", { class: "label" });
  const root = h("div", { class: "video", id }, video, hint, label);
  let current = null;
  return {
    root,
    video,
    setTrack(track) {
      if (track === current) return;
      current = track;
      video.srcObject = track ? new MediaStream([track]) : null;
      hint.classList.toggle("hidden", Boolean(track));
      if (track) video.play().catch(() => {});
    },
    setPlaceholder(text) {
      hint.textContent = text;
    },
    label(...nodes) {
      label.replaceChildren(...nodes);
    },
  };
}

/**
 * Plays the audio tracks given to it; when the browser blocks autoplay, shows one button
 * "click to turn on sound".
 */
export function audioSink(container = document.body) {
  const elements = new Map();
  const unlock = h("button", { class: "primary big hidden", type: "button", id: "sound-unlock" }, t("receiver.sound"));
  unlock.addEventListener("click", () => {
    for (const el of elements.values()) el.play().catch(() => {});
    unlock.classList.add("hidden");
  });
  container.append(unlock);
  return {
    set(tracks) {
      const keep = new Set(tracks.map((tr) => tr.id));
      for (const [id, el] of elements) {
        if (!keep.has(id)) {
          el.srcObject = null;
          el.remove();
          elements.delete(id);
        }
      }
      for (const track of tracks) {
        if (elements.has(track.id)) continue;
        const el = h("audio", { autoplay: true });
        el.srcObject = new MediaStream([track]);
        document.body.append(el);
        elements.set(track.id, el);
        el.play().catch(() => unlock.classList.remove("hidden"));
      }
    },
  };
}

/** A small good/fair/poor pill with the numbers in its title. */
export function qualityPill({ hiddenUntilKnown = false } = {}) {
  const el = h("span", { class: "pill", "data-quality": "unknown" }, h("span", { class: "dot" }), t("quality.unknown"));
  el.classList.toggle("hidden", hiddenUntilKnown);
  return {
    root: el,
    set(level, detail) {
      // "down" (连接中断: nothing arrives) looks like poor; "unknown" (检测中: no fresh report).
      el.className = `pill ${level === "down" ? "poor" : level}`;
      el.dataset.quality = level;
      el.replaceChildren(h("span", { class: `dot ${level}` }), t(`quality.${level}`));
      if (detail) {
        el.title = t("quality.detail", {
          rtt: detail.rtt_ms ?? "?",
          loss: (detail.loss_pct ?? 0).toFixed(1),
          jitter: Math.round(detail.jitter_ms ?? 0),
        });
      }
    },
  };
}

/** Runs fn every ms while the page is open; errors are logged, never thrown. */
export function every(ms, fn) {
  const tick = async () => {
    try {
      await fn();
    } catch (err) {
      console.debug("periodic task failed", err);
    }
  };
  return setInterval(tick, ms);
}
