"""Errors as RFC 9457 problem details, and the request-size limit that guards every body."""

import fnmatch
import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger(__name__)
PROBLEM_JSON = "application/problem+json"


class Problem(Exception):
    """A 4xx the client can act on: raise it anywhere below an endpoint."""

    def __init__(self, status: int, title: str, detail: str = "", **extra: Any) -> None:
        super().__init__(detail or title)
        self.status, self.title, self.detail, self.extra = status, title, detail, extra


def problem_response(
    status: int, title: str, detail: str = "", *, instance: str = "",
    headers: dict[str, str] | None = None, **extra: Any,
) -> JSONResponse:
    slug = title.lower().replace(" ", "-")
    body = {"type": f"https://gvn.lasergo.eu/problems/{slug}", "title": title, "status": status,
            "detail": detail or title, "instance": instance, **extra}
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def _validation_errors(error: RequestValidationError) -> list[dict[str, Any]]:
    return [
        {"location": ".".join(str(part) for part in item["loc"]), "message": item["msg"],
         "type": item["type"]}
        for item in error.errors()
    ]


def install_problem_handlers(app: FastAPI) -> None:
    """Every error leaves the service as problem+json; nothing unexpected leaks as a stack trace."""

    @app.exception_handler(Problem)
    async def on_problem(request: Request, error: Problem) -> JSONResponse:
        return problem_response(error.status, error.title, error.detail,
                                instance=request.url.path, **error.extra)

    @app.exception_handler(RequestValidationError)
    async def on_invalid(request: Request, error: RequestValidationError) -> JSONResponse:
        errors = _validation_errors(error)
        if any(item["type"] == "json_invalid" for item in errors):
            return problem_response(400, "Malformed JSON", "The body is not valid JSON.",
                                    instance=request.url.path, errors=errors)
        return problem_response(422, "Invalid request", "The request does not match the schema.",
                                instance=request.url.path, errors=errors)

    @app.exception_handler(HTTPException)
    async def on_http(request: Request, error: HTTPException) -> JSONResponse:
        title = {401: "Unauthorized", 403: "Forbidden", 404: "Not found",
                 405: "Method not allowed"}.get(error.status_code, "Request refused")
        return problem_response(error.status_code, title, str(error.detail),
                                instance=request.url.path, headers=error.headers)

    @app.exception_handler(Exception)
    async def on_unexpected(request: Request, error: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return problem_response(500, "Internal error", "Something failed on our side.",
                                instance=request.url.path)


class BodyLimit:
    """Refuse bodies over the limit with 413 before any handler sees them.

    `uploads` raises the limit for paths that take files (fnmatch pattern -> bytes).
    """

    def __init__(self, app: ASGIApp, *, max_bytes: int, uploads: dict[str, int] | None = None,
                 ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.uploads = uploads or {}

    def limit_for(self, path: str) -> int:
        return next((limit for pattern, limit in self.uploads.items()
                     if fnmatch.fnmatchcase(path, pattern)), self.max_bytes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        limit = self.limit_for(scope.get("path", ""))
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > limit):
            return await self._refuse(scope, receive, send, limit)
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > limit:
                raise Problem(413, "Body too large", f"Bodies are limited to {limit} bytes.")
            return message

        await self.app(scope, limited_receive, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send, limit: int) -> None:
        response = problem_response(413, "Body too large",
                                    f"Bodies are limited to {limit} bytes.",
                                    instance=scope.get("path", ""))
        await response(scope, receive, send)


NUL_REFUSED = "Text may not contain the NUL character (\\u0000)."


class RefuseNul:
    """Postgres text cannot hold NUL: refuse it at the edge (422), in the URL or a JSON body."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        url = scope.get("raw_path", b"") + b"?" + scope.get("query_string", b"")
        if b"%00" in url or b"\x00" in url:
            response = problem_response(422, "Invalid request", NUL_REFUSED,
                                        instance=scope.get("path", ""))
            return await response(scope, receive, send)
        content_type = dict(scope["headers"]).get(b"content-type", b"").split(b";")[0].strip()
        if not (content_type == b"application/json" or content_type.endswith(b"+json")):
            return await self.app(scope, receive, send)  # uploads: streamed, checked per row
        try:
            body = await _read_body(receive)
        except Problem as error:  # the body limit, met while reading
            response = problem_response(error.status, error.title, error.detail)
            return await response(scope, receive, send)
        if b"\\u0000" in body or b"\x00" in body:
            response = problem_response(422, "Invalid request", NUL_REFUSED,
                                        instance=scope.get("path", ""))
            return await response(scope, receive, send)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)


async def _read_body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(chunks)
