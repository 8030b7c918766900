"""CloudEvents 1.0 in Kafka binary mode: building an event, and reading one back from a record."""

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar
from uuid import UUID

from pydantic import ValidationError

from shared.contracts import EventData, contract_for
from shared.ids import uuid7
from shared.telemetry import TRACE_HEADERS

D = TypeVar("D", bound=EventData)

CONTENT_TYPE = "application/json"


class InvalidEvent(ValueError):
    """An event that cannot be read or does not match its contract: retrying will not help."""


@dataclass(frozen=True)
class Event(Generic[D]):
    """One event: its CloudEvents attributes and its typed data."""

    data: D
    id: UUID = field(default_factory=uuid7)
    time: datetime = field(default_factory=lambda: datetime.now(UTC))
    correlation_id: str | None = None
    causation_id: str | None = None
    trace: dict[str, str] = field(default_factory=dict)

    @property
    def type(self) -> str:
        return self.data.event_type

    @property
    def subject(self) -> str:
        return self.data.aggregate_id()

    @property
    def trace_id(self) -> str | None:
        parent = self.trace.get("traceparent", "")
        return parent.split("-")[1] if parent.count("-") == 3 else None

    def headers(self) -> dict[str, str]:
        """The Kafka headers of binary mode (plus trace context)."""
        headers = {
            "ce_specversion": "1.0",
            "ce_id": str(self.id),
            "ce_source": self.data.source,
            "ce_type": self.type,
            "ce_time": self.time.isoformat(),
            "ce_subject": self.subject,
            "ce_correlationid": self.correlation_id or str(self.id),
            "content-type": CONTENT_TYPE,
        }
        if self.causation_id:
            headers["ce_causationid"] = self.causation_id
        headers.update({k: v for k, v in self.trace.items() if k in TRACE_HEADERS})
        return headers

    def body(self) -> bytes:
        return self.data.model_dump_json().encode()


def validate_outgoing(data: EventData) -> bytes:
    """The data's JSON body, refused if its own contract would reject it on the other side
    (where the consumer reads the same bytes with the same model)."""
    body = data.model_dump_json().encode()
    try:
        type(data).model_validate_json(body)
    except ValidationError as error:
        raise InvalidEvent(f"{data.event_type} does not match its schema: {error}") from error
    return body


def decode_headers(raw: list[tuple[str, bytes]] | None) -> dict[str, str]:
    return {key: value.decode("utf-8", "replace") for key, value in raw or []}


def parse_record(headers: dict[str, str], value: bytes | None) -> Event[Any]:
    """Read a Kafka record in binary mode; InvalidEvent says exactly what is wrong."""
    missing = [h for h in ("ce_specversion", "ce_id", "ce_type", "ce_source") if h not in headers]
    if missing:
        raise InvalidEvent(f"not a CloudEvent: missing headers {', '.join(missing)}")
    if headers["ce_specversion"] != "1.0":
        raise InvalidEvent(f"unsupported CloudEvents specversion {headers['ce_specversion']!r}")
    try:
        model = contract_for(headers["ce_type"])
    except KeyError as error:
        raise InvalidEvent(str(error)) from None
    try:
        data = model.model_validate(json.loads(value or b"null"))
        event_id = UUID(headers["ce_id"])
        time = datetime.fromisoformat(headers["ce_time"]) if "ce_time" in headers else None
    except (ValidationError, ValueError) as error:
        raise InvalidEvent(f"{headers['ce_type']} {headers['ce_id']}: {error}") from None
    return Event(
        data=data,
        id=event_id,
        time=time or datetime.now(UTC),
        correlation_id=headers.get("ce_correlationid"),
        causation_id=headers.get("ce_causationid"),
        trace={k: headers[k] for k in TRACE_HEADERS if k in headers},
    )
