"""Bulk import, the rows: an upload spooled to disk, read row by row (CSV or NDJSON), each row
validated into a lead exactly as `POST /v1/leads` would build it, or into its reasons."""

import contextlib
import csv
import hashlib
import tempfile
import time
from collections.abc import AsyncIterable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, BinaryIO

from pydantic import ValidationError

from services.scouting import handlers
from services.scouting.contacts import ContactVault
from services.scouting.models import LeadCreate, NewLead
from shared.auth import Caller
from shared.bodies import one_of
from shared.problems import NUL_REFUSED, Problem
from shared.programme import CLUSTERS

FORMATS = {"text/csv": "csv", "application/x-ndjson": "ndjson"}  # Content-Type -> format
COLUMNS = (
    "kind", "title", "description", "target_market", "application_areas", "technologies",
    "counterpart_name", "counterpart_website", "counterpart_country", "contact_name",
    "contact_email", "contact_phone", "urgency", "estimated_value_eur", "source", "source_date",
    "evidence_links", "min_trl", "requires_clearance", "duplicate_check",
)
REQUIRED_COLUMNS = ("kind", "title", "target_market")
LIST_COLUMNS = frozenset({"application_areas", "technologies", "evidence_links"})
NUMBER_COLUMNS = frozenset({"estimated_value_eur", "min_trl"})
BOOLEAN_COLUMNS = frozenset({"requires_clearance"})  # true / false
NESTED = {"counterpart_": "counterpart", "contact_": "counterpart_contact"}  # CSV prefix -> field
LIST_SEPARATOR = ";"
CLUSTER_CODES = frozenset(cluster.code for cluster in CLUSTERS)
ClusterCode = one_of(sorted(CLUSTER_CODES), what="cluster")
SPOOL_PREFIX = "gvn-lead-import-"  # temporary files of uploads, in the system's temp folder
MAX_ROW_BYTES = 65536  # one NDJSON row may be as large as one POST body
EMPTY = "The upload holds no rows (a CSV file needs a header line and a row under it)."
Raw = dict[str, str | None] | bytes | None  # a CSV row, an NDJSON line, or an oversized line


@dataclass
class Row:
    """One row of an upload after validation: the lead it becomes, or why it cannot."""

    number: int
    lead: NewLead | None = None
    check_duplicates: bool = False
    errors: list[dict[str, str]] = field(default_factory=list)


def format_of(content_type: str) -> str:
    """`csv` or `ndjson` from the upload's Content-Type (UTF-8 only); 415 for anything else."""
    media_type, *params = [part.strip().lower() for part in content_type.split(";")]
    charset = next((p.split("=", 1)[1].strip('" ') for p in params if p.startswith("charset=")),
                   "utf-8")
    if media_type not in FORMATS or charset not in ("utf-8", "utf8"):
        raise Problem(415, "Unsupported media type", "Send the file as text/csv or "
                      "application/x-ndjson, UTF-8 encoded.", accepted=list(FORMATS))
    return FORMATS[media_type]


def importer_for(caller: Caller, cluster: str | None) -> Caller:
    """The caller bound to the cluster its leads go to: its own, or the one an admin names."""
    if caller.cluster is None:
        if cluster not in CLUSTER_CODES:
            raise Problem(403, "Cluster required", "This key belongs to no cluster: name the "
                          "one the leads go to in `cluster`.", clusters=sorted(CLUSTER_CODES))
        return replace(caller, cluster=cluster)
    if cluster not in (None, caller.cluster):
        raise Problem(403, "Forbidden", f"This key imports into its own cluster, {caller.cluster}.")
    return caller


async def spool(chunks: AsyncIterable[bytes], *, max_bytes: int) -> tuple[Path, str]:
    """Write the upload to a temporary file as it arrives: (path, sha256 of its bytes)."""
    digest, size = hashlib.sha256(), 0
    handle = tempfile.NamedTemporaryFile(prefix=SPOOL_PREFIX, delete=False)  # noqa: SIM115
    path = Path(handle.name)
    try:
        with handle:
            async for chunk in chunks:
                size += len(chunk)
                if size > max_bytes:
                    raise Problem(413, "Upload too large",
                                  f"An import upload is limited to {max_bytes} bytes.")
                digest.update(chunk)
                handle.write(chunk)  # a page-cache write of one chunk: microseconds
    except BaseException:
        discard(path)
        raise
    return path, digest.hexdigest()


