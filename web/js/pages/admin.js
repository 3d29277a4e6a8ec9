// 管理: schools, classrooms, accounts, lessons (timetable) and join links with QR codes.
// The server enforces every rule; this page only lists, creates, ends, revokes.
import { api, logout, me } from "../api.js";
import { qrSvg } from "../qr.js";
import { rubricsView } from "./admin_rubrics.js";
import { terminalsView } from "./admin_terminals.js";
import { timetableView } from "./admin_timetable.js";
import { apply, banner, catchAll, fmtDateTime, h, statePill, t, toast, topbar, errorBanner } from "../ui.js";

catchAll();
const app = document.getElementById("app");
const TABS = ["counties", "schools", "classrooms", "accounts", "timetable", "lessons", "links", "rubrics"];
const SCHOOL_KINDS = ["central", "teaching_point", "primary", "middle", "nine_year"];
const cache = { counties: [], schools: [], classrooms: [], accounts: [], lessons: [] };
let account = null;
let current = "schools";

function table(columns, rows, actions) {
  return h("table", {},
    h("thead", {}, h("tr", {}, ...columns.map((c) => h("th", {}, c[0])), actions ? h("th") : "")),
    h("tbody", {}, ...rows.map((row) => h("tr", { dataset: { id: row.id } },
      ...columns.map((c) => h("td", {}, c[1](row))), actions ? h("td", {}, actions(row)) : ""))));
}

function field(key, input) {
  input.id = `f-${key}`;
  input.name = key;
  return h("div", {}, h("label", { for: input.id }, t(`admin.${key}`)), input);
}
const input = (attrs = {}) => h("input", attrs);
function select(options, attrs = {}) {
  return h("select", attrs, ...options.map(([value, label]) => h("option", { value }, label)));
}
const kindOptions = (kinds) => kinds.map((k) => [k, t(`admin.kind.${k}`)]);
const schoolName = (id) => cache.schools.find((s) => s.id === id)?.name ?? "";
const countyName = (id) => (id ? cache.counties.find((c) => c.id === id)?.name ?? "" : t("admin.scope_district"));
// An account's scope as shown: its school, else its county, else the district (docs/api.md "Scopes").
const scopeLabel = (a) => (a.school_id ? schoolName(a.school_id) : countyName(a.county_id));
const roomLabel = (c) => `${schoolName(c.school_id)} ${c.name}`;

async function guarded(fn) {
  try {
    banner("");
    await fn();
  } catch (err) {
    errorBanner(err);
  }
}

function formOf(fields, onsubmit) {
  const form = h("form", { class: "panel" }, h("div", { class: "row" }, ...fields),
    h("div", { class: "actions" }, h("button", { class: "primary", type: "submit" }, t("common.create"))));
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    guarded(async () => {
      await onsubmit(Object.fromEntries(new FormData(form)), form);
      form.reset();
      toast(t("admin.created"));
      await show(current);
    });
  });
  return form;
}

const remove = (path) => () => guarded(async () => {
  if (!confirm(t("admin.confirm"))) return;
  await api(path, { method: "DELETE" });
  await show(current);
});

const rename = (path, was) => () => guarded(async () => {
  const name = prompt(t("admin.rename_to"), was);
  if (!name || name.trim() === was) return;
  await api(path, { method: "PATCH", body: { name: name.trim() } });
  toast(t("admin.saved"));
  await show(current);
});

