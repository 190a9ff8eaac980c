"""Next-fire search for compiled cron expressions.

The search runs in two steps:

1. find the first matching *wall-clock* second at or after a naive wall time,
   using one integer bitmask per field and one day mask per (year, month) that
   already folds in ``L``, ``LW``, ``nW``, ``nL``, ``d#n`` and the Vixie OR rule;
2. map that wall time to a real instant in the job's time zone, walking the
   zone's UTC-offset transitions explicitly (SPEC §1, daylight saving):

   * **fixed-hour jobs** (hour field not starting with ``*``): each matching wall
     time fires once.  A wall time inside a spring-forward gap fires at the first
     instant after the gap (all gap times of one transition share that instant,
     so it fires once); a wall time inside a fall-back overlap fires on its first
     occurrence only.
   * **elapsed-time jobs** (hour field ``*`` or ``*/n`` — anything starting with
     ``*``): a real instant fires when its wall-clock reading matches.  Through a
     fall-back overlap they fire on both passes (each at a different instant);
     wall times inside a gap never occur, so they do not fire.  ``@hourly`` is
     such a job.

Instants are integer milliseconds since the Unix epoch at the API, whole
seconds inside.  Only wall times from 1970-01-01 to 2199-12-31 are searched; after
that :meth:`CronExpression.next_fire` answers ``None``.

UTC offsets per zone are found once per (zone, year) by probing the zone every
day and bisecting each change to the second, then cached.  Two offset changes
less than a day apart that cancel each other would be missed (no zone since
1970 has one).
"""

from __future__ import annotations

from bisect import bisect_right
from datetime import date, datetime, timedelta, timezone, tzinfo

__all__ = ["CronExpression", "YEAR_MIN", "YEAR_MAX"]

#: First and last year a cron expression can fire in.
YEAR_MIN = 1970
YEAR_MAX = 2199

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_EPOCH_DATE = date(1970, 1, 1)

#: days since the epoch of the first day of every month, 1970-01 … 2200-12, plus 2201-01
_MONTH_DAYS: list[int] = [
    (date(y, m, 1) - _EPOCH_DATE).days for y in range(YEAR_MIN, YEAR_MAX + 2) for m in range(1, 13)
] + [(date(YEAR_MAX + 2, 1, 1) - _EPOCH_DATE).days]

#: first year of the offset tables (wall times of 1970 can be instants of 1969 and 1971 …)
_TY0 = YEAR_MIN - 1
#: epoch seconds of 1 January (UTC) of every year from 1969 to 2203
_YEAR_STARTS: list[int] = [(date(y, 1, 1) - _EPOCH_DATE).days * 86400 for y in range(_TY0, YEAR_MAX + 5)]
_NTABLES = len(_YEAR_STARTS) - 1
#: no fire can lie at or after this instant (2202-01-01T00:00Z)
_LO_MAX = _YEAR_STARTS[YEAR_MAX + 3 - _TY0]

#: _EVERY7[d] = bits d, d+7, d+14, … up to 31
_EVERY7 = [0] + [sum(1 << x for x in range(d, 32, 7)) for d in range(1, 8)]

_DAY_CACHE_MAX = 240

# ------------------------------------------------------------------ zone offsets

#: zone -> per-year tables (None until first used); table = (transition instants, offsets)
_ZONES: dict[tzinfo, list[tuple[tuple[int, ...], tuple[int, ...]] | None]] = {}


def _offset(tz: tzinfo, t: int) -> int:
    delta = (_EPOCH + timedelta(seconds=t)).astimezone(tz).utcoffset()
    return 0 if delta is None else delta.days * 86400 + delta.seconds


