"""Scouting's tables and API shapes: scouts, leads, their transitions and imports."""

from datetime import date, datetime
from types import SimpleNamespace
from typing import Annotated, Literal
from uuid import UUID, uuid4

import sqlalchemy as sa
import sqlmodel
from pydantic import BaseModel, ConfigDict, EmailStr, Field, StringConstraints, model_validator
from sqlalchemy.dialects.postgresql import ARRAY
from sqlmodel import Column, SQLModel

from shared.bodies import STRICT, Day, HttpUrl, Market, Uuid, drop_null_defaults, whole
from shared.contracts.scouting import LeadKind
from shared.ids import uuid7
from shared.programme import APPLICATION_AREAS

ApplicationArea = Literal[APPLICATION_AREAS]
LeadStatus = Literal["submitted", "qualified", "rejected", "duplicate", "matched", "converted",
                     "closed"]
Urgency = Literal["low", "medium", "high"]
LeadSource = Literal["mission", "event", "desk_research", "referral"]
Euros = whole(ge=0, le=10**10)
Trl = whole(ge=1, le=9)
Tag = Annotated[str, StringConstraints(min_length=1, max_length=60)]
Country = Annotated[str, StringConstraints(pattern=r"^[A-Z]{2}$")]

NOW = sa.text("now()")

# One description per field name, for every API shape that has the field (OpenAPI docs).
FIELD_DOCS = {
    "id": "The record's id.", "lead_id": "The lead's id.", "kind": "What was found.",
    "title": "Short title.", "description": "What the need or candidate is.",
    "target_market": "Target market code.", "application_areas": "Application areas.",
    "technologies": "Technology tags, normalised (lower case, hyphens).",
    "counterpart_name": "The organisation the lead is about.",
    "counterpart_website": "Its website.", "counterpart_country": "Its country (ISO alpha-2).",
    "urgency": "How soon someone should act.", "estimated_value_eur": "Estimated deal value, EUR.",
    "source": "Where the scout found it.", "source_date": "When it was found.",
    "evidence_links": "Links that back the lead up.",
    "min_trl": "The least technology readiness level (1-9) an offering needs to answer it.",
    "requires_clearance": "Only offerings cleared for the target market answer it.",
    "status": "Where the lead is in the workflow.",
    "status_reason": "Why it was rejected or closed, or which match moved it.",
    "duplicate_of": "The earlier lead this one repeats.", "cluster": "Owning cluster code.",
    "scout_id": "The scout who reported it (none for partner systems).",
    "submitted_by": "The API key that submitted it.", "submitted_at": "When it was accepted.",
    "last_activity_at": "Last change or renewal; drives staleness.",
    "name": "Name.", "website": "Website (http or https).", "email": "E-mail address.",
    "phone": "Phone number, international format preferred.", "items": "This page's leads.",
    "filename": "File name, cleaned of paths.", "content_type": "MIME type.",
    "sha256": "SHA-256 of the content, hex.", "uploaded_at": "When it was uploaded.",
    "home_cluster": "The scout's cluster.", "active": "Whether the scout may submit leads.",
    "affiliate_market": "The market the scout covers.",
    "to": "The status to move to.", "reason": "Why (required for rejected and closed).",
    "from_status": "Status before (none for the first).", "to_status": "Status after.",
    "by_key": "API key that made the move (none: the platform, on an event).",
    "at": "When.",
}


def _fill_descriptions(schema: dict, model: type) -> None:
    for name, prop in schema.get("properties", {}).items():
        if "description" not in prop and name in FIELD_DOCS:
            prop["description"] = FIELD_DOCS[name]
    drop_null_defaults(schema)


class Documented(BaseModel):
    """API shapes: fields without their own description take the shared one."""

    model_config = ConfigDict(json_schema_extra=_fill_descriptions)


def _utc(name: str, **kw) -> Column:  # noqa: ANN003
    return Column(name, sa.DateTime(timezone=True), **kw)


