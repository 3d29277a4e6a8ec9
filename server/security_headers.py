"""Security headers on every HTTP response: pages and API alike (issue 17).

The pages load only their own scripts (no inline script, no CDN: web/*/index.html), so the
Content-Security-Policy allows scripts from this origin alone. Inline styles stay allowed:
the pages set `style` attributes from script, which cannot carry code. WebSockets may go to
another node's origin (many nodes: a join's `ws_url` names the lesson's home), hence
`ws:`/`wss:` in connect-src. No page may be framed (`frame-ancestors 'none'`: the admin page
framed by another site is a click-jacking target). Join codes travel in URLs, so the
Referer never leaves this origin.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data: blob:",
        "media-src 'self' blob:",
        "connect-src 'self' ws: wss:",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    )
)
HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"same-origin"),
)
_NAMES = frozenset(name for name, _ in HEADERS)


class SecurityHeadersMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [h for h in message.get("headers", []) if h[0].lower() not in _NAMES]
                message["headers"] = [*headers, *HEADERS]
            await send(message)

        await self.app(scope, receive, with_headers)
