// 管理 → 课表: a term's calendar (holidays, make-up days), its week grid of 1+N slots
// (weekday × period), one slot's editor with its per-date exceptions, and the sheet's
// import and export (docs/api.md "Term timetable").
import { ApiError, api } from "../api.js";
import { banner, errorBanner, h, t, toast } from "../ui.js";
import { timetableMessage } from "./timetable_errors.js";

const WEEKDAYS = [1, 2, 3, 4, 5];
// Times offered for a new slot in an empty period row (a rural primary school's day).
const DEFAULT_TIMES = ["08:00-08:40", "08:50-09:30", "09:50-10:30", "10:40-11:20", "14:00-14:40",
  "14:50-15:30", "15:40-16:20", "16:30-17:10", "19:00-19:40", "19:50-20:30", "20:40-21:20", "21:30-22:10"];
let termId = null;
let openSlot = null;

/** The timetable's own refusal banner: conflicts and sheet cells in the page's language. */
function refused(err) {
  if (err?.code === "timetable_conflict" || err?.code?.startsWith?.("sheet_")) {
    const el = banner(timetableMessage(err), "error");
    el.scrollIntoView({ block: "nearest" });
    return;
  }
  errorBanner(err).scrollIntoView({ block: "nearest" });
}

async function attempt(fn) {
  try {
    banner("");
    await fn();
    return true;
  } catch (err) {
    refused(err);
    return false;
  }
}

const hhmm = (value) => String(value ?? "").slice(0, 5);
const roomName = (r) => `${r.school} ${r.name}`;
function labelled(id, text, control) {
  control.id = id;
  return h("div", { class: "tt-field" }, h("label", { for: id }, text), control);
}
function choice(options, value, attrs = {}) {
  const el = h("select", attrs, ...options.map(([v, label]) => h("option", { value: v }, label)));
  if (value !== undefined) el.value = value;
  return el;
}

/** The 课表 tab: `ctx` = {account, refresh}. */
export async function timetableView(ctx) {
  const district = ctx.account.role === "admin" && ctx.account.scope === "district";
  const terms = await api("/api/terms");
  if (!terms.some((x) => x.id === termId)) termId = terms.at(-1)?.id ?? null;
  const picker = choice([["", terms.length ? "—" : t("tt.no_terms")], ...terms.map((x) => [x.id, x.name])], termId ?? "", { id: "tt-term" });
  picker.addEventListener("change", () => { termId = picker.value || null; ctx.refresh(); });
  const head = h("div", { class: "panel", id: "tt-terms" },
    h("div", { class: "tt-toolbar" }, labelled("tt-term", t("tt.term"), picker), district ? newTermForm(ctx) : ""));
  const term = terms.find((x) => x.id === termId);
  if (!term) return [head];
  head.append(h("p", { class: "muted small", id: "tt-term-info" },
    t("tt.term_info", { first: term.first_day, last: term.last_day, n: term.teaching_days })));
  const [slots, classrooms, accounts] = await Promise.all([
    api(`/api/terms/${term.id}/slots`), api("/api/classrooms"), api("/api/accounts").catch(() => [])]);
  const schools = await api("/api/schools").catch(() => []);
  const dicts = {
    classrooms,
    teachers: accounts.filter((a) => a.role === "teacher" && a.active),
    roomLabel: (id) => {
      const c = classrooms.find((x) => x.id === id);
      return c ? `${schools.find((s) => s.id === c.school_id)?.name ?? ""} ${c.name}`.trim() : id;
    },
  };
  const editor = h("div", { id: "tt-editor" });
  const open = (weekday, period, slot, scroll = true) => {
    openSlot = slot?.id ?? null;
    openEditor(editor, term, slots, dicts, ctx, { weekday, period, slot, scroll });
  };
  // The slot being edited stays open across a redraw (an exception added, a save).
  const reopen = slots.find((s) => s.id === openSlot);
  if (reopen) queueMicrotask(() => open(reopen.weekday, reopen.period, reopen, false));
  return [head, calendarPanel(term, district, ctx), sheetPanel(term, ctx), weekGrid(slots, open), editor];
}