const views = {
  rubrics: () => rubricsView(() => show("rubrics")),
  timetable: () => timetableView({ account, refresh: () => show("timetable") }),
  // 县（市）: district admins create, rename and delete them; others see their own.
  async counties() {
    cache.counties = await api("/api/counties");
    const district = account.role === "admin" && account.scope === "district";
    const actions = (c) => h("span", { class: "actions" },
      h("button", { type: "button", onclick: rename(`/api/counties/${c.id}`, c.name) }, t("admin.rename")),
      h("button", { type: "button", onclick: remove(`/api/counties/${c.id}`) }, t("common.delete")));
    return [
      district ? formOf([field("name", input({ required: true, maxlength: 200 })), field("code", input({ pattern: "[0-9]{0,12}", inputmode: "numeric" }))],
        (v) => api("/api/counties", { method: "POST", body: { name: v.name, code: v.code } })) : "",
      table([[t("admin.name"), (c) => c.name], [t("admin.code"), (c) => c.code || "—"], [t("admin.schools_count"), (c) => c.schools]],
        cache.counties, district ? actions : undefined),
    ];
  },
  async schools() {
    [cache.counties, cache.schools] = await Promise.all([api("/api/counties"), api("/api/schools")]);
    const counties = account.scope === "district" ? [["", t("admin.scope_district")], ...cache.counties.map((c) => [c.id, c.name])]
      : cache.counties.map((c) => [c.id, c.name]);
    return [
      formOf([field("name", input({ required: true })), field("kind", select(kindOptions(SCHOOL_KINDS))),
        field("county", select(counties))],
      (v) => api("/api/schools", { method: "POST", body: { name: v.name, kind: v.kind, county_id: v.county || null } })),
      table([[t("admin.name"), (s) => s.name], [t("admin.kind"), (s) => t(`admin.kind.${s.kind}`)], [t("admin.county"), (s) => countyName(s.county_id)]],
        cache.schools, (s) => h("button", { type: "button", onclick: remove(`/api/schools/${s.id}`) }, t("common.delete"))),
    ];
  },
  async classrooms() {
    [cache.schools, cache.classrooms] = await Promise.all([api("/api/schools"), api("/api/classrooms")]);
    return [
      formOf([field("school", select(cache.schools.map((s) => [s.id, s.name]), { required: true })), field("name", input({ required: true })),
        field("kind", select(kindOptions(["any", "lead", "receiving"])))],
      (v) => api("/api/classrooms", { method: "POST", body: { school_id: v.school, name: v.name, kind: v.kind } })),
      table([[t("admin.school"), (c) => schoolName(c.school_id)], [t("admin.name"), (c) => c.name], [t("admin.kind"), (c) => t(`admin.kind.${c.kind}`)]],
        cache.classrooms, (c) => h("span", { class: "actions", style: "margin:0" },
          account.role === "admin" ? h("button", { type: "button", class: "terminals", onclick: () => showTerminals(c) }, t("admin.terminals")) : "",
          h("button", { type: "button", onclick: remove(`/api/classrooms/${c.id}`) }, t("common.delete")))),
      h("div", { id: "terminals-box" }),
    ];
  },
  async accounts() {
    [cache.counties, cache.schools, cache.accounts] = await Promise.all([api("/api/counties"), api("/api/schools"), api("/api/accounts")]);
    // The scope of a new account: a school, a county (district admins), or the creator's own.
    const scopes = [["", t("admin.scope_mine")],
      ...(account.scope === "district" ? cache.counties.map((c) => [`county:${c.id}`, `${c.name}（${t("admin.scope_county")}）`]) : []),
      ...cache.schools.map((s) => [`school:${s.id}`, s.name])];
    const scopeBody = (v) => ({ school_id: v.scope.startsWith("school:") ? v.scope.slice(7) : null, county_id: v.scope.startsWith("county:") ? v.scope.slice(7) : null });
    return [
      formOf([field("username", input({ required: true, pattern: "[A-Za-z0-9_.\\-]{2,64}" })), field("display_name", input({ required: true })),
        field("role", select(["teacher", "inspector", "admin"].map((r) => [r, t(`role.${r}`)]))),
        field("scope", select(scopes)),
        field("password", input({ type: "password", minlength: 8, required: true, autocomplete: "new-password" }))],
      (v) => api("/api/accounts", { method: "POST", body: { username: v.username, display_name: v.display_name, role: v.role, password: v.password, ...scopeBody(v) } })),
      table([[t("admin.username"), (a) => a.username], [t("admin.display_name"), (a) => a.display_name], [t("admin.role"), (a) => t(`role.${a.role}`)],
        [t("admin.scope"), (a) => scopeLabel(a)], [t("admin.active"), (a) => (a.active ? t("common.yes") : t("common.no"))]],
      cache.accounts, (a) => (a.active && a.id !== account.id ? h("button", { type: "button", onclick: remove(`/api/accounts/${a.id}`) }, t("admin.deactivate")) : "")),
    ];
  },
  async lessons() {
    const admin = account.role === "admin";
    [cache.schools, cache.classrooms, cache.lessons, cache.accounts] = await Promise.all([
      api("/api/schools"), api("/api/classrooms"), api("/api/lessons"), admin ? api("/api/accounts") : Promise.resolve([account])]);
    const rooms = cache.classrooms.map((c) => [c.id, roomLabel(c)]);
    const teachers = cache.accounts.filter((a) => a.role === "teacher" && a.active).map((a) => [a.id, a.display_name]);
    const meta = ["stage", "subject", "grade", "textbook", "volume", "unit"].map((k) => field(k, input()));
    return [
      formOf([field("title_field", input({ required: true })), field("teacher", select(teachers)),
        field("lead_classroom", select(rooms)), field("receiver_classrooms", select(rooms, { multiple: true, size: 4 })),
        field("start", input({ type: "datetime-local", required: true })), field("end", input({ type: "datetime-local", required: true })), ...meta],
      (v, form) => api("/api/lessons", { method: "POST", body: {
        title: v.title_field, teacher_id: v.teacher || null, lead_classroom_id: v.lead_classroom,
        receiver_classroom_ids: [...form.querySelector("#f-receiver_classrooms").selectedOptions].map((o) => o.value),
        scheduled_start: new Date(v.start).toISOString(), scheduled_end: new Date(v.end).toISOString(),
        stage: v.stage, subject: v.subject, grade: v.grade, textbook_version: v.textbook, volume: v.volume, unit: v.unit,
      } })),
      table([[t("admin.state"), (l) => statePill(l.state)], [t("admin.title_field"), (l) => l.title], [t("admin.start"), (l) => fmtDateTime(l.scheduled_start)],
        [t("admin.teacher"), (l) => l.teacher], [t("admin.lead_classroom"), (l) => `${l.lead.school} ${l.lead.name}`],
        [t("lesson.receivers"), (l) => l.receivers.map((r) => `${r.school} ${r.name}`).join("、")]],
      cache.lessons, (l) => h("span", { class: "actions", style: "margin:0" },
        h("button", { type: "button", onclick: () => { linksLesson = l.id; show("links"); } }, t("admin.links")),
        l.state !== "scheduled" ? h("a", { class: "btn", href: `/lesson-report/?id=${encodeURIComponent(l.id)}` }, t("admin.report")) : "",
        l.state === "live" ? h("button", { type: "button", onclick: () => guarded(async () => { await api(`/api/lessons/${l.id}/end`, { method: "POST" }); await show(current); }) }, t("admin.end_lesson")) : "",
        l.state === "scheduled" ? h("button", { type: "button", onclick: remove(`/api/lessons/${l.id}`) }, t("common.delete")) : "")),
    ];
  },
  async links() {
    const admin = account.role === "admin";
    [cache.lessons, cache.accounts] = await Promise.all([api("/api/lessons"), admin ? api("/api/accounts") : Promise.resolve([])]);
    const lessons = cache.lessons.filter((l) => l.state !== "ended");
    const chooser = select([["", "—"], ...lessons.map((l) => [l.id, `${l.title} · ${fmtDateTime(l.scheduled_start)}`])], { id: "links-lesson" });
    chooser.value = linksLesson ?? "";
    const list = h("div", { id: "links-list" });
    const inspectors = cache.accounts.filter((a) => a.role === "inspector" && a.active);
    const inspector = select(inspectors.map((a) => [a.id, a.display_name]), { id: "patrol-inspector" });
    const load = () => guarded(async () => {
      linksLesson = chooser.value;
      list.replaceChildren();
      if (!linksLesson) return;
      const links = await api(`/api/lessons/${linksLesson}/links`);
      list.append(h("div", { class: "cards" }, ...links.filter((k) => !k.revoked_at).map(linkCard)));
    });
    chooser.addEventListener("change", load);
    const roster = h("button", { class: "primary", type: "button", onclick: () => guarded(async () => {
      if (!chooser.value) return;
      await api(`/api/lessons/${chooser.value}/links/roster`, { method: "POST", body: {} });
      await load();
    }) }, t("admin.roster_links"));
    const patrol = h("button", { type: "button", onclick: () => guarded(async () => {
      if (!chooser.value || !inspector.value) return;
      await api(`/api/lessons/${chooser.value}/links`, { method: "POST", body: { account_id: inspector.value } });
      await load();
    }) }, t("admin.patrol_link"));
    await load();
    return [
      h("div", { class: "panel" }, h("div", { class: "row", style: "display:flex; gap:.6rem; align-items:end; flex-wrap:wrap" },
        h("div", { style: "flex:2 1 280px" }, h("label", { for: "links-lesson" }, t("admin.choose_lesson")), chooser),
        roster, inspectors.length ? h("div", {}, h("label", { for: "patrol-inspector" }, t("admin.inspector")), inspector) : "", inspectors.length ? patrol : "")),
      list,
    ];
  },
};
let linksLesson = null;