# --- tables ---------------------------------------------------------------------------------

class Scout(SQLModel, table=True):
    """A person with a scout key; known to scouting from the key's first use."""

    __tablename__ = "scouts"

    id: UUID = sqlmodel.Field(default_factory=uuid4, primary_key=True)
    key_id: UUID = sqlmodel.Field(unique=True)
    name: str
    home_cluster: str
    affiliate_market: str | None = None
    active: bool = True


class Lead(SQLModel, table=True):
    __tablename__ = "leads"

    id: UUID = sqlmodel.Field(default_factory=uuid7, primary_key=True)
    kind: str
    title: str
    description: str
    target_market: str
    application_areas: list[str] = sqlmodel.Field(sa_column=Column(ARRAY(sa.Text), nullable=False))
    technologies: list[str] = sqlmodel.Field(sa_column=Column(ARRAY(sa.Text), nullable=False))
    counterpart_name: str | None = None
    counterpart_website: str | None = None
    counterpart_country: str | None = None
    counterpart_key: str | None = None  # normalised name, for duplicate hints
    counterpart_domain: str | None = None
    contact_sealed: bytes | None = None  # the counterpart contact, encrypted; None once erased
    contact_erased_at: datetime | None = sqlmodel.Field(
        default=None, sa_column=_utc("contact_erased_at"))
    urgency: str = "medium"
    estimated_value_eur: int | None = sqlmodel.Field(
        default=None, sa_column=Column("estimated_value_eur", sa.BigInteger))
    source: str | None = None
    source_date: date | None = None
    evidence_links: list[str] = sqlmodel.Field(sa_column=Column(ARRAY(sa.Text), nullable=False))
    min_trl: int | None = None  # what an offering must be to answer it (matching's factors)
    requires_clearance: bool = False
    status: str = "submitted"
    status_reason: str | None = None
    duplicate_of: UUID | None = None
    cluster: str
    scout_id: UUID | None = None
    submitted_by: UUID
    submitted_at: datetime = sqlmodel.Field(sa_column=_utc("submitted_at", nullable=False))
    last_activity_at: datetime = sqlmodel.Field(sa_column=_utc("last_activity_at", nullable=False))
    # What the duplicate search finds it by (domain.TitleKeys; B-tree and GIN indexes).
    title_key: int | None = sqlmodel.Field(
        default=None, sa_column=Column("title_key", sa.BigInteger))
    title_subkeys: list[int] | None = sqlmodel.Field(
        default=None, sa_column=Column("title_subkeys", ARRAY(sa.BigInteger)))
    # Its words (domain.lead_alike_words): near-identical wording is judged on them, and the
    # search finds leads by them (index leads_search on array_to_tsvector(alike_words)).
    alike_words: list[str] | None = sqlmodel.Field(
        default=None, sa_column=Column("alike_words", ARRAY(sa.Text(collation="C"))))


class NewLead(SimpleNamespace):
    """A lead about to be saved (by a POST or an import row): its columns as attributes,
    without the cost of an ORM object."""


class LeadTransition(SQLModel, table=True):
    """Every status change of a lead: who, when, why."""

    __tablename__ = "lead_transitions"

    id: int | None = sqlmodel.Field(default=None, primary_key=True)
    lead_id: UUID = sqlmodel.Field(index=True)
    from_status: str | None
    to_status: str
    reason: str | None = None
    by_key: UUID | None = None  # None: the platform itself (an event)
    at: datetime = sqlmodel.Field(sa_column=_utc("at", nullable=False, server_default=NOW))


# --- API shapes -----------------------------------------------------------------------------

class Counterpart(Documented):
    """The organisation the lead is about (not a person)."""

    model_config = STRICT

    name: str = Field(min_length=2, max_length=200, examples=["Kansai Medical Optics KK"])
    website: HttpUrl | None = Field(None, examples=["https://kansai-medical-optics.example.jp"])
    country: Country | None = Field(None, description="ISO 3166 alpha-2.", examples=["JP"])