function newTermForm(ctx) {
  const name = h("input", { required: true, maxlength: 200, placeholder: t("tt.term_name_hint") });
  const first = h("input", { type: "date", required: true });
  const last = h("input", { type: "date", required: true });
  const form = h("form", { class: "tt-inline", id: "tt-new-term" },
    labelled("tt-term-name", t("tt.new_term"), name), labelled("tt-term-first", t("tt.first_day"), first),
    labelled("tt-term-last", t("tt.last_day"), last), h("button", { type: "submit", class: "primary" }, t("common.create")));
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    await attempt(async () => {
      const made = await api("/api/terms", { method: "POST", body: { name: name.value.trim(), first_day: first.value, last_day: last.value } });
      termId = made.id;
      toast(t("admin.created"));
      await ctx.refresh();
    });
  });
  return form;
}

/** Holidays and make-up days (调休) of the term; saved as the term's whole lists. */
function calendarPanel(term, district, ctx) {
  const save = (patch) => attempt(async () => {
    await api(`/api/terms/${term.id}`, { method: "PATCH", body: patch });
    toast(t("admin.saved"));
    await ctx.refresh();
  });
  const dropButton = (onclick) => (district ? h("button", { type: "button", class: "small-btn", onclick }, t("common.delete")) : "");
  const holidays = h("ul", { class: "tt-days", id: "tt-holidays" }, ...term.holidays.map((x, i) => h("li", {},
    `${x.name || t("tt.holiday")} · ${x.first_day === x.last_day ? x.first_day : `${x.first_day} ~ ${x.last_day}`} `,
    dropButton(() => save({ holidays: term.holidays.filter((_, j) => j !== i) })))));
  const makeups = h("ul", { class: "tt-days", id: "tt-makeups" }, ...term.makeup_days.map((x, i) => h("li", {},
    `${x.name || t("tt.makeup")} · ${x.day} ${t("tt.follows", { day: t(`tt.day${x.follows_weekday}`) })} `,
    dropButton(() => save({ makeup_days: term.makeup_days.filter((_, j) => j !== i) })))));
  const box = h("div", { class: "panel", id: "tt-calendar" }, h("div", { class: "grid2" },
    h("div", {}, h("h3", {}, t("tt.holidays")), term.holidays.length ? holidays : h("p", { class: "muted small" }, t("tt.none"))),
    h("div", {}, h("h3", {}, t("tt.makeups")), term.makeup_days.length ? makeups : h("p", { class: "muted small" }, t("tt.none")))));
  if (!district) return box;
  const hName = h("input", { maxlength: 200, placeholder: t("tt.holiday_name_hint") });
  const hFirst = h("input", { type: "date", required: true, min: term.first_day, max: term.last_day });
  const hLast = h("input", { type: "date", min: term.first_day, max: term.last_day });
  const addHoliday = h("form", { class: "tt-inline", id: "tt-add-holiday" }, labelled("tt-h-name", t("tt.name"), hName),
    labelled("tt-h-first", t("tt.first_day"), hFirst), labelled("tt-h-last", t("tt.last_day"), hLast),
    h("button", { type: "submit" }, t("tt.add_holiday")));
  addHoliday.addEventListener("submit", (e) => {
    e.preventDefault();
    save({ holidays: [...term.holidays, { first_day: hFirst.value, last_day: hLast.value || hFirst.value, name: hName.value.trim() }] });
  });
  const mName = h("input", { maxlength: 200, placeholder: t("tt.makeup_name_hint") });
  const mDay = h("input", { type: "date", required: true, min: term.first_day, max: term.last_day });
  const mFollows = choice(WEEKDAYS.map((d) => [d, t(`tt.day${d}`)]), 1);
  const addMakeup = h("form", { class: "tt-inline", id: "tt-add-makeup" }, labelled("tt-m-name", t("tt.name"), mName),
    labelled("tt-m-day", t("tt.makeup_day"), mDay), labelled("tt-m-follows", t("tt.follows_weekday"), mFollows),
    h("button", { type: "submit" }, t("tt.add_makeup")));
  addMakeup.addEventListener("submit", (e) => {
    e.preventDefault();
    save({ makeup_days: [...term.makeup_days, { day: mDay.value, follows_weekday: Number(mFollows.value), name: mName.value.trim() }] });
  });
  box.querySelector(".grid2").children[0].append(addHoliday);
  box.querySelector(".grid2").children[1].append(addMakeup);
  return box;
}

