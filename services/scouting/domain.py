"""Scouting rules, free of I/O: markets, application areas, and how a lead's fields are cleaned."""

import re
from typing import Protocol
from uuid import UUID

from shared.auth import Caller

_NOT_TAG = re.compile(r"[^a-z0-9+#.]+")


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


class OwnedLead(Protocol):
    cluster: str
    submitted_by: UUID


def visible_to(lead: OwnedLead, caller: Caller) -> bool:
    """A scout sees its own leads; partners and managers their cluster's; ops and admin all."""
    if caller.role == "scout":
        return lead.submitted_by == caller.key_id
    return caller.may_act_for(lead.cluster)
