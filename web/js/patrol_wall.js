// The patrol wall's grid (巡课墙): the inspector's live lessons a page at a time, filtered by
// county, school and subject (GET /api/patrol/lessons, docs/api.md). Only the lessons of the
// shown page have tiles, so only they hold a connection; the page refreshes its list every
// REFRESH_MS while the tab is shown (new lessons appear, ended ones leave, counts update).
import { api } from "./api.js";
import { every } from "./lesson.js";
import { apply, h, t, userMessage } from "./ui.js";

const PER_PAGE = 9; // a 3 x 3 grid on a school PC's 1366 x 768 screen
const REFRESH_MS = 10000;

/**
 * wall(container, { addTile(lesson) -> tile, dropTile(tile) }): a tile has update(lesson)
 * and root. Filters and page live in the URL (?county=&school=&subject=&page=) so a reload
 * or a shared address opens the same view.
 */
export function patrolWall(container, { addTile, dropTile }) {
  const params = new URLSearchParams(location.search);
  const chosen = {
    county_id: params.get("county") ?? "",
    school_id: params.get("school") ?? "",
    subject: params.get("subject") ?? "",
    page: Math.max(1, Number(params.get("page")) || 1),
  };
  const county = h("select", { id: "filter-county" });
  const school = h("select", { id: "filter-school" });
  const subject = h("select", { id: "filter-subject" });
  const total = h("span", { class: "muted small", id: "wall-total" });
  const prev = h("button", { type: "button", id: "wall-prev" }, t("patrol.prev"));
  const next = h("button", { type: "button", id: "wall-next" }, t("patrol.next"));
  const pageLine = h("span", { class: "small", id: "wall-page" });
  const error = h("p", { class: "banner error hidden", id: "wall-error", role: "alert" });
  const empty = h("p", { class: "muted hidden", id: "no-lessons" });
  const grid = h("div", { class: "wall", id: "wall" });
  const bar = h("div", { class: "wall-bar", id: "wall-filters" },
    h("label", {}, t("patrol.filter_county"), county),
    h("label", {}, t("patrol.filter_school"), school),
    h("label", {}, t("patrol.filter_subject"), subject),
    total,
    h("span", { class: "wall-pager" }, prev, pageLine, next));
  container.append(bar, error, empty, grid);
  apply(bar);

  const tiles = new Map(); // lesson id -> tile
  let loading = null;

  const options = (select, facets, value) => {
    const all = h("option", { value: "" }, t("patrol.filter_all"));
    const items = facets.map((f) => h("option", { value: f.id }, t("patrol.facet", { name: f.name, n: f.lessons })));
    // A choice that no live lesson holds any more stays visible, with 0.
    if (value && !facets.some((f) => f.id === value)) items.push(h("option", { value }, t("patrol.facet", { name: value, n: 0 })));
    select.replaceChildren(all, ...items);
    select.value = value;
  };

  const remember = () => {
    const q = new URLSearchParams();
    if (chosen.county_id) q.set("county", chosen.county_id);
    if (chosen.school_id) q.set("school", chosen.school_id);
    if (chosen.subject) q.set("subject", chosen.subject);
    if (chosen.page > 1) q.set("page", String(chosen.page));
    const search = q.toString();
    history.replaceState(null, "", `${location.pathname}${search ? `?${search}` : ""}`);
  };

  // prune: drop every tile off the list, ended cards too (the inspector changed the view);
  // otherwise an ended lesson's card stays until then, showing its replay link.
  async function load(prune = false) {
    const q = new URLSearchParams({ page: String(chosen.page), per_page: String(PER_PAGE) });
    for (const key of ["county_id", "school_id", "subject"]) if (chosen[key]) q.set(key, chosen[key]);
    let body;
    try {
      body = await api(`/api/patrol/lessons?${q}`);
      error.classList.add("hidden");
    } catch (err) {
      error.textContent = userMessage(err);
      error.classList.remove("hidden");
      return;
    }
    if (body.lessons.length === 0 && body.total > 0 && chosen.page > 1) {
      chosen.page = body.pages; // the page emptied (lessons ended): the last one instead
      remember();
      return load(prune);
    }
    options(county, body.counties, chosen.county_id);
    // Schools of the chosen county only, when one is chosen.
    options(school, body.schools.filter((s) => !chosen.county_id || s.county_id === chosen.county_id), chosen.school_id);
    options(subject, body.subjects, chosen.subject);
    total.textContent = t("patrol.total", { n: body.total });
    pageLine.textContent = t("patrol.page", { page: body.page, pages: body.pages });
    prev.disabled = body.page <= 1;
    next.disabled = body.page >= body.pages;
    const filtered = chosen.county_id || chosen.school_id || chosen.subject;
    empty.textContent = t(filtered ? "patrol.none_filtered" : "patrol.none");
    empty.classList.toggle("hidden", body.lessons.length > 0);
    // Tiles of this page, in the list's order; the others leave (and disconnect).
    const ids = new Set(body.lessons.map((l) => l.id));
    for (const [id, tile] of tiles) {
      if (!ids.has(id) && (prune || !tile.keep?.())) {
        tiles.delete(id);
        dropTile(tile);
      }
    }
    for (const lesson of body.lessons) {
      let tile = tiles.get(lesson.id);
      if (!tile) tiles.set(lesson.id, tile = addTile(lesson));
      tile.update(lesson);
      grid.append(tile.root); // appending again moves it into the list's order
    }
  }

  const refresh = (prune = false) => {
    if (prune) return load(true);
    loading ??= load().finally(() => { loading = null; });
    return loading;
  };
  const change = (key, select) => select.addEventListener("change", () => {
    chosen[key] = select.value;
    if (key === "county_id") chosen.school_id = "";
    chosen.page = 1;
    remember();
    refresh(true);
  });
  change("county_id", county);
  change("school_id", school);
  change("subject", subject);
  prev.addEventListener("click", () => { chosen.page = Math.max(1, chosen.page - 1); remember(); refresh(true); });
  next.addEventListener("click", () => { chosen.page += 1; remember(); refresh(true); });
  every(REFRESH_MS, () => (document.hidden ? null : refresh()));
  document.addEventListener("visibilitychange", () => { if (!document.hidden) refresh(); });
  return { grid, refresh, tiles };
}
