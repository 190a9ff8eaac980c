"""Shared, memoised schedules: the payload the timing wheel keeps per armed job.

A million jobs typically use a few hundred distinct (cron, time zone) pairs, so
each pair is compiled once and shared. The one-entry memo makes a burst of
jobs with the same schedule, due at the same instant, cost one cron search.
"""

from __future__ import annotations

from functools import lru_cache
from zoneinfo import ZoneInfo

from traitor.domain.cron import CronExpression, parse_cron


class Schedule:
    __slots__ = ("expr", "zone", "_memo_after", "_memo_next")

    def __init__(self, expr: CronExpression, zone: ZoneInfo) -> None:
        self.expr = expr
        self.zone = zone
        self._memo_after = -1
        self._memo_next: int | None = None

    def next_after(self, after_ms: int) -> int | None:
        """The first fire strictly after ``after_ms``."""
        if after_ms != self._memo_after:
            self._memo_next = self.expr.next_fire(after_ms, self.zone)
            self._memo_after = after_ms
        return self._memo_next

    def fires_between(self, start_ms: int, end_ms: int, limit: int) -> list[int]:
        """Fires in ``(start_ms, end_ms]``, at most ``limit`` of them (the latest ones)."""
        found: list[int] = []
        at = self.expr.next_fire(start_ms, self.zone)
        while at is not None and at <= end_ms:
            found.append(at)
            if len(found) > limit:
                del found[0]
            at = self.expr.next_fire(at, self.zone)
        return found


@lru_cache(maxsize=4096)
def schedule_for(cron: str, timezone: str) -> Schedule:
    """The shared schedule of a cron expression in a time zone (raises CronError)."""
    return Schedule(parse_cron(cron), ZoneInfo(timezone))
