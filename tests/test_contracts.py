"""Event contracts: schemas generated from the models, events checked on the way out and in."""

import json
import uuid
from datetime import UTC, datetime

import jsonschema
import pytest

from shared.asyncapi import asyncapi_document
from shared.contracts import CONTRACTS
from shared.contracts.scouting import LeadSubmitted
from shared.events import Event, InvalidEvent, parse_record, validate_outgoing


def a_lead_submitted() -> LeadSubmitted:
    return LeadSubmitted(lead_id=uuid.uuid4(), kind="market_need", title="OCT for ENT",
                         target_market="JP", cluster="LITEK", submitted_by=uuid.uuid4(),
                         submitted_at=datetime.now(UTC))


def test_every_event_type_is_in_the_asyncapi_document_with_its_schema() -> None:
    document = asyncapi_document()
    titles = {m["name"] for m in document["components"]["messages"].values()}
    assert titles == set(CONTRACTS)
    message = document["components"]["messages"]["scouting_lead_submitted"]
    jsonschema.Draft202012Validator.check_schema(message["payload"])
    jsonschema.validate(json.loads(a_lead_submitted().model_dump_json()), message["payload"])
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"lead_id": "x"}, message["payload"])
    assert "scouting.leads" in document["channels"]


def test_an_event_read_back_from_its_headers_is_the_same_event() -> None:
    event = Event(data=a_lead_submitted(), trace={"traceparent": f"00-{'a' * 32}-{'b' * 16}-01"})
    again = parse_record(event.headers(), event.body())
    assert (again.id, again.type, again.data, again.trace_id) == (
        event.id, event.type, event.data, "a" * 32)
    assert again.correlation_id == str(event.id)


def test_fields_added_later_to_a_v1_event_are_ignored_by_older_consumers() -> None:
    event = Event(data=a_lead_submitted())
    body = json.loads(event.body()) | {"sentiment": "keen"}
    assert parse_record(event.headers(), json.dumps(body).encode()).data == event.data


@pytest.mark.parametrize(("change", "message"), [
    (lambda h, b: ({k: v for k, v in h.items() if k != "ce_id"}, b), "missing headers ce_id"),
    (lambda h, b: (h | {"ce_type": "eu.lasergo.nobody.thing.v1"}, b), "unknown event type"),
    (lambda h, b: (h | {"ce_specversion": "0.3"}, b), "specversion"),
    (lambda h, b: (h, b"{not json"), "lead.submitted"),
    (lambda h, b: (h, b'{"lead_id": "not-a-uuid"}'), "lead_id"),
])
def test_an_unreadable_event_is_refused_with_a_clear_reason(change, message) -> None:
    event = Event(data=a_lead_submitted())
    headers, body = change(event.headers(), event.body())
    with pytest.raises(InvalidEvent, match=message):
        parse_record(headers, body)


def test_publishing_data_that_breaks_its_contract_is_an_error() -> None:
    broken = LeadSubmitted.model_construct(**(a_lead_submitted().model_dump() | {"kind": "rumour"}))
    with pytest.raises(InvalidEvent, match="kind"):
        validate_outgoing(broken)
