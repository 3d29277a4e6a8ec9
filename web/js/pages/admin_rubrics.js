// 管理 → 评课量表: the district's rubrics, the one in use, and a form to create or edit one
// (items, weights, one scale). Each save of an edit is a new version (docs/library.md).
import { api } from "../api.js";
import { h, t, toast, errorBanner } from "../ui.js";

/** The tab's nodes; `refresh()` shows the tab again after a change. */
export async function rubricsView(refresh) {
  const rubrics = await api("/api/rubrics");
  const editor = h("div", { id: "rubric-editor" });
  const open = (rubric) => {
    editor.replaceChildren(rubricForm(rubric, refresh, () => editor.replaceChildren()));
    editor.querySelector("input")?.focus();
  };
  const rows = rubrics.map((r) => h("tr", { dataset: { rubric: r.rubric_id } },
    h("td", {}, h("b", {}, r.name), " ", h("span", { class: "muted small" }, t("rubric.version", { n: r.version }))),
    h("td", {}, t("rubric.range", { max: r.scale_max })),
    h("td", {}, r.items.map((i) => `${i.label}（${t("rubric.weight", { w: i.weight })}）`).join("、")),
    h("td", {}, r.in_use
      ? h("span", { class: "pill good" }, t("rubric.in_use"))
      : h("button", { type: "button", class: "use", onclick: () => use(r, refresh) }, t("rubric.use")),
    " ", h("button", { type: "button", class: "edit", onclick: () => open(r) }, t("rubric.edit")))));
  return [
    h("p", { class: "banner info" }, t("rubric.hint")),
    h("table", { id: "rubrics" },
      h("thead", {}, h("tr", {}, h("th", {}, t("rubric.name")), h("th", {}, t("rubric.scale_max")), h("th", {}, t("rubric.items")), h("th"))),
      h("tbody", {}, ...rows)),
    h("div", { class: "actions" }, h("button", { type: "button", id: "rubric-new", onclick: () => open(null) }, t("rubric.new"))),
    editor,
  ];
}

async function use(rubric, refresh) {
  try {
    await api(`/api/rubrics/${rubric.rubric_id}/use`, { method: "POST" });
    toast(t("rubric.used"));
    await refresh();
  } catch (err) {
    errorBanner(err);
  }
}

/** Create (rubric null) or edit: name, top score, item rows (label, weight; keys kept). */
function rubricForm(rubric, refresh, close) {
  const name = h("input", { id: "rubric-name", value: rubric?.name ?? "", maxlength: 200 });
  const scale = h("input", { id: "rubric-scale", type: "number", min: 1, max: 100, step: 1, value: rubric?.scale_max ?? 10 });
  const items = h("div", { class: "stack", id: "rubric-items" });
  const error = h("p", { class: "field-error hidden", role: "alert", id: "rubric-error" });
  const addRow = (item = {}) => {
    const label = h("input", { class: "item-label", value: item.label ?? "", maxlength: 50, placeholder: t("rubric.item_label") });
    const weight = h("input", { class: "item-weight", type: "number", min: 1, max: 100, step: 1, value: item.weight ?? 20, title: t("rubric.item_weight") });
    const row = h("div", { class: "row item", dataset: { key: item.key ?? "" } }, label,
      h("label", { class: "small muted" }, t("rubric.item_weight"), weight),
      h("button", { type: "button", onclick: () => row.remove() }, t("rubric.remove_item")));
    items.append(row);
  };
  (rubric?.items ?? [{}]).forEach(addRow);
  const fail = (input, text) => {
    error.textContent = text;
    error.classList.remove("hidden");
    input?.focus();
    return null;
  };
  const read = () => {
    error.classList.add("hidden");
    if (!name.value.trim()) return fail(name, t("rubric.need_name"));
    const max = Number(scale.value);
    if (scale.validity.badInput || !Number.isInteger(max) || max < 1 || max > 100) return fail(scale, t("rubric.bad_scale"));
    const rows = [...items.querySelectorAll(".item")];
    if (!rows.length) return fail(null, t("rubric.need_item"));
    const seen = new Set();
    const out = [];
    for (const [n, row] of rows.entries()) {
      const label = row.querySelector(".item-label");
      const weight = row.querySelector(".item-weight");
      const text = label.value.trim();
      if (!text) return fail(label, t("rubric.need_label", { n: n + 1 }));
      if (seen.has(text)) return fail(label, t("rubric.same_label", { label: text }));
      seen.add(text);
      const w = Number(weight.value);
      if (weight.validity.badInput || !Number.isInteger(w) || w < 1 || w > 100) return fail(weight, t("rubric.bad_weight", { label: text }));
      out.push({ ...(row.dataset.key ? { key: row.dataset.key } : {}), label: text, weight: w });
    }
    return { name: name.value.trim(), scale_max: max, items: out };
  };
  const form = h("form", { class: "panel", id: "rubric-form", novalidate: true },
    h("h3", {}, rubric ? `${t("rubric.edit")}：${rubric.name}` : t("rubric.new")),
    h("div", { class: "row" },
      h("div", {}, h("label", { for: "rubric-name" }, t("rubric.name")), name),
      h("div", {}, h("label", { for: "rubric-scale" }, t("rubric.scale_max")), scale)),
    h("label", {}, t("rubric.items")), items,
    h("div", { class: "actions" }, h("button", { type: "button", id: "rubric-add-item", onclick: () => addRow() }, t("rubric.add_item"))),
    error,
    h("div", { class: "actions" },
      h("button", { class: "primary", type: "submit" }, rubric ? t("rubric.save") : t("rubric.create")),
      h("button", { type: "button", onclick: close }, t("rubric.cancel"))));
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const body = read();
    if (!body) return;
    try {
      if (rubric) await api(`/api/rubrics/${rubric.rubric_id}`, { method: "PUT", body });
      else await api("/api/rubrics", { method: "POST", body });
      toast(t("admin.saved"));
      await refresh();
    } catch (err) {
      errorBanner(err);
    }
  });
  return form;
}
