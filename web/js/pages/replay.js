// Replay (课例回放): the rendition with evaluation markers, the per-track files side by side
// in sync, notes and rubric scores, and the exemplary workflow.
import { api, logout, me } from "../api.js";
import { apply, banner, catchAll, fmtDateTime, fmtOffset, h, t, toast, topbar, errorBanner, noticePanel, userMessage } from "../ui.js";
import { scoreFields, scoresText } from "../rubric.js";

catchAll();
const app = document.getElementById("app");
const id = new URLSearchParams(location.search).get("id") ?? "";
let account = null;
let rec = null;
let master = null; // the element whose currentTime is lesson time
const trackEls = []; // [{el, offset}]

/** Lesson time now: the rendition's time (rendition time == lesson time). */
function now() {
  return master ? master.currentTime : 0;
}

function seek(seconds) {
  if (!master) return;
  master.currentTime = Math.max(0, Math.min(seconds, rec.duration_s));
  syncTracks(true);
}

/** Keep every track at lesson time minus its start offset; nudge only when it drifts. */
function syncTracks(force = false) {
  const at = now();
  for (const { el, offset } of trackEls) {
    const want = at - offset;
    if (want < 0 || (el.duration && want > el.duration)) {
      if (!el.paused) el.pause();
      continue;
    }
    if (force || Math.abs(el.currentTime - want) > 0.3) el.currentTime = want;
    if (master.paused !== el.paused) (master.paused ? el.pause() : el.play()).catch?.(() => {});
  }
}

function markers() {
  const bar = h("div", { class: "timeline", id: "timeline", title: t("replay.timeline") });
  bar.append(h("div", { class: "played", id: "played" }));
  const duration = Math.max(rec.duration_s, 1);
  const add = (note, live) => {
    const left = `${Math.min(100, Math.max(0, (note.t_s / duration) * 100))}%`;
    bar.append(h("button", {
      type: "button",
      class: live ? "marker live" : "marker",
      style: `left:${left}`,
      title: `${fmtOffset(note.t_s)} ${note.author}：${note.text}`,
      dataset: { t: note.t_s },
      onclick: (e) => {
        e.stopPropagation();
        seek(note.t_s);
      },
    }));
  };
  rec.evaluations.forEach((n) => add(n, false));
  rec.live_notes.filter((n) => n.in_recording).forEach((n) => add(n, true));
  // Talkback (巡课讲话): a band from its start for its duration.
  for (const talk of (rec.talks ?? []).filter((x) => x.in_recording)) {
    const left = Math.min(100, Math.max(0, (talk.t_s / duration) * 100));
    const width = Math.max(0.6, ((talk.duration_s ?? 0) / duration) * 100);
    bar.append(h("button", {
      type: "button",
      class: "marker talk",
      style: `left:${left}%; width:${Math.min(width, 100 - left)}%`,
      title: talkText(talk),
      dataset: { t: talk.t_s, talk: talk.id },
      onclick: (e) => {
        e.stopPropagation();
        seek(talk.t_s);
      },
    }));
  }
  bar.addEventListener("click", (e) => {
    const box = bar.getBoundingClientRect();
    seek(((e.clientX - box.left) / box.width) * rec.duration_s);
  });
  return bar;
}

function talkText(talk) {
  const args = { name: talk.inspector, room: talk.classroom_name, s: Math.max(1, Math.round(talk.duration_s ?? 0)) };
  return `${fmtOffset(talk.t_s)} ${t(talk.duration_s === null ? "replay.talk_open" : "replay.talk", args)}`;
}

