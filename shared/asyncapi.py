"""The AsyncAPI 3.0 document of the platform's events, generated from the contracts."""

from functools import cache
from typing import Any

from shared.contracts import CONTRACTS

CE_HEADERS = {
    "type": "object",
    "required": ["ce_specversion", "ce_id", "ce_source", "ce_type", "ce_time", "ce_subject",
                 "content-type"],
    "properties": {
        "ce_specversion": {"const": "1.0"},
        "ce_id": {"type": "string", "format": "uuid"},
        "ce_source": {"type": "string", "examples": ["/gvn/scouting"]},
        "ce_type": {"type": "string"},
        "ce_time": {"type": "string", "format": "date-time"},
        "ce_subject": {"type": "string", "description": "The aggregate id (also the Kafka key)."},
        "ce_correlationid": {"type": "string", "description": "The first event of the flow."},
        "ce_causationid": {"type": "string", "description": "The event that caused this one."},
        "content-type": {"const": "application/json"},
        "traceparent": {"type": "string", "description": "W3C trace context."},
        "tracestate": {"type": "string"},
    },
}


@cache  # the contracts are fixed at import: built once, served as is
def asyncapi_document() -> dict[str, Any]:
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    for event_type, model in sorted(CONTRACTS.items()):
        name = event_type.removeprefix("eu.lasergo.").removesuffix(".v1").replace(".", "_")
        messages[name] = {
            "name": event_type, "title": event_type, "summary": (model.__doc__ or "").strip(),
            "contentType": "application/json", "headers": CE_HEADERS,
            "payload": model.json_schema(),
        }
        channel = channels.setdefault(model.topic, {"address": model.topic, "messages": {}})
        channel["messages"][name] = {"$ref": f"#/components/messages/{name}"}
        operations[f"publish_{name}"] = {
            "action": "send", "channel": {"$ref": f"#/channels/{model.topic}"},
            "messages": [{"$ref": f"#/channels/{model.topic}/messages/{name}"}],
            "summary": f"{model.source} publishes {event_type}",
        }
    return {
        "asyncapi": "3.0.0",
        "info": {"title": "Global Value Network events", "version": "1.0.0",
                 "description": "CloudEvents 1.0 in Kafka binary mode; key = aggregate id."},
        "defaultContentType": "application/json",
        "channels": channels, "operations": operations, "components": {"messages": messages},
    }