class CounterpartContact(Documented):
    """The person to talk to. Personal data: encrypted at rest, never in events, handed to crm."""

    model_config = STRICT

    name: str = Field(min_length=2, max_length=200, examples=["Dr. Aiko Tanaka"])
    email: EmailStr | None = Field(None, examples=["a.tanaka@kansai-medical-optics.example.jp"])
    phone: str | None = Field(None, max_length=40, pattern=r"^\+?[0-9 ()./-]{5,40}$",
                              examples=["+81 6 1234 5678"])


class LeadCreate(Documented):
    """What a scout or partner system submits. Status, owner, cluster, ids and timestamps are
    the service's to set: sending them is refused."""

    model_config = STRICT

    kind: LeadKind = Field(description="What was found.", examples=["market_need"])
    title: str = Field(min_length=3, max_length=200, description="Short title.",
                       examples=["Handheld OCT for ENT clinics"])
    description: str = Field("", max_length=5000, description="What the need or candidate is.")
    target_market: Market = Field(
        description="Market code: the programme's ten (CA, US-EAST, US-WEST, IL, KR, JP, SG, "
        "MY, AU, NZ) and any configured with EXTRA_MARKETS.", examples=["JP"])
    application_areas: list[ApplicationArea] = Field(
        default_factory=list, max_length=8, description="Health-photonics application areas.",
        examples=[["diagnostics"]])
    technologies: list[Tag] = Field(
        default_factory=list, max_length=20, description="Free tags, normalised on save.",
        examples=[["optical coherence tomography"]])
    counterpart: Counterpart | None = Field(None, description="The organisation concerned.")
    counterpart_contact: CounterpartContact | None = Field(
        None, description="The person to contact (kept encrypted until crm takes it over).")
    urgency: Urgency = Field("medium", description="How soon someone should act.")
    estimated_value_eur: Euros | None = Field(None, description="Estimated deal value in euros.")
    source: LeadSource | None = Field(None, description="Where the scout found it.")
    source_date: Day | None = Field(None, description="When it was found.")
    evidence_links: list[HttpUrl] = Field(default_factory=list, max_length=10,
                                          description="Links that back the lead up.")
    min_trl: Trl | None = Field(None, description="The least technology readiness level "
                                "(1-9) an offering needs to answer the lead.")
    requires_clearance: bool = Field(False, description="Only offerings cleared (or clearable) "
                                     "for the target market can answer it.")
    duplicate_check: Literal["warn", "confirmed_new"] = Field(
        "warn", description="`warn` (default): a likely duplicate is refused with 409 and the "
        "candidates; `confirmed_new`: save it anyway.")


class LeadUpdate(Documented):
    """Fields a scout may still correct while the lead is open: each may be left out; only
    the deal value may be cleared with null."""

    model_config = STRICT

    title: str = Field(None, min_length=3, max_length=200)
    description: str = Field(None, max_length=5000)
    application_areas: list[ApplicationArea] = Field(None, max_length=8)
    technologies: list[Tag] = Field(None, max_length=20)
    urgency: Urgency = Field(None)
    estimated_value_eur: Euros | None = None
    evidence_links: list[HttpUrl] = Field(None, max_length=10)
    min_trl: Trl | None = None
    requires_clearance: bool = Field(None)


REASONED = ("rejected", "closed")
# The rules `Transition` checks, as JSON Schema, so the document says them too.
TRANSITION_RULES = [
    {"if": {"properties": {"to": {"enum": list(REASONED)}}, "required": ["to"]},
     "then": {"required": ["reason"],
              "properties": {"reason": {"type": "string", "minLength": 1}}}},
    {"if": {"properties": {"to": {"const": "duplicate"}}, "required": ["to"]},
     "then": {"required": ["duplicate_of"],
              "properties": {"duplicate_of": {"type": "string", "format": "uuid"}}}},
]


def _transition_schema(schema: dict, model: type) -> None:
    _fill_descriptions(schema, model)
    schema["allOf"] = TRANSITION_RULES


