"""Ids of the rows written most (leads, events): UUIDs that grow with time (version 7).

A random UUID (version 4) lands on a random page of every index that holds it, so each insert
into a large table reads, dirties and logs a page of its own per such index; a time-ordered
one lands at the right edge, as a sequence does. It reveals only when the row was made, which
the rows show anyway.
"""

import os
import time
from uuid import UUID


def uuid7() -> UUID:
    """RFC 9562 version 7: 48 bits of Unix time in milliseconds, then 74 random bits."""
    milliseconds = time.time_ns() // 1_000_000
    random = int.from_bytes(os.urandom(10), "big")
    return UUID(int=(milliseconds & (1 << 48) - 1) << 80 | 0x7 << 76
                | (random >> 68) << 64 | 0b10 << 62 | random & (1 << 62) - 1)