/** Export links and the import upload (replaces the term's timetable with the sheet). */
function sheetPanel(term, ctx) {
  const file = h("input", { type: "file", accept: ".xlsx,.csv", id: "tt-import-file" });
  // The browser's own "Choose File" text follows its UI language, not the page's: the label is the button.
  const fileName = h("span", { class: "muted small", id: "tt-import-name" }, t("tt.no_file"));
  file.addEventListener("change", () => { fileName.textContent = file.files?.[0]?.name ?? t("tt.no_file"); });
  const upload = h("button", { type: "button", class: "primary", id: "tt-import", onclick: () => attempt(async () => {
    const chosen = file.files?.[0];
    if (!chosen) { banner(t("tt.choose_file"), "warn"); return; }
    if (!confirm(t("tt.import_confirm"))) return;
    const form = new FormData();
    form.append("file", chosen);
    const response = await fetch(`/api/terms/${term.id}/timetable`, { method: "POST", body: form, credentials: "same-origin" });
    const data = await response.json().catch(() => null);
    if (!response.ok) {
      throw new ApiError(response.status, data?.error?.code ?? `http_${response.status}`, data?.error?.message ?? response.statusText);
    }
    toast(t("tt.imported", { n: data.lessons }));
    await ctx.refresh();
  }) }, t("tt.import"));
  return h("div", { class: "panel tt-toolbar", id: "tt-sheet" },
    h("a", { class: "btn", id: "tt-export-xlsx", href: `/api/terms/${term.id}/timetable.xlsx`, download: "" }, t("tt.export_xlsx")),
    h("a", { class: "btn", id: "tt-export-csv", href: `/api/terms/${term.id}/timetable.csv`, download: "" }, t("tt.export_csv")),
    h("span", { class: "tt-spacer" }),
    h("label", { for: "tt-import-file", class: "btn tt-file-label" }, t("tt.import_file")), file, fileName, upload);
}

/** The week: rows are periods, columns Monday-Friday; a cell lists its slots and adds one. */
function weekGrid(slots, open) {
  const periods = Math.max(8, ...slots.map((s) => s.period));
  const timesOf = (p) => {
    const s = slots.find((x) => x.period === p);
    return s ? `${hhmm(s.starts)}-${hhmm(s.ends)}` : DEFAULT_TIMES[p - 1];
  };
  const rows = [];
  for (let p = 1; p <= periods; p += 1) {
    rows.push(h("tr", {}, h("th", { class: "tt-period" }, t("tt.period", { n: p }), h("div", { class: "muted small" }, timesOf(p))),
      ...WEEKDAYS.map((d) => h("td", { class: "tt-cell", dataset: { weekday: d, period: p } },
        ...slots.filter((s) => s.weekday === d && s.period === p).map((s) => h("button", {
          type: "button", class: "tt-slot", dataset: { slot: s.id }, onclick: () => open(d, p, s),
        }, h("b", {}, [s.subject, s.grade].filter(Boolean).join(" ") || s.title || t("tt.lesson")),
        h("span", {}, roomName(s.lead)), h("span", {}, s.teacher),
        h("span", { class: "tt-receivers" }, s.receivers.length ? `→ ${s.receivers.map(roomName).join("、")}` : t("tt.no_receivers")))),
        h("button", { type: "button", class: "tt-add", title: t("tt.add_slot"), "aria-label": t("tt.add_slot_at", { day: t(`tt.day${d}`), n: p }), onclick: () => open(d, p, null) }, "+")))));
  }
  return h("div", { class: "panel tt-grid-wrap" }, h("table", { class: "tt-grid", id: "tt-grid" },
    h("thead", {}, h("tr", {}, h("th", {}), ...WEEKDAYS.map((d) => h("th", {}, t(`tt.day${d}`))))), h("tbody", {}, ...rows)));
}

