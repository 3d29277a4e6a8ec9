// Late and missing receiving classrooms, told to the lead and patrol during the lesson
// (attendance_flags, docs/protocol.md): one warning line under the top bar.
import { banner, t } from "./ui.js";

const ID = "attendance-banner";

export function flagsText(classrooms) {
  const missing = classrooms.filter((c) => c.status === "missing").map((c) => c.name);
  const late = classrooms.filter((c) => c.status === "late")
    .map((c) => t("flags.late_one", { name: c.name, m: Math.max(1, Math.round((c.late_s ?? 0) / 60)) }));
  const parts = [];
  if (missing.length) parts.push(t("flags.missing", { names: missing.join("、") }));
  if (late.length) parts.push(t("flags.late", { names: late.join("、") }));
  return parts.join("；");
}

export function attendanceBanner(client) {
  client.on("attendance_flags", (m) => {
    const el = banner(flagsText(m.classrooms ?? []), "warn", ID);
    el.dataset.missing = String((m.classrooms ?? []).filter((c) => c.status === "missing").length);
  });
  client.on("fatal", () => banner("", "info", ID));
}
