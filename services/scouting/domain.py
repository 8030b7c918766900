"""Scouting rules, free of I/O: the lead workflow, who may do what, and how fields are cleaned."""

import hashlib
import re
import unicodedata
from collections.abc import Collection
from datetime import datetime, timedelta
from typing import Any, NamedTuple, Protocol
from urllib.parse import urlsplit
from uuid import UUID

from shared.auth import Caller

# The lead workflow. Terminal states have no way out.
TRANSITIONS: dict[str, frozenset[str]] = {
    "submitted": frozenset({"qualified", "rejected", "duplicate"}),
    "qualified": frozenset({"matched", "closed"}),
    "matched": frozenset({"converted", "closed"}),
    "rejected": frozenset(),
    "duplicate": frozenset(),
    "converted": frozenset(),
    "closed": frozenset(),
}
OPEN_STATUSES = frozenset({"submitted", "qualified", "matched"})
# Reasons events may carry; anything else a manager writes stays in scouting as "other".
REASON_CATEGORIES = frozenset({
    "out_of_scope", "insufficient_evidence", "not_actionable", "no_fit",
    "counterpart_unresponsive", "lost_to_competitor", "converted_elsewhere",
})
TRIAGE_ROLES = frozenset({"manager", "admin"})
# Words that say nothing about which organisation it is.
_LEGAL_FORMS = {"inc", "ltd", "llc", "gmbh", "sa", "sas", "sarl", "ag", "co", "corp", "kk",
                "bv", "oy", "ab", "plc", "pty", "the", "limited", "corporation", "company"}
_NOT_TAG = re.compile(r"[^a-z0-9+#.]+")
_WORD = re.compile(r"[a-z0-9]+")


class TransitionRefused(ValueError):
    """The workflow does not allow this move; the message says why and what is allowed."""


def check_transition(current: str, target: str) -> None:
    if target not in TRANSITIONS.get(current, frozenset()):
        allowed = ", ".join(sorted(TRANSITIONS.get(current, ()))) or "none (final state)"
        raise TransitionRefused(
            f"a {current} lead cannot become {target}; allowed from {current}: {allowed}")


def reason_category(reason: str | None) -> str:
    """The reason as an event may tell it: a known category, never a manager's free text."""
    return reason if reason in REASON_CATEGORIES else "other"


def normalise_technology(tag: str) -> str:
    """'  Optical Coherence  Tomography ' -> 'optical-coherence-tomography'."""
    return _NOT_TAG.sub("-", tag.strip().lower()).strip("-")


def normalise_technologies(tags: list[str]) -> list[str]:
    """Normalised, de-duplicated, in the order given; empty tags dropped."""
    seen: dict[str, None] = {}
    for tag in tags:
        if normalised := normalise_technology(tag):
            seen.setdefault(normalised, None)
    return list(seen)


def unique(values: list[str]) -> list[str]:
    return list(dict.fromkeys(values))


def organisation_key(name: str | None) -> str | None:
    """'Nikon Healthcare Co., Ltd.' and 'NIKON HEALTHCARE' both give 'healthcare nikon'."""
    if not name:
        return None
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode().lower()
    ascii_name = ascii_name.replace(".", "")  # "K.K." and "KK", "Co." and "Co" alike
    words = sorted(set(_WORD.findall(ascii_name)) - _LEGAL_FORMS)
    return " ".join(words) or None


def website_domain(url: str | None) -> str | None:
    """'https://www.Example.co.jp/en/' -> 'example.co.jp'."""
    if not url:
        return None
    host = urlsplit(url if "//" in url else f"//{url}").hostname or ""
    return host.lower().removeprefix("www.") or None


class OwnedLead(Protocol):
    cluster: str
    submitted_by: UUID


def visible_to(lead: OwnedLead, caller: Caller) -> bool:
    """A scout sees its own leads; partners and managers their cluster's; ops and admin all."""
    if caller.role == "scout":
        return lead.submitted_by == caller.key_id
    return caller.may_act_for(lead.cluster)


def may_edit(lead: OwnedLead, caller: Caller) -> bool:
    """Scouts edit their own leads, partners and managers their cluster's; ops never."""
    return caller.role != "ops" and visible_to(lead, caller)


def may_triage(lead: OwnedLead, caller: Caller) -> bool:
    """Qualifying, rejecting and closing are a cluster manager's call."""
    return caller.role in TRIAGE_ROLES and caller.may_act_for(lead.cluster)


def is_stale(*, status: str, last_activity_at: datetime, now: datetime, after: timedelta) -> bool:
    """An open lead nobody acted on for `after` is stale until renewed or moved on."""
    return status in OPEN_STATUSES and now - last_activity_at > after


# Words nearly every lead's text holds: looking for them finds every lead, so the duplicate
# search neither keeps nor asks for them.
COMMON_WORDS = frozenset({"a", "an", "and", "at", "by", "for", "from", "in", "into", "of", "on",
                          "or", "per", "the", "to", "via", "with"})
_TERM = re.compile(r"\w+")
MAX_LEXEME_BYTES = 2046


def title_terms(title: str) -> list[str]:
    """The title's telling words ('OCT probe for the ENT' -> oct, probe, ent), accented words
    whole: a look-alike holds every one of them."""
    return [w for w in _TERM.findall(title.lower()) if w not in COMMON_WORDS]


class TitleKeys(NamedTuple):
    """What the duplicate search finds a lead by: 64 bits of the MD5 of its title's set of
    telling words (`whole`), and of that set less each one word (`shorter`, for titles of
    three words or more), scoped to its cluster and market ('LITEK/SG/ent oct probe')."""

    whole: int | None
    shorter: list[int]


