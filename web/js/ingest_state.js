// A classroom's picture pulled from its 录播 host (ingest_state, docs/protocol.md "Ingest"):
// one line under the top bar of the lead and patrol pages, for every source pulled.
import { has } from "./i18n.js";
import { banner, t } from "./ui.js";

const ID = "ingest-banner";

export function ingestText(m) {
  const where = t(m.source === "board" ? "ingest.board" : "ingest.camera");
  const code = `ingest.code.${m.code}`;
  const why = m.code ? (has(code) ? t(code) : t("ingest.code.source_error")) : "";
  if (m.state === "live") return t("ingest.live", { where, video: m.video || "H.264" });
  if (m.state === "connecting") return t("ingest.connecting", { where });
  if (m.state === "retrying") return t("ingest.retrying", { where, why });
  if (m.state === "failed") return t("ingest.failed", { where, why });
  return ""; // stopped: the page's own camera is back, nothing to say
}

export function ingestBanner(client) {
  const states = new Map(); // `${classroom_id}/${source}` -> latest ingest_state
  client.on("ingest_state", (m) => {
    states.set(`${m.classroom_id}/${m.source}`, m);
    const shown = [...states.values()].filter((s) => ingestText(s));
    const kind = shown.some((s) => s.state === "failed") ? "error"
      : shown.some((s) => s.state !== "live") ? "warn" : "info";
    const el = banner(shown.map(ingestText).join("；"), kind, ID);
    el.dataset.states = shown.map((s) => `${s.source}:${s.state}`).join(" ");
  });
  client.on("fatal", () => banner("", "info", ID));
}
