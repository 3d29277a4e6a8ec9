// A classroom terminal's credential (kept in localStorage, so it survives a power cut or a
// reboot) and the calls made with it (docs/api.md "Classroom terminals"). Shared by the
// terminal page and by the lead and receiver pages a terminal opens.
import { api } from "./api.js";
import { h, t } from "./ui.js";

const KEY = "tongke.terminal";

/** {credential, terminal_id, classroom} or null. */
export function loadTerminal() {
  try {
    const saved = JSON.parse(localStorage.getItem(KEY) ?? "null");
    return saved?.credential ? saved : null;
  } catch {
    return null;
  }
}

export function saveTerminal(enrolled) {
  localStorage.setItem(KEY, JSON.stringify({
    credential: enrolled.credential, terminal_id: enrolled.terminal.id, classroom: enrolled.classroom,
  }));
}

export function forgetTerminal() {
  localStorage.removeItem(KEY);
}

/** api() with the terminal's credential as the Bearer token. */
export function terminalApi(path, options = {}) {
  const saved = loadTerminal();
  return api(path, { ...options, headers: { Authorization: `Bearer ${saved?.credential ?? ""}` } });
}

/** A fresh join token for one of the classroom's lessons (lead or receiver). */
export function terminalJoin(lessonId) {
  return terminalApi(`/api/terminal/lessons/${encodeURIComponent(lessonId)}/join`, { method: "POST" });
}

// The refusals that mean "this device must be enrolled again".
export const NOT_ENROLLED = new Set(["terminal_revoked", "terminal_unknown", "terminal_unauthorized"]);

/** The ended screen's facts come from a join link's outcome; a terminal has no link, and
 * the lesson_ended message already carries how long the lesson ran. */
export function terminalOutcome() {
  return Promise.reject(new Error("a classroom terminal has no join link to ask"));
}

// After a lesson a terminal shows the ended screen this long, then its schedule again.
export const BACK_AFTER_S = 15;

/** On a terminal's ended screen: a countdown back to the schedule, and a button for it now. */
export function backToSchedule(app) {
  let left = BACK_AFTER_S;
  const line = h("p", { class: "big-line", id: "back-to-schedule-note" }, t("terminal.back_in", { s: left }));
  const button = h("button", { class: "primary big", type: "button", id: "back-to-schedule", onclick: () => location.replace("/terminal/") },
    t("terminal.back_now"));
  app.append(h("div", { class: "panel notice terminal-back" }, line, h("div", { class: "actions" }, button)));
  button.focus();
  const timer = setInterval(() => {
    left -= 1;
    line.textContent = t("terminal.back_in", { s: left });
    if (left <= 0) {
      clearInterval(timer);
      location.replace("/terminal/");
    }
  }, 1000);
}
