"""The base of every event's `data`: typed, described, and free of personal data."""

from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict


class EventData(BaseModel):
    """An event's payload. Subclasses set the CloudEvents type, topic and producing service.

    Consumers ignore unknown fields, so a producer may add optional fields within a `.v1` type.
    """

    model_config = ConfigDict(extra="ignore", frozen=True)

    event_type: ClassVar[str]
    topic: ClassVar[str]
    source: ClassVar[str]

    def aggregate_id(self) -> str:
        """The Kafka key and CloudEvents subject: one aggregate's events stay in order."""
        raise NotImplementedError

    @classmethod
    def json_schema(cls) -> dict[str, Any]:
        schema = cls.model_json_schema()
        schema["$id"] = f"urn:gvn:event:{cls.event_type}"
        schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
        return schema