/** The slot editor under the grid: a new slot at (weekday, period) or `slot` to change. */
function openEditor(box, term, slots, dicts, ctx, { weekday, period, slot, scroll }) {
  const samePeriod = slots.find((s) => s.period === period);
  const [dStart, dEnd] = (samePeriod ? `${hhmm(samePeriod.starts)}-${hhmm(samePeriod.ends)}` : DEFAULT_TIMES[period - 1]).split("-");
  const rooms = dicts.classrooms.map((c) => [c.id, dicts.roomLabel(c.id)]);
  const teachers = dicts.teachers.map((a) => [a.id, `${a.display_name}（${a.username}）`]);
  if (slot && !teachers.some(([id]) => id === slot.teacher_id)) teachers.unshift([slot.teacher_id, slot.teacher]);
  const f = {
    weekday: choice(WEEKDAYS.map((d) => [d, t(`tt.day${d}`)]), slot?.weekday ?? weekday),
    period: h("input", { type: "number", min: 1, max: 12, required: true, value: slot?.period ?? period }),
    starts: h("input", { type: "time", required: true, value: hhmm(slot?.starts) || dStart }),
    ends: h("input", { type: "time", required: true, value: hhmm(slot?.ends) || dEnd }),
    subject: h("input", { maxlength: 200, value: slot?.subject ?? "", placeholder: "数学" }),
    grade: h("input", { maxlength: 200, value: slot?.grade ?? "", placeholder: "三年级" }),
    title: h("input", { maxlength: 200, value: slot?.title ?? "" }),
    lead: choice(rooms, slot?.lead.id, { required: true }),
    teacher: choice(teachers, slot?.teacher_id, { required: true }),
    receivers: choice(rooms, undefined, { multiple: true, size: Math.min(6, Math.max(3, rooms.length)) }),
    recording: choice(["teacher", "always", "never"].map((k) => [k, t(`tt.rec_${k}`)]), slot?.recording_policy ?? "teacher"),
    start: choice(["click", "time"].map((k) => [k, t(`tt.start_${k}`)]), slot?.start_mode ?? "click"),
  };
  const chosen = new Set(slot?.receivers.map((r) => r.id) ?? []);
  for (const o of f.receivers.options) o.selected = chosen.has(o.value);
  const body = () => ({
    weekday: Number(f.weekday.value), period: Number(f.period.value), starts: f.starts.value, ends: f.ends.value,
    subject: f.subject.value.trim(), grade: f.grade.value.trim(), title: f.title.value.trim(),
    lead_classroom_id: f.lead.value, teacher_id: f.teacher.value,
    receiver_classroom_ids: [...f.receivers.selectedOptions].map((o) => o.value).filter((id) => id !== f.lead.value),
    recording_policy: f.recording.value, start_mode: f.start.value,
  });
  const form = h("form", { class: "panel", id: "tt-slot-form" },
    h("h2", {}, slot ? t("tt.edit_slot") : t("tt.new_slot_at", { day: t(`tt.day${weekday}`), n: period })),
    h("div", { class: "row" }, ...Object.entries(f).map(([k, el]) => labelled(`tt-f-${k}`, t(`tt.f_${k}`), el))),
    h("p", { class: "muted small" }, t("tt.receivers_hint")),
    h("div", { class: "actions" },
      h("button", { type: "submit", class: "primary", id: "tt-save" }, slot ? t("tt.save") : t("common.create")),
      slot ? h("button", { type: "button", class: "danger", id: "tt-delete", onclick: () => attempt(async () => {
        if (!confirm(t("tt.delete_confirm"))) return;
        await api(`/api/slots/${slot.id}`, { method: "DELETE" });
        openSlot = null;
        toast(t("tt.deleted"));
        await ctx.refresh();
      }) }, t("tt.delete_slot")) : "",
      h("button", { type: "button", onclick: () => { openSlot = null; box.replaceChildren(); } }, t("tt.close"))));
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    attempt(async () => {
      const saved = slot
        ? await api(`/api/slots/${slot.id}`, { method: "PATCH", body: body() })
        : await api(`/api/terms/${term.id}/slots`, { method: "POST", body: body() });
      openSlot = saved.id;
      toast(t("tt.saved_lessons", { n: saved.generated?.lessons ?? 0 }));
      await ctx.refresh();
    });
  });
  box.replaceChildren(form);
  if (slot) exceptionsPanel(box, slot, dicts, ctx);
  if (scroll) form.scrollIntoView({ block: "start" });
}

