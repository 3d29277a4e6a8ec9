// Where to go after signing in: `next` only when, parsed as a URL against this page, it
// stays on this origin. A prefix check is not enough: browsers read "/\evil.example" and
// "/\t/evil.example" as "//evil.example" (issue 17).
export function sameOriginPath(next, origin = location.origin) {
  if (!next) return "/";
  let url;
  try {
    url = new URL(next, origin);
  } catch {
    return "/";
  }
  if (url.origin !== origin || !/^https?:$/.test(url.protocol)) return "/";
  return url.pathname + url.search + url.hash;
}
