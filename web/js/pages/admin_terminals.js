// 管理 → 教室 → 终端: one classroom's enrolled terminals (last seen, revoke) and a one-time
// enrollment code with its QR code (docs/api.md "Classroom terminals").
import { api } from "../api.js";
import { qrSvg } from "../qr.js";
import { fmtDateTime, h, t } from "../ui.js";

/** The terminals panel of `classroom` (labelled `label`); `refresh()` redraws it. */
export async function terminalsView(classroom, label, refresh, guarded) {
  const terminals = await api(`/api/classrooms/${encodeURIComponent(classroom.id)}/terminals`);
  const codeBox = h("div", { id: "terminal-code" });
  const newCode = h("button", { class: "primary", type: "button", id: "new-terminal-code", onclick: () => guarded(async () => {
    const made = await api(`/api/classrooms/${encodeURIComponent(classroom.id)}/terminal-codes`, { method: "POST", body: {} });
    const page = made.enroll_url.split("?")[0];
    codeBox.replaceChildren(h("div", { class: "card terminal-code-card" },
      h("div", { class: "terminal-code-text", id: "terminal-code-text" }, made.code),
      h("div", { class: "qr" }, qrSvg(made.enroll_url, 4)),
      h("p", { class: "muted small" }, t("admin.code_hint", { url: page, t: fmtDateTime(made.expires_at) }))));
  }) }, t("admin.new_code"));
  const revoke = (row) => () => guarded(async () => {
    if (!confirm(t("admin.confirm"))) return;
    await api(`/api/terminals/${encodeURIComponent(row.id)}`, { method: "DELETE" });
    await refresh();
  });
  const rows = terminals.map((row) => h("tr", { dataset: { terminal: row.id, revoked: String(Boolean(row.revoked_at)) } },
    h("td", {}, row.name || t("admin.terminal_unnamed")),
    h("td", {}, fmtDateTime(row.created_at)),
    h("td", {}, row.last_seen_at ? fmtDateTime(row.last_seen_at) : t("admin.terminal_never")),
    h("td", {}, row.revoked_at ? h("span", { class: "pill ended" }, t("admin.terminal_revoked")) : h("span", { class: "pill good" }, t("admin.terminal_active"))),
    h("td", {}, row.revoked_at ? "" : h("button", { type: "button", class: "revoke-terminal", onclick: revoke(row) }, t("admin.revoke")))));
  return [
    h("div", { class: "panel", id: "terminals-panel" },
      h("h2", {}, t("admin.terminals_of", { room: label })),
      terminals.length
        ? h("table", { id: "terminals-table" },
          h("thead", {}, h("tr", {}, ...["terminal_name", "terminal_enrolled", "terminal_seen", "terminal_state"].map((k) => h("th", {}, t(`admin.${k}`))), h("th"))),
          h("tbody", {}, ...rows))
        : h("p", { class: "muted", id: "no-terminals" }, t("admin.no_terminals")),
      h("div", { class: "actions" }, newCode),
      codeBox),
  ];
}