function notesList() {
  const items = [
    ...rec.evaluations.map((n) => ({ ...n, live: false })),
    ...rec.live_notes.filter((n) => n.in_recording).map((n) => ({ ...n, live: true })),
    ...(rec.talks ?? []).filter((x) => x.in_recording).map((x) => ({ ...x, talk: true })),
  ].sort((a, b) => a.t_s - b.t_s);
  if (!items.length) return h("p", { class: "muted" }, t("replay.no_notes"));
  return h("ol", { class: "checklist notes" }, items.map((n) => n.talk ? h(
    "li",
    { class: "talk", onclick: () => seek(n.t_s), dataset: { t: n.t_s, talk: n.id } },
    h("span", { class: "pill" }, t("replay.talk_tag")), " ", talkText(n),
  ) : h(
    "li",
    { onclick: () => seek(n.t_s), dataset: { t: n.t_s } },
    h("b", {}, fmtOffset(n.t_s)), " ",
    n.live ? h("span", { class: "pill live" }, t("replay.live_note")) : "",
    ` ${n.author}：${n.text}`,
    Object.keys(n.scores ?? {}).length
      ? h("div", { class: "small muted note-scores" }, scoresText(rec.rubric_versions?.[n.rubric_version_id] ?? null, n.scores))
      : "",
  )));
}

function evaluationForm() {
  if (!account || !["teacher", "inspector"].includes(account.role)) return "";
  // The rubric in use, the same as on the patrol page and in the review (js/rubric.js).
  const fields = scoreFields(rec.rubric_version, "s-");
  const form = h(
    "form",
    {
      id: "evaluation-form",
      novalidate: true,
      onsubmit: async (e) => {
        e.preventDefault();
        const read = fields.read();
        if (!read) return;
        try {
          await api(`/api/library/${id}/evaluations`, {
            method: "POST",
            body: { t_s: Math.round(now() * 10) / 10, text: form.elements.text.value, ...read },
          });
          toast(t("replay.saved"));
          await reload();
        } catch (err) {
          errorBanner(err);
        }
      },
    },
    h("textarea", { name: "text", rows: 3, placeholder: t("replay.note_placeholder") }),
    fields.root,
    h("button", { class: "primary", type: "submit" }, t("replay.add_note")),
  );
  return h("div", { class: "panel" }, h("h3", {}, t("replay.evaluate")), form);
}

function workflow() {
  const box = h("div", { class: "panel", id: "workflow" }, h("h3", {}, t("replay.workflow")));
  box.append(h("p", {}, t(`exemplary.${rec.exemplary_state}`)));
  box.append(h("ol", { class: "small" }, rec.steps.map((s) =>
    h("li", {}, `${fmtDateTime(s.at)} ${s.actor} ${t(`step.${s.action}`)} ${s.comment}`))));
  const act = async (path, body) => {
    try {
      await api(`/api/library/${id}/${path}`, { method: "POST", body });
      await reload();
    } catch (err) {
      errorBanner(err);
    }
  };
  const canNominate = account && (account.role === "admin" || account.id === rec.teacher_id);
  if (canNominate && ["none", "returned"].includes(rec.exemplary_state)) {
    box.append(h("button", { type: "button", id: "nominate", onclick: () => act("nominate", {}) }, t("replay.nominate")));
  }
  if (account && ["admin", "inspector"].includes(account.role) && rec.exemplary_state === "nominated") {
    const fields = scoreFields(rec.rubric_version, "r-");
    const form = h("form", { id: "review-form", novalidate: true, onsubmit: (e) => {
      e.preventDefault();
      const read = fields.read({ complete: true }); // a review scores every item
      if (!read) return;
      act("review", { decision: form.elements.decision.value, ...read, comment: form.elements.comment.value });
    } },
    fields.root,
    h("textarea", { name: "comment", rows: 2, placeholder: t("replay.comment") }),
    h("select", { name: "decision" },
      h("option", { value: "exemplary" }, t("exemplary.exemplary")),
      h("option", { value: "returned" }, t("exemplary.returned"))),
    h("button", { class: "primary", type: "submit" }, t("replay.review")));
    box.append(form);
  }
  return box;
}

