// HTTP API calls with the server's error shape {"error": {"code", "message"}}.

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

/** fetch + JSON; throws ApiError (code "unreachable" when the server cannot be reached). */
export async function api(path, { method = "GET", body, timeoutMs = 15000, headers = {} } = {}) {
  const ctrl = new AbortController();
  const timer = setTimeout(() => ctrl.abort(), timeoutMs);
  let response;
  try {
    response = await fetch(path, {
      method,
      credentials: "same-origin",
      headers: body === undefined ? headers : { ...headers, "Content-Type": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: ctrl.signal,
    });
  } catch (err) {
    throw new ApiError(0, "unreachable", String(err?.message ?? err));
  } finally {
    clearTimeout(timer);
  }
  if (response.status === 204) return null;
  let data = null;
  try {
    data = await response.json();
  } catch {
    data = null;
  }
  if (!response.ok) {
    const e = data?.error;
    if (e?.code) {
      const err = new ApiError(response.status, e.code, e.message ?? e.code);
      // Seconds to wait, where the server says (429 login_throttled, 503).
      const wait = Number(response.headers.get("Retry-After"));
      if (Number.isFinite(wait) && wait > 0) err.retryAfterS = wait;
      throw err;
    }
    const detail = typeof data?.detail === "string" ? data.detail : response.statusText;
    const code = response.status >= 500 ? "server_down" : `http_${response.status}`;
    throw new ApiError(response.status, code, detail);
  }
  return data;
}

// Set after sign-in so that pages do not ask /api/auth/me (a 401) when nobody signed in.
const HINT = "tongke.signed_in";

export function rememberSignIn(on) {
  if (on) localStorage.setItem(HINT, "1");
  else localStorage.removeItem(HINT);
}

/** The signed-in account, or null. */
export async function me() {
  if (!localStorage.getItem(HINT)) return null;
  try {
    return await api("/api/auth/me");
  } catch (err) {
    if (err.status === 401) {
      rememberSignIn(false);
      return null;
    }
    throw err;
  }
}

export async function logout() {
  await api("/api/auth/logout", { method: "POST" }).catch(() => {});
  rememberSignIn(false);
}
