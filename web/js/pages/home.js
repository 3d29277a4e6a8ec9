// Home: what is live now and scheduled today, sign-in, links by role, open a join link.
import { api, logout, me } from "../api.js";
import { exchange } from "../lesson.js";
import { apply, catchAll, fmtTime, h, statePill, t, topbar, errorBanner } from "../ui.js";

catchAll();
const app = document.getElementById("app");

function localDay() {
  const d = new Date();
  return `${d.getFullYear()}-${String(d.getMonth() + 1).padStart(2, "0")}-${String(d.getDate()).padStart(2, "0")}`;
}

/** A teacher or admin enters the lead classroom through a fresh lead link of the lesson. */
async function enterLead(lesson) {
  try {
    const link = await api(`/api/lessons/${lesson.id}/links`, {
      method: "POST",
      body: { classroom_id: lesson.lead.id },
    });
    const join = await exchange(link.code);
    location.href = join.role === "lead" ? "/lead/" : "/receiver/";
  } catch (err) {
    errorBanner(err);
  }
}

function lessonCard(lesson, account) {
  const actions = h("div", { class: "actions" });
  const role = account.role;
  if (lesson.state !== "ended" && (role === "admin" || lesson.teacher_id === account.id)) {
    actions.append(h("button", { class: "primary", type: "button", onclick: () => enterLead(lesson) }, t("home.enter_lead")));
  }
  if (lesson.state === "live" && role === "inspector") {
    actions.append(h("a", { class: "btn primary", href: `/patrol/?lesson=${encodeURIComponent(lesson.id)}` }, t("home.enter_patrol")));
  }
  return h(
    "div",
    { class: "card", dataset: { lesson: lesson.id } },
    h("div", { class: "row" }, statePill(lesson.state), " ", h("b", {}, lesson.title)),
    h("div", { class: "meta" }, `${t("lesson.time")}：${fmtTime(lesson.scheduled_start)}–${fmtTime(lesson.scheduled_end)}`),
    h("div", { class: "meta" }, `${t("lesson.teacher")}：${lesson.teacher} · ${[lesson.subject, lesson.grade].filter(Boolean).join(" ")}`),
    h("div", { class: "meta" }, `${t("lesson.lead")}：${lesson.lead.school} ${lesson.lead.name}`),
    h("div", { class: "meta" }, `${t("lesson.receivers")}：${lesson.receivers.map((r) => `${r.school} ${r.name}`).join("、") || t("common.none")}`),
    actions,
  );
}

/** 我的课表: the teacher's own lessons this week (Monday to Sunday), by day. */
function myWeek(account) {
  const box = h("div", { id: "my-week" }, h("p", { class: "muted" }, t("common.loading")));
  const monday = new Date();
  monday.setHours(0, 0, 0, 0);
  monday.setDate(monday.getDate() - ((monday.getDay() + 6) % 7));
  const sunday = new Date(monday);
  sunday.setDate(sunday.getDate() + 7);
  const query = new URLSearchParams({ teacher_id: account.id, start_from: monday.toISOString(), start_to: sunday.toISOString() });
  api(`/api/lessons?${query}`).then((lessons) => {
    if (!lessons.length) return box.replaceChildren(h("p", { class: "muted" }, t("home.no_week")));
    const day = (l) => new Date(l.scheduled_start).toLocaleDateString(undefined, { weekday: "short", month: "numeric", day: "numeric" });
    box.replaceChildren(h("table", {}, h("tbody", {}, ...lessons.map((l) => h("tr", { dataset: { lesson: l.id } },
      h("td", {}, day(l)), h("td", {}, `${fmtTime(l.scheduled_start)}–${fmtTime(l.scheduled_end)}`),
      h("td", {}, h("b", {}, l.title), " ", h("span", { class: "muted" }, [l.subject, l.grade].filter(Boolean).join(" "))),
      h("td", {}, `${l.lead.school} ${l.lead.name}`, h("div", { class: "muted small" }, l.receivers.map((r) => `${r.school} ${r.name}`).join("、"))),
      h("td", {}, statePill(l.state)))))));
  }).catch((err) => errorBanner(err));
  return h("div", { class: "panel" }, h("h2", { "data-i18n": "home.my_week" }), box);
}