function trackGrid() {
  trackEls.length = 0;
  const grid = h("div", { class: "tracks", id: "tracks" });
  for (const track of rec.tracks) {
    const el = h(track.kind === "video" ? "video" : "audio", {
      src: track.url, preload: "metadata", muted: track.kind === "video", playsinline: true, controls: track.kind === "audio",
    });
    trackEls.push({ el, offset: track.offset_s ?? 0 });
    grid.append(h("figure", {}, el, h("figcaption", {}, `${t(`source.${track.source}`)} · ${track.classroom.slice(0, 6)} · +${fmtOffset(track.offset_s)}`)));
  }
  return h("details", { class: "panel" }, h("summary", {}, t("replay.tracks")), grid);
}

function render() {
  const meta = [rec.stage, rec.subject, rec.grade, rec.textbook_version, rec.volume, rec.unit].filter(Boolean).join(" · ");
  let player;
  if (rec.video_url) {
    player = h("video", { class: "main", id: "rendition", src: rec.video_url, poster: rec.poster_url ?? "", controls: true, preload: "metadata" });
  } else {
    const pct = Math.round(rec.rendition_progress * 100);
    player = h("p", { class: "banner info", id: "rendition-state" }, t(`rendition.${rec.rendition_state}`, { pct }));
  }
  const left = h("div", {}, h("h2", {}, rec.title), h("p", { class: "muted" }, [meta, rec.teacher, rec.school, fmtDateTime(rec.started_at)].filter(Boolean).join(" · ")),
    rec.interrupted ? h("p", { class: "banner warn" }, t("replay.interrupted")) : "",
    player, markers(), trackGrid());
  const right = h("div", {}, h("div", { class: "panel" }, h("h3", {}, t("replay.notes")), notesList()), evaluationForm(), workflow());
  app.replaceChildren(h("div", { class: "replay" }, left, right));
  apply(app);
  master = rec.video_url ? document.getElementById("rendition") : trackEls.find((x) => x.el.tagName === "VIDEO")?.el ?? null;
  if (master) {
    const others = trackEls.filter((x) => x.el !== master);
    trackEls.splice(0, trackEls.length, ...others);
    for (const name of ["play", "pause", "seeked"]) master.addEventListener(name, () => syncTracks(name === "seeked"));
    master.addEventListener("timeupdate", () => {
      document.getElementById("played").style.width = `${(master.currentTime / Math.max(rec.duration_s, 1)) * 100}%`;
      syncTracks();
    });
  }
  if (!rec.video_url && ["queued", "running"].includes(rec.rendition_state)) setTimeout(reload, 3000);
}

async function reload() {
  const at = now();
  rec = await api(`/api/library/${encodeURIComponent(id)}`);
  render();
  if (master && at) master.addEventListener("loadedmetadata", () => seek(at), { once: true });
}

async function main() {
  account = await me().catch(() => null);
  topbar({ title: t("replay.title"), account, onLogout: async () => { await logout(); location.href = "/"; } });
  if (!account) {
    app.replaceChildren(h("p", {}, t("library.sign_in"), " ", h("a", { href: `/login/?next=${encodeURIComponent(location.pathname + location.search)}` }, t("nav.login"))));
    return;
  }
  if (!id) return notFound({ code: "recording_not_found" });
  try {
    await reload();
    const start = Number(new URLSearchParams(location.search).get("t"));
    if (start && master) master.addEventListener("loadedmetadata", () => seek(start), { once: true });
  } catch (err) {
    // The loading line goes: the page ends in an explanation, never a permanent 正在加载.
    if (!rec) return notFound(err);
    errorBanner(err);
  }
}

function notFound(err) {
  app.replaceChildren(noticePanel({
    id: "replay-error",
    title: t("replay.unavailable"),
    lines: [userMessage(err), t("replay.unavailable_hint")],
    actions: [h("a", { class: "btn primary", href: "/library/" }, t("nav.library")), h("a", { class: "btn", href: "/" }, t("common.back_home"))],
  }));
  if (err?.code !== "recording_not_found") errorBanner(err);
}

main();