class Transition(Documented):
    """A move in the workflow: qualify, reject (reason), mark duplicate (of), convert, close."""

    model_config = ConfigDict(**STRICT, json_schema_extra=_transition_schema)

    to: Literal["qualified", "rejected", "duplicate", "converted", "closed"]
    reason: str | None = Field(None, max_length=500, description="Required for rejected, closed.")
    duplicate_of: Uuid | None = Field(None, description="Required for duplicate.")

    @model_validator(mode="after")
    def _what_the_move_needs(self) -> "Transition":
        if self.to in REASONED and not self.reason:
            raise ValueError(f"say why the lead is {self.to} (`reason`)")
        if self.to == "duplicate" and self.duplicate_of is None:
            raise ValueError("name the earlier lead in `duplicate_of`")
        return self


class LeadPublic(Documented):
    """A lead as the API shows it (without the counterpart contact)."""

    model_config = ConfigDict(from_attributes=True)

    id: UUID
    kind: LeadKind
    title: str
    description: str
    target_market: str
    application_areas: list[str]
    technologies: list[str]
    counterpart_name: str | None
    counterpart_website: str | None
    counterpart_country: str | None
    has_contact: bool = Field(description="A counterpart contact is held (until crm takes it).")
    urgency: Urgency
    estimated_value_eur: int | None
    source: str | None
    source_date: date | None
    evidence_links: list[str]
    min_trl: int | None
    requires_clearance: bool
    status: LeadStatus
    status_reason: str | None
    duplicate_of: UUID | None
    stale: bool = Field(description="Open and not acted on for the configured period.")
    cluster: str
    scout_id: UUID | None
    submitted_by: UUID
    submitted_at: datetime
    last_activity_at: datetime


class LeadPage(Documented):
    items: list[LeadPublic]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null: done.")


class DuplicateCandidate(Documented):
    id: UUID | None = Field(description="The earlier lead; null when it is another scout's.")
    title: str
    status: LeadStatus
    why: str = Field(description="same_counterpart, same_website or similar_text.")


class TransitionPublic(Documented):
    model_config = ConfigDict(from_attributes=True)

    from_status: str | None
    to_status: str
    reason: str | None
    by_key: UUID | None
    at: datetime


class ContactHandover(Documented):
    """The counterpart contact, for crm only (internal endpoint)."""

    lead_id: UUID
    cluster: str
    counterpart_name: str | None
    contact: CounterpartContact


class ScoutPublic(Documented):
    model_config = ConfigDict(from_attributes=True)

    id: UUID
    key_id: UUID = Field(description="The API key the scout works with.")
    name: str
    home_cluster: str
    affiliate_market: str | None = Field(description="The market the scout covers, if one.")
    active: bool


class ScoutUpdate(Documented):
    """What a cluster manager may change about a scout."""

    model_config = STRICT

    name: str = Field(None, min_length=2, max_length=200)
    affiliate_market: Market | None = Field(None, description="The market the scout covers; "
                                            "null: none.")
    active: bool = Field(None, description="An inactive scout cannot submit leads.")


class LeadAttachment(SQLModel, table=True):
    """A file backing a lead up; kept in Postgres, limited in type and size."""

    __tablename__ = "lead_attachments"

    id: UUID = sqlmodel.Field(default_factory=uuid4, primary_key=True)
    lead_id: UUID = sqlmodel.Field(index=True)
    filename: str
    content_type: str
    size: int
    sha256: str
    data: bytes
    uploaded_by: UUID
    uploaded_at: datetime = sqlmodel.Field(
        sa_column=_utc("uploaded_at", nullable=False, server_default=NOW))


class AttachmentPublic(Documented):
    model_config = ConfigDict(from_attributes=True)

    id: UUID
    lead_id: UUID
    filename: str
    content_type: str = Field(examples=["application/pdf"])
    size: int = Field(description="Bytes.")
    sha256: str
    uploaded_at: datetime
