"""A brute-force reference for the cron dialect of SPEC §1, used as a test oracle.

Written independently of ``traitor.domain.cron`` and for clarity, not speed:
fields become plain ``set``s, a calendar day is checked with ``calendar`` and
``datetime``, and the daylight-saving rule is applied literally:

* a wall time ``W`` happens at the real instants ``T`` whose local reading
  (``datetime.fromtimestamp(T, tz)``) is ``W`` — found by trying every offset
  the zone uses around ``W`` and converting back;
* elapsed-time jobs (hour field starting with ``*``) fire at every such ``T``;
* fixed-hour jobs fire at the earliest such ``T``, and when there is none
  (a spring-forward gap) at the first real instant whose reading is later than
  ``W``, found by scanning real time.

The next fire is the smallest instant over all matching wall times, scanning wall
times far enough past the first hit to be sure no later wall time maps earlier.
"""

from __future__ import annotations

import calendar
from datetime import date, datetime, timedelta, timezone, tzinfo

MONTHS = {n: i + 1 for i, n in enumerate("JAN FEB MAR APR MAY JUN JUL AUG SEP OCT NOV DEC".split())}
DAYS = {n: i for i, n in enumerate("SUN MON TUE WED THU FRI SAT".split())}
UTC = timezone.utc
LAST_YEAR = 2199

ALIASES = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
UNITS = {"h": 3600, "m": 60, "s": 1}


def _cycle(first: int, last: int, start: int, end: int) -> list[int]:
    """Walk first..last as a circle from start to end (inclusive)."""
    out = [start]
    v = start
    while v != end:
        v = first if v == last else v + 1
        out.append(v)
    return out