def discard(path: Path) -> None:
    """Remove a spooled upload (an unlink: no need for a thread)."""
    path.unlink(missing_ok=True)


def discard_stale_spools(*, older_than: timedelta) -> int:
    """Remove uploads a crashed process left behind; a live job's file is minutes old."""
    cutoff, removed = time.time() - older_than.total_seconds(), 0
    for path in Path(tempfile.gettempdir()).glob(f"{SPOOL_PREFIX}*"):
        with contextlib.suppress(FileNotFoundError):
            if path.stat().st_mtime < cutoff:
                discard(path)
                removed += 1
    return removed


def count_rows(path: Path, *, fmt: str, limit: int) -> int:
    """Rows in the upload, read the way the import will; refuses empty and oversized files."""
    total = 0
    for total, _ in read_rows(path, fmt=fmt):  # noqa: B007 - only the count matters
        if total > limit:
            raise Problem(413, "Too many rows",
                          f"An import holds at most {limit} rows; split the file.", max_rows=limit)
    if total == 0:
        raise Problem(422, "Empty import", EMPTY)
    return total


def read_rows(path: Path, *, fmt: str) -> Iterator[tuple[int, Raw]]:
    """(row number, raw row) for every non-blank row; numbers start at 1 after any header."""
    return _csv_rows(path) if fmt == "csv" else _ndjson_rows(path)


def _csv_rows(path: Path) -> Iterator[tuple[int, Raw]]:
    number = 0
    try:
        with path.open(newline="", encoding="utf-8-sig") as text:
            reader = csv.DictReader(text)
            reader.fieldnames = _checked_header(reader.fieldnames)
            for row in reader:
                if any(value and value.strip() for key, value in row.items() if key):
                    number += 1
                    yield number, row
    except UnicodeDecodeError as error:
        raise Problem(422, "Not UTF-8",
                      f"The file must be UTF-8 text ({error.reason} after row {number}).") from None
    except csv.Error as error:
        raise Problem(422, "Malformed CSV", f"After row {number}: {error}.") from None


def _checked_header(header: list[str] | None) -> list[str]:
    if not header:
        raise Problem(422, "Empty import", EMPTY)
    names = [name.strip().lower() for name in header]
    unknown = [name for name in names if name not in COLUMNS]
    missing = [name for name in REQUIRED_COLUMNS if name not in names]
    if unknown or missing or len(set(names)) != len(names):
        raise Problem(422, "Bad CSV header", "The first line must name the columns, each once: "
                      f"required {', '.join(REQUIRED_COLUMNS)}; optional the rest of "
                      f"{', '.join(COLUMNS)}.", unknown=unknown, missing=missing)
    return names


def _ndjson_rows(path: Path) -> Iterator[tuple[int, Raw]]:
    number = 0
    with path.open("rb") as lines:
        for line in _bounded_lines(lines):
            if line is None or line.strip():
                number += 1
                yield number, line and line.removeprefix(b"\xef\xbb\xbf")  # a BOM is no JSON


def _bounded_lines(lines: BinaryIO) -> Iterator[bytes | None]:
    """Lines of at most MAX_ROW_BYTES; a longer one is skipped and yields None, so memory stays
    flat whatever the file holds."""
    while line := lines.readline(MAX_ROW_BYTES + 1):
        if len(line) <= MAX_ROW_BYTES or line.endswith(b"\n"):
            yield line
            continue
        while (rest := lines.readline(MAX_ROW_BYTES)) and not rest.endswith(b"\n"):
            pass
        yield None


