"""Text with NUL (U+0000) is refused at the door of /api with a 422 naming the field.

PostgreSQL cannot store NUL in text (SQLite can): a title with `\\u0000` answered 503
`database_unavailable` and a note `internal_error` (issue 17). No model needs NUL, so one
check covers every route, path, query parameter and JSON body, present and future. The JSON
body is scanned for the escape first; only a body holding one is parsed to name the field.
"""

from __future__ import annotations

import json
from urllib.parse import parse_qsl, unquote

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from server.api.errors import error_json
from signaling.nul import nul_path


class NulGuardMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/api"):
            await self.app(scope, receive, send)
            return
        field = self._in_url(scope)
        body: list[Message] = []
        if field is None and scope["method"] in ("POST", "PUT", "PATCH"):
            content_type = dict(scope["headers"]).get(b"content-type", b"")
            if content_type.startswith(b"application/json"):
                body = await self._read(receive)
                data = b"".join(m.get("body", b"") for m in body)
                if b"\\u0000" in data:
                    try:
                        field = nul_path(json.loads(data))
                    except (ValueError, RecursionError):
                        field = None  # FastAPI answers invalid JSON itself
        if field is not None:
            message = f"{field}: text must not contain the NUL character (U+0000)."
            response = error_json(422, "invalid_request", message)
            await response(scope, receive, send)
            return
        if body:
            replay = iter(body)

            async def receive_again() -> Message:
                return next(replay, None) or await receive()

            await self.app(scope, receive_again, send)
            return
        await self.app(scope, receive, send)

    @staticmethod
    def _in_url(scope: Scope) -> str | None:
        if "\x00" in scope["path"] or b"%00" in scope.get("raw_path", b""):
            return "path"
        query = scope.get("query_string", b"")
        if b"%00" in query or b"\x00" in query:
            for name, value in parse_qsl(query.decode("latin-1"), keep_blank_values=True):
                if "\x00" in unquote(name) or "\x00" in value:
                    return f"query.{unquote(name).replace(chr(0), '')}"
            return "query"
        return None

    @staticmethod
    async def _read(receive: Receive) -> list[Message]:
        messages = []
        while True:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request" or not message.get("more_body", False):
                return messages
