// The district's evaluation rubric (评课量表) on the pages: the same items, labels and scale
// in live notes (patrol), replay evaluations and the exemplary review. Input is checked
// here with a Chinese sentence (forms are novalidate: no browser bubble in English); the
// server checks again (docs/library.md "Rubrics").
import { api } from "./api.js";
import { h, t } from "./ui.js";

/**
 * The rubric in use (GET /api/rubrics/current); with `linkCode`, read with a patrol link by a
 * patrol not signed in (GET /api/rubrics/for-link/{code}).
 */
export function currentRubric(linkCode = null) {
  return api(linkCode ? `/api/rubrics/for-link/${encodeURIComponent(linkCode)}` : "/api/rubrics/current");
}

/** One rubric version by id (a note's own), signed in or with a patrol link. */
export function rubricVersion(versionId, linkCode = null) {
  const id = encodeURIComponent(versionId);
  return api(linkCode
    ? `/api/rubrics/for-link/${encodeURIComponent(linkCode)}?version_id=${id}`
    : `/api/rubrics/versions/${id}`);
}

/**
 * Score inputs for `rubric`, one per item, with its scale said once. read({complete}) returns
 * {scores, rubric_version_id} or null after showing what is wrong; clear() empties them.
 */
export function scoreFields(rubric, prefix) {
  const inputs = rubric.items.map((item) => h("input", {
    type: "number", inputmode: "numeric", min: 0, max: rubric.scale_max, step: 1,
    id: `${prefix}${item.key}`, name: `${prefix}${item.key}`, dataset: { key: item.key },
  }));
  const error = h("p", { class: "field-error hidden", role: "alert", id: `${prefix}error` });
  const root = h("fieldset", { class: "rubric", dataset: { rubric: rubric.version_id, scale: rubric.scale_max } },
    h("legend", { class: "small muted" }, t("rubric.scale", { name: rubric.name, max: rubric.scale_max })),
    ...rubric.items.map((item, i) => h("label", { for: inputs[i].id, title: t("rubric.weight", { w: item.weight }) }, item.label, inputs[i])),
    error);
  const fail = (input, text) => {
    error.textContent = text;
    error.classList.remove("hidden");
    input.setAttribute("aria-invalid", "true");
    input.focus();
    return null;
  };
  return {
    root,
    read({ complete = false } = {}) {
      error.classList.add("hidden");
      const scores = {};
      for (const [i, item] of rubric.items.entries()) {
        const input = inputs[i];
        input.removeAttribute("aria-invalid");
        const raw = input.value.trim();
        // A number input holds "" for text it cannot parse: badInput tells the two apart.
        if (raw === "" && !input.validity.badInput) {
          if (complete) return fail(input, t("rubric.missing", { label: item.label }));
          continue;
        }
        const value = Number(raw);
        if (input.validity.badInput || !Number.isInteger(value) || value < 0 || value > rubric.scale_max) {
          return fail(input, t("rubric.out_of_range", { label: item.label, max: rubric.scale_max }));
        }
        scores[item.key] = value;
      }
      return { scores, rubric_version_id: rubric.version_id };
    },
    clear() {
      for (const input of inputs) {
        input.value = "";
        input.removeAttribute("aria-invalid");
      }
      error.classList.add("hidden");
    },
  };
}

/** "教学目标 8 · 师生互动 9（满分 10）": scores labelled by the version they were given on. */
export function scoresText(version, scores) {
  const entries = Object.entries(scores ?? {});
  if (!entries.length) return "";
  const label = (key) => version?.items.find((i) => i.key === key)?.label ?? t("rubric.unknown_item");
  const text = entries.map(([k, v]) => `${label(k)} ${v}`).join(" · ");
  return version ? `${text}${t("rubric.out_of", { max: version.scale_max })}` : text;
}
