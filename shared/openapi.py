"""Every service's OpenAPI document says what its server enforces, from one rule: the problems
each operation can answer, the keys it takes, and text without the NUL character.

`describe(app)` replaces FastAPI's generated document with the same document completed:
- every operation lists the RFC 9457 problems it can give, as `application/problem+json`:
  400 and 422 when it takes input, 401 (with `WWW-Authenticate`) and 403 when it needs a key,
  404 when its path names a record, 413 when it takes a body (and 415 when that is JSON), 429
  (with `Retry-After`) when it writes with a key (the write limiter);
- the API key schemes (`Authorization: Bearer`, `X-API-Key`) are declared for those operations;
- every string the server reads without its own pattern, format or enum is documented without
  NUL, which the body guard refuses (Postgres text cannot hold it).
"""

from collections.abc import Iterator
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute, RouteContext, iter_route_contexts

from shared.auth import ROLES
from shared.problems import PROBLEM_JSON

NO_NUL = "^[^\\u0000]*$"
# Formats whose values cannot hold NUL, and `binary` (bytes, not text).
SAFE_FORMATS = {"uuid", "date", "date-time", "uri", "email", "binary", "time", "duration"}
WRITES = {"post", "put", "patch", "delete"}
SECURITY = [{"bearer": []}, {"apiKey": []}]
SECURITY_SCHEMES = {
    "bearer": {"type": "http", "scheme": "bearer",
               "description": "`Authorization: Bearer <API key>`"},
    "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key",
               "description": "The same API key in `X-API-Key`."},
}
PROBLEM_SCHEMA = {
    "type": "object", "title": "Problem", "description": "An RFC 9457 problem.",
    "required": ["type", "title", "status", "detail"],
    "properties": {
        "type": {"type": "string", "description": "What kind of problem (a URI)."},
        "title": {"type": "string", "description": "Short summary of the kind."},
        "status": {"type": "integer", "description": "The HTTP status."},
        "detail": {"type": "string", "description": "What went wrong this time."},
        "instance": {"type": "string", "description": "The path it happened on."},
        "errors": {"type": "array", "description": "Each wrong field (422).", "items": {
            "type": "object", "properties": {
                "location": {"type": "string"}, "message": {"type": "string"},
                "type": {"type": "string"}}}},
    },
    "additionalProperties": True,
}
RETRY_AFTER = {"Retry-After": {"description": "Seconds to wait before retrying.",
                               "schema": {"type": "integer", "minimum": 1}}}
WWW_AUTHENTICATE = {"WWW-Authenticate": {"description": "How to authenticate.",
                                         "schema": {"type": "string"}}}
TEXT = {400: "Malformed request (not JSON, bad header)", 401: "No or bad API key",
        403: "Not allowed for this key", 404: "No such record (or not visible to this key)",
        409: "Conflict with the record's state", 413: "Body too large",
        415: "Unsupported media type", 422: "Invalid request (each wrong field named)",
        429: "Too many requests; retry after `Retry-After` seconds"}


def problem(status: int, description: str | None = None) -> dict[str, Any]:
    """The OpenAPI response of one problem status."""
    answer: dict[str, Any] = {"description": description or TEXT[status], "content": {
        PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}}}
    headers = {401: WWW_AUTHENTICATE, 429: RETRY_AFTER}.get(status)
    if headers:
        answer["headers"] = headers
    return answer


def problems(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """`responses=` for a route that can give these problems beyond the common ones."""
    return {status: problem(status) for status in statuses}


def describe(app: FastAPI) -> None:
    """Make `app.openapi()` the completed document (built once, as FastAPI's is)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = get_openapi(title=app.title, version=app.version,
                                   description=app.description, routes=app.routes)
            app.openapi_schema = complete(document, routes=_routes(app))
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def _routes(app: FastAPI) -> dict[tuple[str, str], RouteContext]:
    return {(route.path_format, method.lower()): route
            for route in iter_route_contexts(app.routes)
            if isinstance(route.original_route, APIRoute) for method in route.methods}


def complete(document: dict[str, Any], *, routes: dict[tuple[str, str], RouteContext]
             ) -> dict[str, Any]:
    """The document with every operation's problems, security and NUL-free strings."""
    components = document.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)
    for schema in schemas.values():
        _no_nul(schema)
    schemas["Problem"] = PROBLEM_SCHEMA
    secured = False
    for path, method, operation in _operations(document):
        roles = _roles(routes.get((path, method)))
        keyed = roles is not None
        secured |= keyed
        _add_problems(operation, path=path, method=method, roles=roles)
        if keyed:
            operation["security"] = SECURITY
        for parameter in operation.get("parameters", []):
            _no_nul(parameter.get("schema", {}))
    if secured:
        components["securitySchemes"] = SECURITY_SCHEMES
    return document


def _operations(document: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in document.get("paths", {}).items():
        for method, operation in item.items():
            if method in {"get", "put", "post", "delete", "options", "head", "patch", "trace"}:
                yield path, method, operation


def _roles(route: RouteContext | None) -> tuple[str, ...] | None:
    """The roles a route lets through (`require_role`), or None when it needs no key."""
    if route is None:
        return None
    declared = (route.openapi_extra or {}).get("x-roles")
    if declared is not None:
        return tuple(declared)
    stack = [route.dependant]
    while stack:
        dependant = stack.pop()
        roles = getattr(dependant.call, "roles", None)
        if roles is not None:
            return roles
        stack.extend(dependant.dependencies)
    return None


def _add_problems(operation: dict[str, Any], *, path: str, method: str,
                  roles: tuple[str, ...] | None) -> None:
    responses = operation.setdefault("responses", {})
    takes_input = bool(operation.get("parameters") or operation.get("requestBody"))
    statuses = set()
    if takes_input:
        statuses |= {400, 422}
    if roles is not None:
        statuses.add(401)
        if set(roles) != set(ROLES):
            statuses.add(403)
        if method in WRITES:
            statuses.add(429)
    if "{" in path:
        statuses.add(404)
    if operation.get("requestBody"):
        statuses.add(413)
        if "application/json" in operation["requestBody"].get("content", {}):
            statuses.add(415)
    for status in sorted(statuses):
        responses.setdefault(str(status), problem(status))
    for status, response in responses.items():
        if status.isdigit() and int(status) >= 400:  # every problem in the same shape
            own = response.get("description")
            given = problem(int(status), None if own == "Validation Error" else own)
            response["content"] = given["content"]
            if "headers" in given:
                response["headers"] = {**given["headers"], **response.get("headers", {})}
    operation.pop("x-roles", None)


def _no_nul(schema: Any) -> None:
    """Document, in place, that no string the server reads may hold NUL."""
    if isinstance(schema, list):
        for item in schema:
            _no_nul(item)
        return
    if not isinstance(schema, dict):
        return
    if (schema.get("type") == "string" and not {"pattern", "enum", "const"} & schema.keys()
            and schema.get("format") not in SAFE_FORMATS):
        schema["pattern"] = NO_NUL
    for key, value in schema.items():
        if key in {"properties", "patternProperties", "$defs"} and isinstance(value, dict):
            for sub in value.values():
                _no_nul(sub)
        elif key not in {"examples", "example", "default", "enum", "const"}:
            _no_nul(value)
