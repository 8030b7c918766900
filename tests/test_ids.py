"""Time-ordered ids (shared.ids): what indexes and readers of leads and events rely on."""

import time
from datetime import UTC, datetime

from shared.events import Event
from shared.ids import uuid7
from tests.test_contracts import a_lead_submitted


def test_ids_are_version_7_and_carry_the_time_they_were_made() -> None:
    before = time.time_ns() // 1_000_000
    made = uuid7()
    after = time.time_ns() // 1_000_000
    assert (made.version, made.variant) == (7, "specified in RFC 4122")
    assert before <= made.int >> 80 <= after


def test_ids_made_later_sort_after_earlier_ones_and_never_repeat() -> None:
    first = [uuid7() for _ in range(1000)]
    time.sleep(0.002)
    second = [uuid7() for _ in range(1000)]
    assert max(first) < min(second)  # ordered across milliseconds, random within one
    assert len(set(first + second)) == 2000


def test_an_events_id_is_time_ordered() -> None:
    event = Event(data=a_lead_submitted())
    made_at = datetime.fromtimestamp((event.id.int >> 80) / 1000, UTC)
    assert event.id.version == 7
    assert abs((event.time - made_at).total_seconds()) < 1
