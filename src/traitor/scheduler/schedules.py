"""Shared, memoised schedules: the payload the timing wheel keeps per armed job.

A million jobs typically use a few hundred distinct (cron, time zone) pairs, so
each pair is compiled once and shared. The memo (one interval per schedule) makes
a burst of jobs with the same schedule, due at the same instant, cost one cron
search, and so does arming many jobs of one schedule "from now".
"""

from __future__ import annotations

from functools import lru_cache
from zoneinfo import ZoneInfo

from traitor.domain.cron import CronExpression, parse_cron


#: ``_memo_after`` of a schedule that has answered nothing yet (above any instant).
_NO_MEMO = 1 << 62


class Schedule:
    __slots__ = ("expr", "zone", "_memo_after", "_memo_next")

    def __init__(self, expr: CronExpression, zone: ZoneInfo) -> None:
        self.expr = expr
        self.zone = zone
        self._memo_after = _NO_MEMO
        self._memo_next: int | None = None

    def next_after(self, after_ms: int) -> int | None:
        """The first fire strictly after ``after_ms``.

        The memo answers for the whole interval ``[_memo_after, _memo_next)``: the
        schedule has no fire in ``(_memo_after, _memo_next)``, so the first fire after
        any instant of that interval is ``_memo_next`` (``None``: no fire at all after
        ``_memo_after``). Arming many jobs of one schedule "from now" (API, start-up)
        then costs one cron search per fire of the schedule, not one per job.
        """
        if after_ms >= self._memo_after:
            nxt = self._memo_next
            if nxt is None or after_ms < nxt:
                return nxt
        nxt = self._memo_next = self.expr.next_fire(after_ms, self.zone)
        self._memo_after = after_ms
        return nxt

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
