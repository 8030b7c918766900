"""Scouting's web pages: the scout's lead form with "my leads", and the manager's triage queue.

The pages are static files that call the JSON API (/v1) with the key kept in the browser, so
this router only serves files. Nothing here is part of the API, hence no OpenAPI entries.
"""

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse, JSONResponse

from services.scouting.settings import get_scouting_settings
from shared.problems import Problem

WEB = Path(__file__).parent / "web"
# Looked up by exact name, so a request can never reach a file outside web/.
STATIC = {path.name: path for path in WEB.iterdir() if path.suffix in {".js", ".css", ".svg"}}
# Scripts, styles and calls only from this origin: injected markup could not run or phone home.
CSP = "; ".join([
    "default-src 'self'", "script-src 'self'", "style-src 'self'", "img-src 'self'",
    "connect-src 'self'", "form-action 'self'", "base-uri 'none'", "object-src 'none'",
    "frame-ancestors 'none'",
])
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",  # revalidate (ETag) so a deploy reaches phones at once
}

router = APIRouter(include_in_schema=False)


def _file(path: Path) -> FileResponse:
    return FileResponse(path, headers=HEADERS)


@router.get("/scout")
async def scout_page() -> FileResponse:
    """A scout's page: the lead form (drafts kept offline) and "my leads"."""
    return _file(WEB / "scout.html")


@router.get("/triage")
async def triage_page() -> FileResponse:
    """A manager's page: submitted leads with duplicate hints, one click to decide."""
    return _file(WEB / "triage.html")


@router.get("/static/markets.json")
async def markets() -> JSONResponse:
    """The market codes the API accepts (the same configuration its validation reads)."""
    return JSONResponse(list(get_scouting_settings().markets), headers=HEADERS)


@router.get("/static/scout-sw.js")
async def scout_service_worker() -> FileResponse:
    """The worker that opens /scout offline; allowed to control /scout though it lives here."""
    response = _file(WEB / "scout-sw.js")
    response.headers["Service-Worker-Allowed"] = "/scout"
    return response


@router.get("/static/{name}")
async def static_file(name: str) -> FileResponse:
    if name not in STATIC:
        raise Problem(404, "Not found", f"No static file {name!r}.")
    return _file(STATIC[name])
