"""One error shape for the whole API: {"error": {"code": "...", "message": "..."}}."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel
from sqlalchemy import exc as sa_exc
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send


class ErrorBody(BaseModel):
    code: str
    message: str


class ErrorResponse(BaseModel):
    """The body of every error the API returns."""

    error: ErrorBody


class ApiError(Exception):
    """A refusal with an HTTP status and a stable machine-readable code."""

    def __init__(
        self, status: int, code: str, message: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers


def not_found(what: str, code: str | None = None) -> ApiError:
    return ApiError(404, code or f"{what}_not_found", f"No such {what.replace('_', ' ')}.")


def forbidden(message: str = "Your account may not do this.") -> ApiError:
    return ApiError(403, "forbidden", message)


def error_json(status: int, code: str, message: str, **kwargs: Any) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status, **kwargs)


log = logging.getLogger("tongke.api")

RETRY_AFTER = {"Retry-After": "2"}

# Codes for the plain HTTP errors Starlette raises itself (unknown route, wrong method).
_HTTP_CODES = {
    401: "not_authenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "too_large",
}


def _describe(errors: list[Any]) -> str:
    parts = []
    for error in errors[:5]:
        where = ".".join(str(p) for p in error.get("loc", ()) if p != "body")
        parts.append(f"{where}: {error.get('msg', 'invalid')}" if where else error.get("msg"))
    return "; ".join(str(p) for p in parts) or "The request is not valid."


class ApiNotFoundMiddleware:
    """Unknown paths under /api fall through to the static web mount, which answers with
    the HTML 404 page; API clients get the API's JSON error shape instead."""

    def __init__(self, app: ASGIApp, prefix: str = "/api/") -> None:
        self.app = app
        self.prefix = prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(self.prefix):
            await self.app(scope, receive, send)
            return
        replaced = False

        async def guarded_send(message: Message) -> None:
            nonlocal replaced
            if message["type"] == "http.response.start" and message["status"] == 404:
                content_type = dict(message.get("headers", [])).get(b"content-type", b"")
                if content_type.startswith(b"text/html"):
                    replaced = True
                    response = error_json(404, "not_found", f"No API route {scope['path']}.")
                    await send(
                        {
                            "type": "http.response.start",
                            "status": 404,
                            "headers": response.raw_headers,
                        }
                    )
                    await send({"type": "http.response.body", "body": response.body})
                    return
            if replaced:
                return  # the HTML body is dropped
            await send(message)

        await self.app(scope, receive, guarded_send)


def database_unreachable(exc: sa_exc.DBAPIError) -> bool:
    """The database could not be reached or dropped the connection (retry later), as opposed
    to a statement failing (a constraint, a bug). Drivers report the first as operational or
    interface errors, or, for a failed connect that asyncpg does not classify, the bare
    DBAPIError; SQLAlchemy marks a lost connection ``connection_invalidated``."""
    return (
        isinstance(exc, (sa_exc.OperationalError, sa_exc.InterfaceError))
        or type(exc) is sa_exc.DBAPIError
        or exc.connection_invalidated
    )


def install_error_handlers(app: FastAPI) -> None:
    """Register the handlers that give every /api error the common shape."""

    async def on_api_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ApiError)
        return error_json(exc.status, exc.code, exc.message, headers=exc.headers)

    async def on_validation(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        return error_json(422, "invalid_request", _describe(list(exc.errors())))

    async def on_http(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        if not request.url.path.startswith("/api"):
            # Pages and static files keep Starlette's own answers.
            return await http_exception_handler(request, exc)
        code = _HTTP_CODES.get(exc.status_code, "http_error")
        return error_json(exc.status_code, code, str(exc.detail), headers=exc.headers)

    async def on_pool_timeout(request: Request, exc: Exception) -> Response:
        # Every pooled connection stayed busy past database_pool_timeout_s: 503, try again.
        log.warning("no database connection for %s within the pool timeout", request.url.path)
        return error_json(
            503, "busy", "The service is busy; try again shortly.", headers=RETRY_AFTER
        )

    async def on_database(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, sa_exc.DBAPIError)
        if not database_unreachable(exc):
            raise exc  # a statement's own error is a bug: 500, with its traceback logged
        log.error("database unavailable for %s: %s", request.url.path, exc.orig)
        return error_json(
            503,
            "database_unavailable",
            "The database cannot be reached; try again shortly.",
            headers=RETRY_AFTER,
        )

    app.add_exception_handler(ApiError, on_api_error)
    app.add_exception_handler(sa_exc.TimeoutError, on_pool_timeout)
    app.add_exception_handler(sa_exc.DBAPIError, on_database)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(StarletteHTTPException, on_http)
    app.add_middleware(ApiNotFoundMiddleware)
