"""Methods a path does not serve answer 405 with `Allow`, and OPTIONS lists those it serves.

Starlette answers 405 with the methods of the first route whose path matches, so a path
served by two routes (GET and POST /v1/leads) advertised only one, and a literal path
(/v1/leads/duplicate-check) fell through to a templated one (PATCH /v1/leads/{lead_id}), whose
validation answered 422. Here a path's methods are those of every route with the most
specific template that matches it (fewest parameters).
"""

from fastapi.routing import iter_route_contexts
from starlette.responses import Response
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Receive, Scope, Send

from shared.problems import problem_response


class MethodGuard:
    """ASGI middleware: 405 (with `Allow`) for unserved methods, 204 with `Allow` for OPTIONS."""

    def __init__(self, app: ASGIApp, *, routes: list[BaseRoute]) -> None:
        self.app = app
        self.routes = routes  # the app's, complete by the first request
        self.flat: list | None = None

    def allowed(self, path: str) -> set[str] | None:
        """The methods served at `path`, or None when no route serves it."""
        if self.flat is None:
            self.flat = [route for route in iter_route_contexts(self.routes)
                         if getattr(route, "methods", None)]
        matches = [route for route in self.flat if route.path_regex.match(path)]
        if not matches:
            return None
        fewest = min(len(route.param_convertors) for route in matches)
        methods = {method for route in matches if len(route.param_convertors) == fewest
                   for method in route.methods}
        return methods | {"OPTIONS"}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        allowed = self.allowed(scope["path"])
        if allowed is None or scope["method"] in allowed - {"OPTIONS"}:
            return await self.app(scope, receive, send)
        allow = ", ".join(sorted(allowed))
        if scope["method"] == "OPTIONS":
            response = Response(status_code=204, headers={"Allow": allow})
        else:
            response = problem_response(
                405, "Method not allowed", f"{scope['method']} is not served here; use {allow}.",
                instance=scope["path"], headers={"Allow": allow})
        await response(scope, receive, send)

