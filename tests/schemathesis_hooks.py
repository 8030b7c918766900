"""Schemathesis hooks for the conformance runs (loaded through SCHEMATHESIS_HOOKS)."""

import schemathesis


@schemathesis.serializer("text/csv", "application/x-ndjson")
def text_file(ctx: object, value: object) -> bytes | None:
    """A generated file as its UTF-8 text; a value that is no text (a negative case) as no
    body at all, since as text it would be a file like any other."""
    return value.encode() if isinstance(value, str) else None
