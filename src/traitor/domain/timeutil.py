"""Time conventions shared by every layer.

Instants inside Traitor are integer milliseconds since the Unix epoch (UTC):
they compare exactly, hash cheaply and survive every store unchanged.
"""

from __future__ import annotations

import time
from datetime import datetime, timezone

#: ``execAt`` values above this are milliseconds, below it seconds (SPEC §1).
MILLISECONDS_THRESHOLD = 10**11


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def to_rfc3339(ms: int | None) -> str | None:
    """Render an instant as RFC 3339 UTC with millisecond precision."""
    if ms is None:
        return None
    dt = datetime.fromtimestamp(ms / 1000, tz=timezone.utc)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def parse_rfc3339(text: str) -> int:
    """Parse an RFC 3339 / ISO 8601 timestamp; naive values are taken as UTC."""
    value = text.strip()
    if value.endswith(("Z", "z")):
        value = value[:-1] + "+00:00"
    dt = datetime.fromisoformat(value)
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return int(dt.timestamp() * 1000)