def _build_year(tz: tzinfo, i: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Offset changes at instants X with start <= X < end of year ``_TY0 + i``.

    ``offsets[k]`` is the offset in force before ``xs[k]``; ``offsets[-1]`` after the last.
    """
    start, end = _YEAR_STARTS[i], _YEAR_STARTS[i + 1]
    t = start - 1
    prev = _offset(tz, t)
    xs: list[int] = []
    offs = [prev]
    while t < end - 1:
        nt = min(t + 86400, end - 1)
        o = _offset(tz, nt)
        if o == prev:
            t = nt
            continue
        lo, hi = t, nt  # offset(lo) == prev != offset(hi)
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if _offset(tz, mid) == prev:
                lo = mid
            else:
                hi = mid
        prev = _offset(tz, hi)
        xs.append(hi)
        offs.append(prev)
        t = hi
    return tuple(xs), tuple(offs)


def _table(tz: tzinfo, i: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
    tables = _ZONES.get(tz)
    if tables is None:
        tables = _ZONES.setdefault(tz, [None] * _NTABLES)
    table = tables[i]
    if table is None:
        table = tables[i] = _build_year(tz, i)
    return table


def _next_transition(tz: tzinfo, s: int, limit: int) -> tuple[int, int, int] | None:
    """The first offset change at an instant X with s < X <= limit: (X, before, after)."""
    i = bisect_right(_YEAR_STARTS, s) - 1
    while True:
        xs, offs = _table(tz, i)
        j = bisect_right(xs, s)
        if j < len(xs):
            x = xs[j]
            return (x, offs[j], offs[j + 1]) if x <= limit else None
        i += 1
        if i >= _NTABLES or _YEAR_STARTS[i] > limit:
            return None


# ------------------------------------------------------------------- expression


class CronExpression:
    """A compiled cron expression: immutable, hashable, shareable between jobs.

    Build it with :func:`traitor.domain.cron.parse_cron`.

    * ``source`` – the text as given to ``parse_cron``;
    * ``has_seconds`` – True when the expression can fire at a non-zero second:
      written with 6 or 7 fields, or an ``@every`` interval that is not a whole
      number of minutes.

    ``@every <d>`` intervals are *anchored to the Unix epoch*: they fire at every
    instant that is a whole multiple of the interval since 1970-01-01T00:00:00Z,
    whatever the time zone and whenever the job was created or the node
    restarted, so every node computes the same instants and nothing drifts.
    ``@every 1h`` fires on every UTC hour; ``@every 7m`` fires at 00:00Z,
    00:07Z, … of 1970-01-01 and simply carries on across days (on 2027-01-01 its
    first fire is 00:02Z).
    """

    __slots__ = (
        "source",
        "has_seconds",
        "_sec",
        "_min",
        "_hour",
        "_month",
        "_year",
        "_day",
        "_elapsed",
        "_every",
        "_days",
    )

    source: str
    has_seconds: bool

    def __init__(
        self,
        source: str,
        *,
        has_seconds: bool,
        second: int = 1,
        minute: int = 1,
        hour: int = 1,
        month: int = 1,
        year: int = 1,
        day: tuple = (),
        elapsed: bool = False,
        every: int = 0,
    ) -> None:
        init = object.__setattr__
        init(self, "source", source)
        init(self, "has_seconds", has_seconds)
        init(self, "_sec", second)
        init(self, "_min", minute)
        init(self, "_hour", hour)
        init(self, "_month", month)
        init(self, "_year", year)
        init(self, "_day", day)
        init(self, "_elapsed", elapsed)
        init(self, "_every", every)
        init(self, "_days", {})

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"{type(self).__name__} is immutable")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"{type(self).__name__} is immutable")

    def __repr__(self) -> str:
        return f"CronExpression({self.source!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, CronExpression):
            return NotImplemented
        return self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __reduce__(self):
        from traitor.domain.cron.parser import parse_cron

        return (parse_cron, (self.source,))

    def _key(self) -> tuple:
        return (
            self._sec, self._min, self._hour, self._month, self._year, self._day, self._elapsed, self._every,
            self.has_seconds,
        )

    @property
    def every_seconds(self) -> int | None:
        """The interval of an ``@every`` expression, else None."""
        return self._every or None

    # ----------------------------------------------------------------- public

    def next_fire(self, after_ms: int, tz: tzinfo) -> int | None:
        """The first fire instant strictly after ``after_ms`` (ms), or None if none before 2200."""
        if type(after_ms) is not int:
            after_ms = int(after_ms)
        every = self._every
        if every:
            step = every * 1000
            t = (after_ms // step + 1) * step
            return t if t < _LO_MAX * 1000 else None
        if tz is None:
            raise TypeError("next_fire needs a time zone (tzinfo), not None")
        lo = after_ms // 1000 + 1
        if lo < 0:
            lo = 0
        elif lo >= _LO_MAX:
            return None
        t = self._next_elapsed(lo, tz) if self._elapsed else self._next_fixed(lo, tz)
        return None if t is None else t * 1000

    def fires(self, after_ms: int, tz: tzinfo, n: int) -> list[int]:
        """The next ``n`` fire instants after ``after_ms`` (fewer if the schedule ends)."""
        out: list[int] = []
        t: int | None = after_ms
        for _ in range(n):
            t = self.next_fire(t, tz)  # type: ignore[arg-type]
            if t is None:
                break
            out.append(t)
        return out

    # ----------------------------------------------------- wall -> instant

    def _next_fixed(self, lo: int, tz: tzinfo) -> int | None:
        """First instant >= lo of a fixed-hour job (gap -> end of gap, overlap -> first pass)."""
        p = lo - 1
        i = bisect_right(_YEAR_STARTS, p) - 1
        xs, offs = _table(tz, i)
        j = bisect_right(xs, p)
        off = offs[j]
        # smallest wall time whose instant is >= lo: one past the latest wall time
        # already shown at p (in the second pass of an overlap that is the end of the
        # first pass, so repeated wall times do not fire twice)
        w_start = p + off + 1
        if j:
            v = xs[j - 1] + offs[j - 1]
            if v > w_start:
                w_start = v
        elif i:
            pxs, poffs = _table(tz, i - 1)
            if pxs:
                v = pxs[-1] + poffs[-2]
                if v > w_start:
                    w_start = v
        w = self._next_wall(w_start)
        if w is None:
            return None
        t = w - off
        # fast path: no offset change between p and t (checked in the table at hand)
        if t < (xs[j] if j < len(xs) else _YEAR_STARTS[i + 1]):
            return t
        s = p
        while True:
            t = w - off
            nx = _next_transition(tz, s, t)
            if nx is None:
                return t
            x, before, after = nx
            if after > before and w < x + after:
                return x  # w lies in the gap: the first instant after it
            s = x
            off = after

    def _next_elapsed(self, lo: int, tz: tzinfo) -> int | None:
        """First instant >= lo whose wall-clock reading matches (hour field ``*``)."""
        i = bisect_right(_YEAR_STARTS, lo) - 1
        xs, offs = _table(tz, i)
        j = bisect_right(xs, lo)
        off = offs[j]
        s = lo
        w_from = lo + off
        w = self._next_wall(w_from)
        # fast path: no offset change between lo and the candidate (checked in the table at hand)
        if w is not None and w - off < (xs[j] if j < len(xs) else _YEAR_STARTS[i + 1]):
            return w - off
        while True:
            # only an overlap (wall clock going back) soon after s could bring an
            # earlier wall time once nothing matches any more
            nx = _next_transition(tz, s, s + 2 * 86400 if w is None else w - off)
            if nx is None:
                return None if w is None else w - off
            s, _, off = nx
            v = s + off  # first wall time of the new segment
            if v < w_from or (w is not None and v > w):
                w_from = v
                w = self._next_wall(v)

    # ------------------------------------------------------ wall-clock search

    def _next_wall(self, w: int) -> int | None:
        """First matching naive wall time (seconds since 1970-01-01T00:00) at or after ``w``."""
        if w < 0:
            w = 0
        days, rem = divmod(w, 86400)
        h, rem = divmod(rem, 3600)
        mi, s = divmod(rem, 60)
        k = bisect_right(_MONTH_DAYS, days) - 1
        y, mo = divmod(k, 12)
        d = days - _MONTH_DAYS[k] + 1
        ymask = self._year
        mmask = self._month
        hmask = self._hour
        minmask = self._min
        smask = self._sec
        cache = self._days
        while True:
            r = ymask >> y
            if not r & 1:
                if not r:
                    return None
                y += (r & -r).bit_length() - 1
                mo = 0
                d = 1
                h = mi = s = 0
            r = mmask >> mo
            if not r:
                y += 1
                mo = 0
                d = 1
                h = mi = s = 0
                continue
            if not r & 1:
                mo += (r & -r).bit_length() - 1
                d = 1
                h = mi = s = 0
            k = y * 12 + mo
            dm = cache.get(k)
            if dm is None:
                dm = self._day_mask(k)
            r = dm >> d
            if not r:
                mo += 1
                d = 1
                h = mi = s = 0
                continue
            if not r & 1:
                d += (r & -r).bit_length() - 1
                h = mi = s = 0
            r = hmask >> h
            if not r:
                d += 1
                h = mi = s = 0
                continue
            if not r & 1:
                h += (r & -r).bit_length() - 1
                mi = s = 0
            r = minmask >> mi
            if not r:
                h += 1
                mi = s = 0
                continue
            if not r & 1:
                mi += (r & -r).bit_length() - 1
                s = 0
            r = smask >> s
            if not r:
                mi += 1
                s = 0
                continue
            s += (r & -r).bit_length() - 1
            return (_MONTH_DAYS[k] + d - 1) * 86400 + h * 3600 + mi * 60 + s

    def _day_mask(self, k: int) -> int:
        """Bits 1..31: the days of month ``k`` (months since 1970-01) that match."""
        first = _MONTH_DAYS[k]
        nd = _MONTH_DAYS[k + 1] - first
        wd1 = (first + 4) % 7  # weekday of the 1st, 0 = Sunday (1970-01-01 was a Thursday)
        valid = (1 << (nd + 1)) - 2
        dom_bits, dom_last, dom_lw, dom_near, dow_bits, dow_last, dow_nth, either = self._day
        dm = dom_bits & valid
        for n in dom_last:
            if nd - n >= 1:
                dm |= 1 << (nd - n)
        if dom_lw:
            wd = (wd1 + nd - 1) % 7
            dm |= 1 << (nd - 1 if wd == 6 else nd - 2 if wd == 0 else nd)
        for n in dom_near:
            if n > nd:
                continue  # day n does not exist this month: no fire
            wd = (wd1 + n - 1) % 7
            if wd == 6:  # Saturday: Friday before, or Monday after when n is the 1st
                n = n - 1 if n > 1 else n + 2
            elif wd == 0:  # Sunday: Monday after, or Friday before when n is the last day
                n = n + 1 if n < nd else n - 2
            dm |= 1 << n
        ww = 0
        if dow_bits:
            for w in range(7):
                if dow_bits >> w & 1:
                    ww |= _EVERY7[1 + (w - wd1) % 7]
        if dow_last:
            wdl = (wd1 + nd - 1) % 7
            for w in dow_last:
                ww |= 1 << (nd - (wdl - w) % 7)
        for w, n in dow_nth:
            d = 1 + (w - wd1) % 7 + 7 * (n - 1)
            if d <= nd:
                ww |= 1 << d
        ww &= valid
        dm = dm | ww if either else dm & ww
        cache = self._days
        if len(cache) >= _DAY_CACHE_MAX:
            cache.clear()
        cache[k] = dm
        return dm