def csv_record(cells: dict[str, str | None]) -> dict[str, Any]:
    """A CSV row in LeadCreate's shape: blank cells left out, lists split on ';'."""
    record: dict[str, Any] = {}
    for column, text in cells.items():
        value = (text or "").strip()
        if not value:
            continue
        prefix = next((p for p in NESTED if column.startswith(p)), None)
        if column in NUMBER_COLUMNS and value.isascii() and value.isdigit():
            record[column] = int(value)  # CSV has only text; else the model says what is wrong
        elif column in BOOLEAN_COLUMNS and value.lower() in ("true", "false"):
            record[column] = value.lower() == "true"
        elif column in LIST_COLUMNS:
            record[column] = [p.strip() for p in value.split(LIST_SEPARATOR) if p.strip()]
        elif prefix:
            record.setdefault(NESTED[prefix], {})[column.removeprefix(prefix)] = value
        else:
            record[column] = value
    return record


def validate(raw: Raw, *, fmt: str) -> LeadCreate | list[dict[str, str]]:
    """The row as a LeadCreate, or its errors as [{location, message}]."""
    if raw is None:
        return [_error("", f"The row is longer than {MAX_ROW_BYTES} bytes.")]
    if isinstance(raw, dict) and (shape := _shape_error(raw)):
        return [shape]
    if nul := _nul_error(raw):
        return [nul]
    try:
        if isinstance(raw, bytes):
            return LeadCreate.model_validate_json(raw)
        return LeadCreate.model_validate(csv_record(raw))
    except ValidationError as invalid:
        return [_error(_location(e["loc"], fmt=fmt), _message(e)) for e in invalid.errors()]


def _shape_error(cells: dict[str | None, Any]) -> dict[str, str] | None:
    columns = sum(1 for key in cells if key is not None)
    if None in cells:  # DictReader keeps values beyond the header under the key None
        return _error("", f"The row has more values than the header's {columns} columns.")
    if any(value is None for value in cells.values()):
        return _error("", f"The row has fewer values than the header's {columns} columns.")
    return None


def _nul_error(raw: dict[str, Any] | bytes) -> dict[str, str] | None:
    """Postgres text cannot hold NUL: such a row is refused before it reaches any query."""
    if isinstance(raw, bytes):
        found = b"\x00" in raw or b"\\u0000" in raw
        return _error("", NUL_REFUSED) if found else None
    column = next((key for key, value in raw.items() if "\x00" in value), None)
    return _error(column, NUL_REFUSED) if column else None


def _location(loc: tuple[int | str, ...], *, fmt: str) -> str:
    """Where the error is, in the file's own terms: a CSV column, or a JSON path."""
    if fmt == "ndjson":
        return ".".join(str(part) for part in loc)
    head, *rest = [str(part) for part in loc] or [""]
    prefix = next((p for p, name in NESTED.items() if name == head), None)
    return f"{prefix}{rest[0]}" if prefix and rest else head


def _message(error: dict[str, Any]) -> str:
    shown = error.get("input")
    if isinstance(shown, str) and len(shown) <= 80 and error["type"] != "json_invalid":
        return f"{error['msg']} (got {shown!r})"
    return error["msg"]


def _error(location: str, message: str) -> dict[str, str]:
    return {"location": location, "message": message}


def prepare(raw_rows: Iterator[tuple[int, Raw]], *, count: int, fmt: str, caller: Caller,
            vault: ContactVault) -> list[Row]:
    """The next `count` rows, validated and built into leads (CPU work: runs in a thread)."""
    rows = []
    for number, raw in raw_rows:
        rows.append(prepare_row(number, raw, fmt=fmt, caller=caller, vault=vault))
        if len(rows) == count:
            break
    return rows


def prepare_row(number: int, raw: Raw, *, fmt: str, caller: Caller, vault: ContactVault) -> Row:
    """One row: the lead a POST of it would save (not yet checked for duplicates), or errors."""
    body = validate(raw, fmt=fmt)
    if isinstance(body, list):
        return Row(number, errors=body)
    try:
        lead = NewLead(**handlers.lead_fields(body, caller, vault=vault, now=datetime.now(UTC)))
    except Problem as refused:
        return Row(number, errors=[_error("counterpart_contact", refused.detail)])
    return Row(number, lead=lead, check_duplicates=body.duplicate_check == "warn")