function linkForm() {
  const input = h("input", { id: "join-link", "data-i18n-placeholder": "home.link_placeholder" });
  const form = h(
    "form",
    {
      class: "row",
      onsubmit: (e) => {
        e.preventDefault();
        const value = input.value.trim();
        if (!value) return;
        const m = value.match(/\/join\/([^/?#]+)/) || value.match(/[?&](?:code|link)=([^&#]+)/);
        const isPatrol = /\/patrol/.test(value);
        const code = m ? m[1] : value;
        location.href = isPatrol ? `/patrol/?link=${encodeURIComponent(code)}` : `/join/?code=${encodeURIComponent(code)}`;
      },
    },
    input,
    h("button", { class: "primary", type: "submit", "data-i18n": "home.open_link" }),
  );
  return h("div", { class: "panel" }, h("h2", { "data-i18n": "home.have_link" }), form);
}

async function main() {
  const account = await me().catch((err) => {
    errorBanner(err);
    return null;
  });
  topbar({
    title: t("app.tagline"),
    account,
    onLogout: async () => {
      await logout();
      location.reload();
    },
  });
  app.replaceChildren();
  const check = h("div", { class: "panel" }, h("h2", { "data-i18n": "nav.check" }),
    h("p", { class: "muted", "data-i18n": "home.device_check_hint" }),
    h("a", { class: "btn", href: "/check/", "data-i18n": "check.start" }));
  if (!account) {
    app.append(
      h("div", { class: "panel" }, h("h1", {}, t("app.name"), " · ", t("app.tagline")),
        h("p", { class: "muted", "data-i18n": "home.sign_in_hint" }),
        h("a", { class: "btn primary big", href: "/login/", "data-i18n": "nav.login" })),
      h("div", { class: "grid2" }, linkForm(), check),
    );
    apply(app);
    return;
  }
  const roleLinks = h("div", { class: "actions" });
  if (account.role === "admin" || account.role === "teacher") {
    roleLinks.append(h("a", { class: "btn", href: "/admin/", "data-i18n": "home.admin" }));
  }
  if (account.role === "inspector" || account.role === "admin") {
    roleLinks.append(h("a", { class: "btn primary", href: "/patrol/", "data-i18n": "home.patrol_wall" }));
    roleLinks.append(h("a", { class: "btn", href: "/reports/", id: "reports-link", "data-i18n": "nav.reports" }));
  }
  const live = h("div", { class: "cards", id: "live" }, h("p", { class: "muted" }, t("common.loading")));
  const today = h("div", { class: "cards", id: "today" }, h("p", { class: "muted" }, t("common.loading")));
  app.append(
    h("div", { class: "panel" }, h("h1", {}, t("home.welcome", { name: account.display_name, role: t(`role.${account.role}`) })), roleLinks),
    h("div", { class: "panel" }, h("h2", { "data-i18n": "home.live_now" }), live),
    h("div", { class: "panel" }, h("h2", { "data-i18n": "home.today" }), today),
    h("div", { class: "grid2" }, linkForm(), check),
  );
  if (account.role === "teacher") app.insertBefore(myWeek(account), app.children[1]);
  apply(app);
  const offset = -new Date().getTimezoneOffset();
  try {
    const [liveLessons, todayLessons] = await Promise.all([
      api("/api/lessons?state=live"),
      api(`/api/lessons?date=${localDay()}&utc_offset_minutes=${offset}`),
    ]);
    live.replaceChildren(...(liveLessons.length ? liveLessons.map((l) => lessonCard(l, account)) : [h("p", { class: "muted" }, t("home.no_live"))]));
    today.replaceChildren(...(todayLessons.length ? todayLessons.map((l) => lessonCard(l, account)) : [h("p", { class: "muted" }, t("home.no_today"))]));
  } catch (err) {
    errorBanner(err);
  }
}

main();