def _title_key(scope: str, words: list[str]) -> int:
    return int.from_bytes(hashlib.md5(f"{scope}{' '.join(words)}".encode()).digest()[:8],
                          "big", signed=True)


def lead_title_keys(*, cluster: str, market: str, title: str) -> TitleKeys:
    words = sorted(set(title_terms(title)))
    if not words:
        return TitleKeys(None, [])
    scope = f"{cluster}/{market}/"
    shorter = [words[:i] + words[i + 1:] for i in range(len(words))] if len(words) >= 3 else []
    return TitleKeys(_title_key(scope, words), [_title_key(scope, s) for s in shorter])


def titles_alike(old: TitleKeys, new: TitleKeys) -> bool:
    """The duplicate search's rule for titles (in SQL in `queries.duplicates`): the same
    telling words in any order, or one more or one fewer (the longer title of three words or
    more). A replaced word is not alike: the titles of a trade would mostly be look-alikes of
    each other, each costing the wording check."""
    return new.whole is not None and (
        old.whole == new.whole or old.whole in new.shorter or new.whole in old.shorter)


def lead_alike_words(*, title: str, description: str, counterpart_name: str | None) -> list[str]:
    """What near-identical wording is judged on: the telling words of a lead's title,
    description and counterpart. Not scoped: only leads of one cluster and market are
    compared, and no index holds them."""
    text = f"{title} {description} {counterpart_name or ''}".lower()
    words = set(_TERM.findall(text)) - COMMON_WORDS
    # A tsvector lexeme holds at most 2046 bytes; a longer "word" tells nothing anyway.
    return [word for word in words if len(word.encode()) <= MAX_LEXEME_BYTES]


def search_columns(*, cluster: str, market: str, title: str, description: str,
                   counterpart_name: str | None) -> dict[str, Any]:
    """A lead's columns derived from its text, for the duplicate check and the search: set on
    every save and every correction."""
    keys = lead_title_keys(cluster=cluster, market=market, title=title)
    return {"title_key": keys.whole, "title_subkeys": keys.shorter or None,
            "alike_words": lead_alike_words(title=title, description=description,
                                            counterpart_name=counterpart_name) or None}


def search_query(text: str) -> str | None:
    """A search (`q`) as a tsquery over leads' `alike_words`, None if it names no word.

    Every word is required; `-word` excludes, `or` between two words takes either. Words are
    split as a lead's are (`near-infrared` asks for near and infrared; small words are left
    out), and a quoted phrase asks for its words, since leads keep words without positions.
    Lexemes are quoted here and the result is cast, not parsed: what is asked is what is
    kept."""
    groups: list[list[str]] = [[]]
    for chunk in text.replace('"', " ").lower().split():
        if chunk == "or":
            if groups[-1]:
                groups.append([])
            continue
        negated = "!" if chunk.startswith("-") else ""
        groups[-1] += [f"{negated}'{word}'" for word in _TERM.findall(chunk)
                       if word not in COMMON_WORDS]
    alternatives = [" & ".join(terms) for terms in groups if terms]
    return " | ".join(f"( {alternative} )" for alternative in alternatives) or None


# Near-identical wording: at least this share of the two leads' telling words in common
# (Jaccard), the way a scout re-types the same lead. The submit statement asks the same in SQL.
SIMILAR_WORDS = 0.75


def similar_words(a: Collection[str] | None, b: Collection[str] | None) -> bool:
    """Near-identical wording: two leads' `lead_alike_words` (one cluster and market)."""
    if not a or not b:
        return False
    wa, wb = set(a), set(b)
    return len(wa & wb) >= SIMILAR_WORDS * len(wa | wb)


class LeadLike(Protocol):
    counterpart_key: str | None
    counterpart_domain: str | None
    alike_words: list[str] | None


def duplicate_reason(new: LeadLike, old: LeadLike) -> str | None:
    """Why `old` looks like the same lead as `new` (same market and cluster assumed), or None."""
    if new.counterpart_key and new.counterpart_key == old.counterpart_key:
        return "same_counterpart"
    if new.counterpart_domain and new.counterpart_domain == old.counterpart_domain:
        return "same_website"
    if similar_words(new.alike_words, old.alike_words):
        return "similar_text"
    return None


# Attachments: what a file must start with to be what its Content-Type says.
ATTACHMENT_SIGNATURES = {
    "application/pdf": (b"%PDF-",),
    "image/png": (b"\x89PNG\r\n\x1a\n",),
    "image/jpeg": (b"\xff\xd8\xff",),
    "text/plain": (),  # any UTF-8 text
}
ATTACHMENT_MAX_BYTES = 5 * 1024 * 1024
ATTACHMENTS_PER_LEAD = 10
_SAFE_NAME = re.compile(r"[^A-Za-z0-9._ -]+")


def attachment_problem(content_type: str, data: bytes) -> str | None:
    """Why this file is refused, or None: type allowed, content matches it, size in limits."""
    if content_type not in ATTACHMENT_SIGNATURES:
        accepted = ", ".join(ATTACHMENT_SIGNATURES)
        return f"type {content_type!r} is not accepted; send one of {accepted}"
    if not data:
        return "the file is empty"
    if len(data) > ATTACHMENT_MAX_BYTES:
        return f"files are limited to {ATTACHMENT_MAX_BYTES} bytes"
    signatures = ATTACHMENT_SIGNATURES[content_type]
    if signatures and not data.startswith(signatures):
        return f"the content is not {content_type}"
    if not signatures:
        try:
            data.decode("utf-8")
        except UnicodeDecodeError:
            return "text files must be UTF-8"
    return None


def safe_filename(name: str | None) -> str:
    cleaned = _SAFE_NAME.sub("_", (name or "").rsplit("/", 1)[-1]).strip(" .")
    return cleaned[:120] or "attachment"