/** One slot's per-date exceptions: cancel, move to another day or time, substitute teacher. */
async function exceptionsPanel(box, slot, dicts, ctx) {
  const panel = h("div", { class: "panel", id: "tt-exceptions" }, h("h3", {}, t("tt.exceptions")));
  box.append(panel);
  let list;
  try {
    list = await api(`/api/slots/${slot.id}/exceptions`);
  } catch (err) {
    refused(err);
    return;
  }
  const teacherName = (id) => dicts.teachers.find((a) => a.id === id)?.display_name ?? "";
  const describe = (x) => ({
    cancel: t("tt.x_cancelled"),
    move: t("tt.x_moved", { day: x.new_day ?? x.day, when: x.new_starts ? `${hhmm(x.new_starts)}-${hhmm(x.new_ends)}` : "" }),
    substitute: t("tt.x_substituted", { name: teacherName(x.teacher_id) }),
  })[x.action];
  panel.append(list.length
    ? h("table", { id: "tt-exception-list" }, h("tbody", {}, ...list.map((x) => h("tr", {},
      h("td", {}, x.day), h("td", {}, describe(x)), h("td", { class: "muted" }, x.note),
      h("td", {}, h("button", { type: "button", onclick: () => attempt(async () => {
        await api(`/api/slots/${slot.id}/exceptions/${x.day}`, { method: "DELETE" });
        await ctx.refresh();
      }) }, t("tt.undo_exception")))))))
    : h("p", { class: "muted small" }, t("tt.no_exceptions")));
  const day = h("input", { type: "date", required: true });
  const action = choice(["cancel", "move", "substitute"].map((k) => [k, t(`tt.x_${k}`)]), "cancel");
  const newDay = h("input", { type: "date" });
  const newStarts = h("input", { type: "time" });
  const newEnds = h("input", { type: "time" });
  const teacher = choice([["", "—"], ...dicts.teachers.map((a) => [a.id, a.display_name])], "");
  const note = h("input", { maxlength: 200, placeholder: t("tt.note_hint") });
  const moveFields = [labelled("tt-x-new-day", t("tt.x_new_day"), newDay), labelled("tt-x-new-starts", t("tt.f_starts"), newStarts),
    labelled("tt-x-new-ends", t("tt.f_ends"), newEnds)];
  const subFields = [labelled("tt-x-teacher", t("tt.x_teacher"), teacher)];
  const sync = () => {
    for (const el of moveFields) el.hidden = action.value !== "move";
    for (const el of subFields) el.hidden = action.value !== "substitute";
  };
  action.addEventListener("change", sync);
  const form = h("form", { id: "tt-exception-form" }, h("div", { class: "row" },
    labelled("tt-x-day", t("tt.x_day", { day: t(`tt.day${slot.weekday}`) }), day), labelled("tt-x-action", t("tt.x_action"), action),
    ...moveFields, ...subFields, labelled("tt-x-note", t("tt.x_note"), note)),
  h("div", { class: "actions" }, h("button", { type: "submit" }, t("tt.add_exception"))));
  sync();
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    attempt(async () => {
      const move = action.value === "move";
      await api(`/api/slots/${slot.id}/exceptions/${day.value}`, { method: "PUT", body: {
        action: action.value, note: note.value.trim(),
        new_day: move ? newDay.value || null : null,
        new_starts: move ? newStarts.value || null : null, new_ends: move ? newEnds.value || null : null,
        teacher_id: action.value === "substitute" ? teacher.value || null : null,
      } });
      toast(t("admin.saved"));
      await ctx.refresh();
    });
  });
  panel.append(form);
}
