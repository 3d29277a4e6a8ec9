// The /ca/ page: how to trust the school's local CA once, with its SHA-256 fingerprint from
// /api/tls. Its strings join the shared i18n tables (web/js/i18n.js): zh-CN first, en second.
import { LANGS, apply, lang, setLang, t } from "/js/i18n.js";

// The Chinese text is written once, in index.html; it becomes this page's zh-CN strings.
for (const el of document.querySelectorAll("[data-i18n]")) {
  const key = el.dataset.i18n;
  if (!(key in LANGS["zh-CN"])) LANGS["zh-CN"][key] = el.textContent.trim();
}
Object.assign(LANGS["zh-CN"], {
  "ca.loading": "正在读取指纹…",
  "ca.fetch_failed": "读取指纹失败，请刷新本页。",
});

Object.assign(LANGS.en, {
  "ca.title": "Trust the school certificate (once per computer)",
  "ca.why":
    "Browsers allow the camera and microphone only on secure (HTTPS) pages. This school's tongke server encrypts with its own school certificate; trust it once on every classroom PC and tablet, and its https links open without warnings.",
  "ca.step_download": "Step 1: download the school certificate",
  "ca.download": "Download the school certificate tongke-ca.crt",
  "ca.fingerprint_hint":
    "If the installer shows a fingerprint (SHA-256), compare it character by character with this one; install only if they match:",
  "ca.no_local_ca":
    "This server does not use a school certificate (it has a regular certificate, or a reverse proxy serves HTTPS): nothing to install, open the https link.",
  "ca.windows": "Windows 10 / 11 (Edge, Chrome, 360 and other browsers)",
  "ca.win1": "Double-click the downloaded tongke-ca.crt and choose Install Certificate.",
  "ca.win2": "Choose Local Machine (an administrator confirms), then Next.",
  "ca.win3":
    "Choose 'Place all certificates in the following store', Browse, pick 'Trusted Root Certification Authorities', OK.",
  "ca.win4": "Next, Finish; at the security warning check the fingerprint and choose Yes.",
  "ca.win5": "Close every browser window, then open the classroom link again.",
  "ca.uos": "UOS / Kylin (Chromium-based browsers: Chromium, 360, Qi-AnXin, Edge…)",
  "ca.uos1":
    "Type chrome://settings/certificates in the address bar (or Settings → Privacy and security → Security → Manage certificates).",
  "ca.uos2": "Open the Authorities tab, choose Import and pick the downloaded tongke-ca.crt.",
  "ca.uos3": "Tick 'Trust this certificate for identifying websites', OK.",
  "ca.uos4":
    'Restart the browser and open the classroom link. Or in a terminal: certutil -d sql:$HOME/.pki/nssdb -A -t "C,," -n tongke -i tongke-ca.crt',
  "ca.android": "Android tablets",
  "ca.and1": "Open this page in the tablet's browser and tap 'Download the school certificate'.",
  "ca.and2":
    "Open Settings → Security (or Security & privacy) → More security settings → Encryption & credentials → Install a certificate → CA certificate.",
  "ca.and3": "Choose 'Install anyway' and pick tongke-ca.crt (the lock-screen PIN may be asked).",
  "ca.and4": "Open the classroom link again in Chrome or the system browser.",
  "ca.ipad": "iPad",
  "ca.ipad1":
    "Open this page in Safari, tap 'Download the school certificate' and Allow the configuration profile.",
  "ca.ipad2": "Open Settings → General → VPN & Device Management, tap the profile, Install.",
  "ca.ipad3":
    "Then Settings → General → About → Certificate Trust Settings: switch on the school certificate (tongke local CA).",
  "ca.ipad4": "Back in Safari, open the classroom link again.",
  "ca.after": "Afterwards",
  "ca.after_text":
    "Open the https link the administrator sent: a padlock and no 'Not secure' mean it worked. If the browser still says 'Your connection is not private', check that the link starts with https:// and compare the fingerprint.",
  "ca.loading": "Reading the fingerprint…",
  "ca.fetch_failed": "Could not read the fingerprint; reload this page.",
});

async function showFingerprint() {
  const box = document.getElementById("ca-fingerprint");
  // A fingerprint reads the same in every language: a language switch keeps it as it is.
  if (box.dataset.state === "ready" || box.dataset.state === "none") return;
  box.dataset.state = "loading";
  box.textContent = t("ca.loading");
  try {
    const response = await fetch("/api/tls");
    const info = await response.json();
    if (info.mode !== "local_ca") {
      box.dataset.state = "none";
      box.classList.add("hidden");
      document.getElementById("ca-download").classList.add("hidden");
      document.getElementById("ca-missing").classList.remove("hidden");
      return;
    }
    box.dataset.state = "ready";
    box.textContent = `SHA-256 ${info.ca_fingerprint_sha256}`;
  } catch {
    box.dataset.state = "failed";
    box.textContent = t("ca.fetch_failed");
  }
}

document.getElementById("lang-switch").addEventListener("click", () => {
  setLang(lang() === "zh-CN" ? "en" : "zh-CN");
  apply();
  showFingerprint();
});
apply();
showFingerprint();