/** A classroom's terminals under the classroom list (管理 → 教室 → 终端). */
async function showTerminals(classroom) {
  const box = document.getElementById("terminals-box");
  const draw = () => guarded(async () => {
    box.replaceChildren(...await terminalsView(classroom, roomLabel(classroom), draw, guarded));
    box.scrollIntoView({ block: "start" });
  });
  await draw();
}

function linkCard(link) {
  const who = link.role === "patrol" ? t("role.patrol") : `${t(`role.${link.role}`)} · ${link.classroom ?? ""}`;
  const copy = h("button", { type: "button", onclick: async () => {
    await navigator.clipboard?.writeText(link.url).catch(() => {});
    toast(t("admin.copied"));
  } }, t("admin.copy"));
  const revoke = h("button", { type: "button", onclick: () => guarded(async () => {
    if (!confirm(t("admin.confirm"))) return;
    await api(`/api/lessons/${link.lesson_id}/links/${link.id}/revoke`, { method: "POST" });
    await show("links");
  }) }, t("admin.revoke"));
  return h("div", { class: "card", dataset: { link: link.id } },
    h("b", {}, who),
    h("div", { class: "qr" }, qrSvg(link.url, 3)),
    h("div", { class: "small muted", style: "word-break: break-all" }, h("a", { href: link.url }, link.url)),
    h("div", { class: "actions" }, copy, revoke));
}

const body = h("div", { id: "admin-body" });
const tabs = h("div", { class: "tabs" }, ...TABS.map((name) =>
  h("button", { type: "button", id: `tab-${name}`, dataset: { tab: name }, onclick: () => show(name) }, t(`admin.${name}`))));

async function show(name) {
  current = name;
  for (const b of tabs.children) b.classList.toggle("active", b.dataset.tab === name);
  await guarded(async () => {
    const nodes = await views[name]();
    body.replaceChildren(...nodes);
  });
}

async function main() {
  account = await me().catch(() => null);
  topbar({ title: t("admin.title"), account, onLogout: async () => { await logout(); location.href = "/"; } });
  if (!account || !["admin", "teacher"].includes(account.role)) {
    app.replaceChildren(h("div", { class: "panel" }, h("p", {}, t("admin.need_admin")),
      h("a", { class: "btn primary", href: "/login/?next=/admin/" }, t("nav.login"))));
    return;
  }
  app.replaceChildren(h("h1", {}, t("admin.title")), tabs, body);
  apply(app);
  await show(account.role === "admin" ? "schools" : "lessons");
}

main();