class Oracle:
    def __init__(self, text: str) -> None:
        self.every: int | None = None
        self._offset_memo: dict = {}
        self._gaps: list = []
        words = text.split()
        if words[0].lower() == "@every":
            total, num = 0, ""
            for ch in words[1]:
                if ch.isdigit():
                    num += ch
                else:
                    total += int(num) * UNITS[ch]
                    num = ""
            self.every = total
            return
        if words[0].lower() in ALIASES:
            words = ALIASES[words[0].lower()].split()
        if len(words) == 5:
            words = ["0"] + words
        if len(words) == 6:
            words = words + ["*"]
        sec, minute, hour, dom, month, dow, year = words
        self.secs = self._set(sec, 0, 59)
        self.mins = self._set(minute, 0, 59)
        self.hours = self._set(hour, 0, 23)
        self.months = self._set(month, 1, 12, MONTHS)
        self.years = self._set(year, 1970, LAST_YEAR)
        self.hour_star = hour.startswith("*")
        self.dom_star = dom.startswith(("*", "?"))
        self.dow_star = dow.startswith(("*", "?"))
        self.dom_parts = dom.upper().split(",")
        self.dow_parts = dow.upper().split(",")
        self.dom_plain = {p: self._set(p, 1, 31) for p in self.dom_parts if p[-1] not in "LW" and p[0] != "L"}
        self.dow_plain = {p: self._weekday_set(p) for p in self.dow_parts if "#" not in p and not p.endswith("L")}

    # -- fields ---------------------------------------------------------------

    @staticmethod
    def _num(token: str, names: dict[str, int] | None = None) -> int:
        token = token.upper()
        if names and token in names:
            return names[token]
        return int(token)

    def _set(self, text: str, lo: int, hi: int, names: dict[str, int] | None = None) -> set[int]:
        out: set[int] = set()
        for part in text.split(","):
            base, _, step_text = part.partition("/")
            step = int(step_text) if step_text else 1
            if base in ("*", "?"):
                seq = list(range(lo, hi + 1))
            elif "-" in base:
                a, b = (self._num(x, names) for x in base.split("-"))
                seq = _cycle(lo, hi, a, b)
            elif step_text:
                seq = list(range(self._num(base, names), hi + 1))
            else:
                seq = [self._num(base, names)]
            out.update(seq[::step])
        return out

    def _weekday_set(self, part: str) -> set[int]:
        """Plain day-of-week part → weekdays with 0 = Sunday (7 also Sunday)."""
        base, _, step_text = part.partition("/")
        step = int(step_text) if step_text else 1
        if base in ("*", "?"):
            seq = list(range(0, 7))
        elif "-" in base:
            a, b = (self._num(x, DAYS) for x in base.split("-"))
            if a <= b:
                seq = list(range(a, b + 1))
            else:
                seq = _cycle(0, 6, a % 7, b % 7)
        elif step_text:
            seq = list(range(self._num(base, DAYS) % 7, 7))
        else:
            seq = [self._num(base, DAYS)]
        return {v % 7 for v in seq[::step]}

    # -- days -----------------------------------------------------------------

    def _dom_matches(self, d: date) -> bool:
        ndays = calendar.monthrange(d.year, d.month)[1]
        weekdays = [x for x in range(1, ndays + 1) if date(d.year, d.month, x).weekday() < 5]
        for part in self.dom_parts:
            if part == "L":
                hit = d.day == ndays
            elif part.startswith("L-"):
                hit = d.day == ndays - int(part[2:])
            elif part == "LW":
                hit = d.day == max(weekdays)
            elif part.endswith("W"):
                n = int(part[:-1])
                hit = n <= ndays and d.day == min(weekdays, key=lambda x: (abs(x - n), x))
            else:
                hit = d.day in self.dom_plain[part]
            if hit:
                return True
        return False

    def _dow_matches(self, d: date) -> bool:
        ndays = calendar.monthrange(d.year, d.month)[1]
        wd = d.isoweekday() % 7
        for part in self.dow_parts:
            if "#" in part:
                a, n = part.split("#")
                hit = wd == self._num(a, DAYS) % 7 and (d.day - 1) // 7 + 1 == int(n)
            elif part.endswith("L"):
                hit = wd == self._num(part[:-1], DAYS) % 7 and d.day + 7 > ndays
            else:
                hit = wd in self.dow_plain[part]
            if hit:
                return True
        return False

    def day_matches(self, d: date) -> bool:
        if d.month not in self.months or d.year not in self.years:
            return False
        if self.dom_star or self.dow_star:
            return self._dom_matches(d) and self._dow_matches(d)
        return self._dom_matches(d) or self._dow_matches(d)

    # -- time zones -----------------------------------------------------------

    @staticmethod
    def _reading(t: int, tz: tzinfo) -> datetime:
        return datetime.fromtimestamp(t, tz).replace(tzinfo=None, fold=0)

    def _offsets_near(self, naive: datetime, tz: tzinfo) -> set[int]:
        """Every UTC offset ``tz`` uses within about two days of the wall time ``naive``."""
        key = (naive.replace(minute=0, second=0), tz)
        out = self._offset_memo.get(key)
        if out is None:
            out = set()
            for hours in range(-48, 49, 6):
                probe = key[0] + timedelta(hours=hours)
                for fold in (0, 1):
                    out.add(int(probe.replace(tzinfo=tz, fold=fold).utcoffset().total_seconds()))
            self._offset_memo[key] = out
        return out

    def instants(self, wall: datetime, tz: tzinfo) -> list[int]:
        """Every real instant (epoch seconds) whose local reading is ``wall``."""
        base = int(wall.replace(tzinfo=UTC).timestamp())
        hits = {base - off for off in self._offsets_near(wall, tz)}
        return sorted(t for t in hits if self._reading(t, tz) == wall)

    def after_gap(self, wall: datetime, tz: tzinfo) -> int:
        """The first real instant whose local reading is later than ``wall``."""
        for gap_tz, before, after, t in self._gaps:  # another wall time of a gap already scanned
            if gap_tz is tz and before < wall < after:
                return t
        base = int(wall.replace(tzinfo=UTC).timestamp())
        t = base - max(self._offsets_near(wall, tz)) - 120
        assert self._reading(t, tz) < wall
        while self._reading(t, tz) <= wall:  # coarse steps, then back up second by second
            t += 60
        while self._reading(t - 1, tz) > wall:
            t -= 1
        self._gaps.append((tz, self._reading(t - 1, tz), self._reading(t, tz), t))
        return t

    # -- search ---------------------------------------------------------------

    def next_fire(self, after_ms: int, tz: tzinfo) -> int | None:
        lo = after_ms // 1000 + 1
        if self.every is not None:
            t = lo
            while t % self.every:
                t += 1
            return t * 1000
        # a wall time W happens no later than W - (smallest offset): skip walls that cannot reach lo
        floor = datetime(1970, 1, 1) + timedelta(seconds=lo + min(self._offsets_near(self._reading(lo, tz), tz)))
        best: int | None = None
        cutoff: datetime | None = None
        y, m = floor.year, floor.month
        while y <= LAST_YEAR:
            if m in self.months and y in self.years:
                for day in range(1, calendar.monthrange(y, m)[1] + 1):
                    if datetime(y, m, day, 23, 59, 59) < floor or not self.day_matches(date(y, m, day)):
                        continue
                    if cutoff is not None and datetime(y, m, day) > cutoff:
                        return best * 1000
                    for h in sorted(self.hours):
                        if datetime(y, m, day, h, 59, 59) < floor:
                            continue
                        for mi in sorted(self.mins):
                            if datetime(y, m, day, h, mi, 59) < floor:
                                continue
                            for s in sorted(self.secs):
                                wall = datetime(y, m, day, h, mi, s)
                                if wall < floor:
                                    continue
                                if cutoff is not None and wall > cutoff:
                                    return best * 1000
                                found = self.instants(wall, tz)
                                if not self.hour_star:
                                    found = found[:1] or [self.after_gap(wall, tz)]
                                for t in found:
                                    if t >= lo and (best is None or t < best):
                                        best = t
                                if best is not None and cutoff is None:
                                    # a later wall W' happens no earlier than W' - (largest offset)
                                    offs = self._offsets_near(wall, tz)
                                    cutoff = wall + timedelta(seconds=max(offs) - min(offs))
            m += 1
            if m == 13:
                y, m = y + 1, 1
        return None if best is None else best * 1000
