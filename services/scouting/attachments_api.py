"""Scouting's HTTP API for lead attachments: PDF, PNG, JPEG or UTF-8 text, up to 5 MB each."""

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from services.scouting import domain, handlers, queries
from services.scouting.api import CONFLICT, NO_LEAD, Editor, Reader, visible_lead
from services.scouting.models import AttachmentPublic
from shared.openapi import problem
from shared.problems import Problem
from shared.uow import transaction

router = APIRouter(prefix="/v1/leads/{lead_id}/attachments", tags=["attachments"])
UPLOAD_PATTERN = "/v1/leads/*/attachments"
# Text is any UTF-8 but not empty; the other types are files that begin with their signature.
FILE_BODY = {"requestBody": {"required": True, "content": {
    content_type: {"schema": {"type": "string", "minLength": 1} if not signature else
                   {"type": "string", "format": "binary",
                    "minLength": min(map(len, signature))}}
    for content_type, signature in domain.ATTACHMENT_SIGNATURES.items()}}}


@router.post("", status_code=201, response_model=AttachmentPublic, openapi_extra=FILE_BODY,
             responses={**NO_LEAD, **CONFLICT, 415: problem(415, "Type not accepted")})
async def upload(
    lead_id: UUID, caller: Editor, request: Request,
    filename: Annotated[str | None, Query(max_length=200)] = None,
) -> AttachmentPublic:
    """Attach the request body as a file (its Content-Type says what it is)."""
    content_type = request.headers.get("content-type", "")  # documented as the body's types
    data = await request.body()
    async with transaction(request.app.state.db) as tx:
        attachment = await handlers.attach_file(
            tx, lead_id, caller=caller, filename=filename,
            content_type=content_type.split(";")[0].strip().lower(), data=data)
    return AttachmentPublic.model_validate(attachment)


@router.get("", response_model=list[AttachmentPublic], responses=NO_LEAD,
            operation_id="list_attachments")
async def list_attachments(lead_id: UUID, caller: Reader,
                           request: Request) -> list[AttachmentPublic]:
    """The lead's attachments (without their content)."""
    await visible_lead(request, lead_id, caller)
    return [AttachmentPublic.model_validate(a)
            for a in await queries.attachments(request.app.state.db, lead_id)]


@router.get("/{attachment_id}", response_class=Response, responses={
    404: problem(404, "No such lead or attachment"), 200: {"description": "The file", "content": {
        t: {} for t in domain.ATTACHMENT_SIGNATURES}}})
async def download(lead_id: UUID, attachment_id: UUID, caller: Reader,
                   request: Request) -> Response:
    """The file itself, as a download (never rendered inline)."""
    await visible_lead(request, lead_id, caller)
    attachment = await queries.attachment(request.app.state.db, lead_id, attachment_id)
    if attachment is None:
        raise Problem(404, "Not found", f"No attachment {attachment_id} on lead {lead_id}.")
    return Response(attachment.data, media_type=attachment.content_type, headers={
        "Content-Disposition": f'attachment; filename="{attachment.filename}"',
        "X-Content-Type-Options": "nosniff"})
