"""Times as people type them: ISO-8601 (UTC unless it says otherwise) or integer ns.

>>> parse_time_ns("1700000000000000000")
1700000000000000000
>>> parse_time_ns("2026-01-05T12:00")
1767614400000000000
>>> parse_time_ns("2026-01-05T12:00:00.5+01:00")
1767610800500000000
>>> parse_time_ns("yesterday")
Traceback (most recent call last):
...
ValueError: expected an ISO time like 2026-01-05T12:00 or ns since epoch, got 'yesterday'
"""

from __future__ import annotations

from datetime import UTC, datetime

from tripwire.model import NS_PER_SECOND


def parse_time_ns(text: str) -> int:
    text = text.strip()
    if text.lstrip("-").isdigit():
        return int(text)
    try:
        t = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"expected an ISO time like 2026-01-05T12:00 or ns since epoch, "
                         f"got {text!r}") from None
    t = t if t.tzinfo else t.replace(tzinfo=UTC)
    return int(t.timestamp()) * NS_PER_SECOND + t.microsecond * 1_000
