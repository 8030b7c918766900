"""Errors as RFC 9457 problem details, and the request-size limit that guards every body."""

import fnmatch
import logging
import re
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


NUL_REFUSED = "Text may not contain the NUL character (\\u0000)."


class BodyGuard:
    """Refuse at the edge, before any handler, what no handler may see: a body over the limit
    (413, from Content-Length when it is given), a body that is not JSON (415), and the NUL
    character, which Postgres text cannot hold, in the URL or a JSON body (422).

    `uploads` raises the limit for paths that take files (fnmatch pattern -> bytes); those
    bodies are streamed to the handler, which checks their type and rows.
    """

    def __init__(self, app: ASGIApp, *, max_bytes: int, uploads: dict[str, int] | None = None,
                 ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.uploads = [(re.compile(fnmatch.translate(pattern)), limit)
                        for pattern, limit in (uploads or {}).items()]

    def upload_limit(self, path: str) -> int | None:
        return next((limit for pattern, limit in self.uploads if pattern.match(path)), None)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        url = scope.get("raw_path", b"") + b"?" + scope.get("query_string", b"")
        if b"%00" in url or b"\x00" in url:
            return await _refuse(scope, receive, send, 422, "Invalid request", NUL_REFUSED)
        upload_limit = self.upload_limit(scope["path"])
        limit = upload_limit or self.max_bytes
        length = content_type = None
        chunked = False
        for name, value in scope["headers"]:
            if name == b"content-length":
                length = value
            elif name == b"content-type":
                content_type = value.split(b";")[0].strip().lower()
            elif name == b"transfer-encoding":
                chunked = True
        if length is not None and (not length.isdigit() or int(length) > limit):
            return await _refuse(scope, receive, send, 413, "Body too large",
                                 f"Bodies are limited to {limit} bytes.")
        received = 0

        async def limited_receive() -> Message:  # a chunked body has no length to trust
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > limit:
                raise Problem(413, "Body too large", f"Bodies are limited to {limit} bytes.")
            return message

        if not (content_type == b"application/json"
                or content_type is not None and content_type.endswith(b"+json")):
            if upload_limit is None and (chunked or length not in (None, b"0")):
                return await _refuse(scope, receive, send, 415, "Unsupported media type",
                                     "Send the body as JSON (Content-Type: application/json).")
            return await self.app(scope, receive if length else limited_receive, send)
        try:
            body = await _read_body(limited_receive)
        except Problem as error:
            return await _refuse(scope, receive, send, error.status, error.title, error.detail)
        if b"\\u0000" in body or b"\x00" in body:
            return await _refuse(scope, receive, send, 422, "Invalid request", NUL_REFUSED)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)


async def _refuse(scope: Scope, receive: Receive, send: Send, status: int, title: str,
                  detail: str) -> None:
    response = problem_response(status, title, detail, instance=scope.get("path", ""))
    await response(scope, receive, send)


async def _read_body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(chunks)
