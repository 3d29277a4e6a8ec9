// The timetable's refusals in the page's language. The server's messages name slots, rows
// and columns in the forms docs/api.md "Term timetable" documents ("Mon period 2 (08:55-09:40,
// 数学 三年级)", "Row 5, column H (主讲教室): ..."); this reads those forms back so a
// conflict says which two lessons clash and a bad sheet says which cell to fix.
import { userMessage } from "../ui.js";
import { t } from "../i18n.js";

const DAYS = { Mon: 1, Tue: 2, Wed: 3, Thu: 4, Fri: 5, Sat: 6, Sun: 7 };
const SLOT = /(Mon|Tue|Wed|Thu|Fri|Sat|Sun) period (\d+) \((\d\d:\d\d-\d\d:\d\d)(?:, ([^)]*))?\)/g;

/** "Mon period 2 (08:55-09:40, 数学 三年级)" -> "周一第 2 节（08:55-09:40 数学 三年级）". */
function slotNames(text) {
  return [...text.matchAll(SLOT)].map(([, day, period, when, label]) =>
    t("tt.slot_named", { day: t(`tt.day${DAYS[day]}`), period, when: label ? `${when} ${label}` : when }));
}

function conflict(message) {
  const slots = slotNames(message);
  if (slots.length < 2) return null;
  const rows = message.match(/^Rows (\d+) and (\d+):/);
  if (rows) return t("tt.err_conflict_rows", { a: rows[1], b: rows[2], first: slots[0], second: slots[1] });
  const need = message.match(/both need (classroom|teacher) (.+) on (\d{4}-\d\d-\d\d)\.$/);
  if (!need) return t("tt.err_conflict", { first: slots[0], second: slots[1], what: "", day: "" });
  return t("tt.err_conflict", { first: slots[0], second: slots[1], day: need[3],
    what: t(need[1] === "classroom" ? "tt.need_classroom" : "tt.need_teacher", { name: need[2] }) });
}

// What is wrong in one cell ("08:6 is not a time like 08:00" -> "“08:6”不是 08:00 这样的时间").
const CELL_PROBLEMS = [
  [/^(.*) is not a time like 08:00$/, "tt.cell_time"],
  [/^(.*) is not one of (.*)$/, "tt.cell_choice"],
  [/^(.*) is not 周一 \.\.\. 周五$/, "tt.cell_weekday"],
  [/^(.*) is not a period 1-12$/, "tt.cell_period"],
  [/^(.*) is not written 学校\/教室$/, "tt.cell_room_form"],
  [/^no classroom (.*)$/, "tt.cell_no_room"],
  [/^no active teacher (.*)$/, "tt.cell_no_teacher"],
  [/^twice in the lesson: (.*)$/, "tt.cell_twice"],
  [/^the period must end after it starts$/, "tt.cell_order"],
  [/^the lead teacher's sign-in name is missing$/, "tt.cell_no_username"],
];
const empty = (text) => (text === "(empty)" ? t("tt.empty") : text);

function sheet(code, message) {
  const header = message.match(/^Row 1, column ([A-Z]+): expected (.+?), found (.+?)\. Columns: (.*)\.$/);
  if (header) {
    return t("tt.err_columns", { col: header[1], expected: header[2], found: empty(header[3]), all: header[4] });
  }
  const extra = message.match(/^Row 1, column ([A-Z]+): unexpected column (.*)\.$/);
  if (extra) return t("tt.err_extra_column", { col: extra[1], found: extra[2] });
  const cell = message.match(/^Row (\d+), column ([A-Z]+) \(([^)]*)\): (.*)$/);
  if (cell) {
    const [, row, col, header, problem] = cell;
    for (const [pattern, key] of CELL_PROBLEMS) {
      const found = problem.match(pattern);
      if (found) {
        const what = t(key, { text: empty(found[1] ?? ""), choices: found[2] ?? "" });
        return t("tt.err_cell", { row, col, header, what });
      }
    }
    return t("tt.err_cell", { row, col, header, what: t("tt.cell_bad") });
  }
  if (code === "sheet_columns") return t("tt.err_sheet_empty");
  return null;
}

/** The sentence for an error of the timetable's routes (userMessage for all others). */
export function timetableMessage(err) {
  const message = err?.message ?? "";
  if (err?.code === "timetable_conflict") return conflict(message) ?? userMessage(err);
  if (err?.code === "sheet_columns" || err?.code === "sheet_value") return sheet(err.code, message) ?? userMessage(err);
  return userMessage(err);
}
