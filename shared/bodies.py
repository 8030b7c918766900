"""Request models: strict (one rule for every service), and documented as strictly as they are
read."""

import re
from collections.abc import Sequence
from datetime import date, datetime
from typing import Annotated, Any
from uuid import UUID

from pydantic import (
    AfterValidator,
    AnyHttpUrl,
    BeforeValidator,
    ConfigDict,
    Field,
    Strict,
    WithJsonSchema,
)
from pydantic_core import PydanticCustomError

from shared.settings import get_settings

# --- request models: strict, and documented as strictly as they are read --------------------

# No coercion: 0 is not false, "1" is not 1, 1.0 is not 1; a field not in the model is refused.
STRICT = ConfigDict(extra="forbid", strict=True)


def _json_string(value: Any) -> Any:
    """JSON carries ids, dates and URLs as strings: a number or boolean never stands for one."""
    if isinstance(value, bool | int | float | bytes):
        raise PydanticCustomError("string_type", "Input should be a valid string")
    return value


def _json_number(value: Any) -> Any:
    """JSON Schema counts 742.0 as an integer; text and booleans are not numbers."""
    if isinstance(value, bool | str | bytes):
        raise PydanticCustomError("int_type", "Input should be a valid integer")
    return value


def _iso(pattern: str, kind: type, shape: str) -> Any:
    """Only ISO 8601 text (or the value itself) is a date or a time: not `0` or `1.5`, which
    pydantic's lax mode reads as seconds since 1970."""
    def check(value: Any) -> Any:
        if isinstance(value, kind) or isinstance(value, str) and re.fullmatch(pattern, value):
            return value
        raise PydanticCustomError("iso_format", f"Input should be {shape}")
    return check


# Read from their JSON (or query) text: a strict model would want the Python objects.
Uuid = Annotated[UUID, Strict(False), BeforeValidator(_json_string)]
Day = Annotated[date, Strict(False), BeforeValidator(
    _iso(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", date, "an ISO 8601 date, YYYY-MM-DD"))]
# RFC 3339 (OpenAPI's date-time): seconds and an offset required.
Moment = Annotated[datetime, Strict(False), BeforeValidator(_iso(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,6})?"
    r"([Zz]|[+-][0-9]{2}:[0-9]{2})", datetime, "an RFC 3339 date-time with an offset"))]


def whole(**bounds: int) -> Any:
    """An integer (742.0 included, as JSON Schema counts it) within `bounds` (ge, le, ...)."""
    # The bounds go first: after a validator pydantic could not document them.
    return Annotated[int, Field(**bounds), Strict(False), BeforeValidator(_json_number)]
# An http(s) URL as the validator takes it; `format: uri` alone would promise ftp: and mailto:.
HttpUrl = Annotated[AnyHttpUrl, Strict(False), BeforeValidator(_json_string), WithJsonSchema({
    "type": "string", "maxLength": 2083,
    # host names only (the last label not a number, which would make it an IPv4 address)
    "pattern": "^https?://([A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?\\.)*[A-Za-z]([A-Za-z0-9-]*"
               "[A-Za-z0-9])?(:[1-9][0-9]{0,3})?(/[!-~]*)?$"})]


def one_of(values: Sequence[str], *, what: str) -> Any:
    """Text that must be one of `values` (from configuration), documented as their enum."""
    allowed = frozenset(values)

    def known(value: str) -> str:
        if value not in allowed:
            raise ValueError(f"unknown {what} {value!r}; one of {', '.join(values)}")
        return value

    return Annotated[str, AfterValidator(known),
                     WithJsonSchema({"type": "string", "enum": list(values)})]


# The markets in force in this process (the programme's, and EXTRA_MARKETS): validated and
# documented as one enum wherever a market is read, on every service.
Market = one_of(get_settings().markets, what="market")


def drop_null_defaults(schema: dict[str, Any]) -> None:
    """An optional field that may be left out but not sent as null says so: no `default: null`
    where null is not one of its values (clients would send the default back)."""
    for prop in schema.get("properties", {}).values():
        if prop.get("default", ...) is None and not _takes_null(prop):
            del prop["default"]


def _takes_null(prop: dict[str, Any]) -> bool:
    return prop.get("type") == "null" or any(
        option.get("type") == "null" for option in prop.get("anyOf", []))
