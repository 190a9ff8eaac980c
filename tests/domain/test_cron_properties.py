"""Random expressions of the whole grammar against the brute-force oracle (cron_oracle.py)."""

from __future__ import annotations

from datetime import datetime, timezone
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cron_oracle import Oracle
from traitor.domain.cron import describe_cron, parse_cron

ZONES = ["UTC", "Europe/Paris", "America/New_York", "Australia/Sydney", "Australia/Lord_Howe"]
MONTHS = "JAN FEB MAR APR MAY JUN JUL AUG SEP OCT NOV DEC".split()
DAYS = "SUN MON TUE WED THU FRI SAT".split()

START_MIN = int(datetime(2020, 1, 1, tzinfo=timezone.utc).timestamp())
START_MAX = int(datetime(2032, 12, 31, tzinfo=timezone.utc).timestamp())


def _transitions(name: str) -> list[int]:
    """Instants (s) in 2024-2032 where the zone's UTC offset changes (6-hour probes, then bisection)."""
    tz = ZoneInfo(name)

    def offset(t: int):
        return datetime.fromtimestamp(t, tz).utcoffset()

    out = []
    for t in range(START_MIN + 4 * 365 * 86400, START_MAX, 6 * 3600):
        lo, hi = t, t + 6 * 3600
        if offset(lo) != offset(hi):
            while hi - lo > 1:
                mid = (lo + hi) // 2
                lo, hi = (mid, hi) if offset(mid) == offset(lo) else (lo, mid)
            out.append(hi)
    return out


TRANSITIONS = {name: _transitions(name) for name in ZONES}


def cased(words: list[str]) -> st.SearchStrategy[str]:
    return st.sampled_from(words).flatmap(lambda w: st.sampled_from([w, w.lower(), w.capitalize()]))


def value(lo: int, hi: int, names: list[str] | None = None, first: int = 0) -> st.SearchStrategy[str]:
    numbers = st.integers(lo, hi).map(str)
    if names is None:
        return numbers
    return st.one_of(numbers, cased(names))


def plain_item(lo: int, hi: int, names: list[str] | None = None, top: int | None = None) -> st.SearchStrategy[str]:
    top = hi if top is None else top
    size = top - lo + 1
    v = value(lo, hi, names)
    step = st.integers(1, max(1, min(size, 12))).map(str)
    return st.one_of(
        st.just("*"),
        step.map(lambda n: "*/" + n),
        v,
        v,
        st.tuples(v, v).map(lambda p: f"{p[0]}-{p[1]}"),
        st.tuples(v, v, step).map(lambda p: f"{p[0]}-{p[1]}/{p[2]}"),
        st.tuples(value(lo, top, names), step).map(lambda p: f"{p[0]}/{p[1]}"),
    )


def field(item: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.lists(item, min_size=1, max_size=3).map(",".join)


SECONDS = st.one_of(st.just("0"), st.sampled_from(["*/15", "*/20", "30", "0,30", "*"]), field(plain_item(0, 59)))
MINUTES = st.one_of(st.sampled_from(["0", "30", "*/15", "0-10/5", "59"]), field(plain_item(0, 59)))
HOURS = st.one_of(
    st.sampled_from(["*", "2", "3", "1-3", "2,3", "*/2", "22-3", "0", "*/3", "2-2"]),
    field(plain_item(0, 23)),
)
DOM_ITEM = st.one_of(
    plain_item(1, 31),
    st.sampled_from(["L", "LW", "L-1", "L-3", "15W", "1W", "31W", "30W", "28W"]),
    st.integers(1, 31).map(lambda n: f"{n}W"),
)
DOM = st.one_of(st.sampled_from(["*", "?", "*", "1", "L", "13"]), field(DOM_ITEM))
DOW_ITEM = st.one_of(
    plain_item(0, 7, DAYS, top=6),
    st.tuples(value(0, 7, DAYS), st.integers(1, 5)).map(lambda p: f"{p[0]}#{p[1]}"),
    value(0, 7).map(lambda d: f"{d}L"),
    cased(DAYS).map(lambda d: f"{d}L"),
)
DOW = st.one_of(st.sampled_from(["*", "?", "*", "MON-FRI", "SUN", "5-7"]), field(DOW_ITEM))
MONTH = st.one_of(st.sampled_from(["*", "*", "FEB", "2,3", "10-11", "NOV-FEB"]), field(plain_item(1, 12, MONTHS)))
YEAR = st.one_of(
    st.sampled_from(["*", "2027", "2029-2031", "2030/2", "*/3"]),
    field(st.one_of(value(2020, 2040), st.tuples(value(2020, 2034), value(2034, 2040)).map("-".join))),
)


@st.composite
def expressions(draw) -> str:
    kind = draw(st.sampled_from(["5", "6", "6", "7", "alias", "every"]))
    if kind == "alias":
        return draw(cased(["@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly"]))
    if kind == "every":
        seconds = draw(st.sampled_from([1, 7, 30, 59, 60, 90, 3600, 5400, 7200, 86400]))
        h, rest = divmod(seconds, 3600)
        m, s = divmod(rest, 60)
        return "@every " + "".join(f"{n}{u}" for n, u in ((h, "h"), (m, "m"), (s, "s")) if n)
    fields = [draw(MINUTES), draw(HOURS), draw(DOM), draw(MONTH), draw(DOW)]
    if kind in ("6", "7"):
        fields.insert(0, draw(SECONDS))
    if kind == "7":
        fields.append(draw(YEAR))
    sep = draw(st.sampled_from([" ", " ", "  ", "\t"]))
    return sep.join(fields)


@st.composite
def starts(draw) -> tuple[str, int]:
    zone = draw(st.sampled_from(ZONES))
    if zone != "UTC" and draw(st.booleans()):
        near = draw(st.sampled_from(TRANSITIONS[zone]))
        t = near + draw(st.integers(-3 * 3600, 3 * 3600))
    else:
        t = draw(st.integers(START_MIN, START_MAX))
    return zone, t * 1000 + draw(st.sampled_from([0, 0, 1, 999]))


@settings(
    max_examples=300,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
@given(text=expressions(), start=starts())
def test_next_fire_matches_brute_force(text: str, start: tuple[str, int]) -> None:
    zone, after = start
    tz = ZoneInfo(zone)
    expr = parse_cron(text)
    oracle = Oracle(text)
    t = after
    for _ in range(2):
        got = expr.next_fire(t, tz)
        want = oracle.next_fire(t, tz)
        assert got == want, (text, zone, t)
        if got is None:
            break
        assert got > t and got % 1000 == 0
        t = got
    assert describe_cron(text)


@settings(max_examples=200, deadline=None, derandomize=True, database=None)
@given(text=expressions(), start=starts(), n=st.integers(1, 6))
def test_fires_is_repeated_next_fire_and_strictly_increasing(text: str, start: tuple[str, int], n: int) -> None:
    zone, after = start
    tz = ZoneInfo(zone)
    expr = parse_cron(text)
    fires = expr.fires(after, tz, n)
    assert len(fires) <= n
    previous = after
    for fire in fires:
        assert fire > previous
        assert fire == expr.next_fire(previous, tz)
        previous = fire
    if len(fires) < n:
        assert expr.next_fire(previous, tz) is None


DST_ZONES = [z for z in ZONES if z != "UTC"]


@st.composite
def dst_cases(draw) -> tuple[str, str, int]:
    """Every-day expressions whose hours straddle a transition, started within hours of it."""
    sec = draw(st.sampled_from(["0", "30", "0,30", "15"]))
    minute = draw(st.sampled_from(["*", "*/15", "0", "30", "*/7", "10-50/20", "45", "0,30"]))
    hour = draw(st.sampled_from(["*", "*/2", "*/3", "1-3", "2", "3", "1", "0-4", "22-3", "2,3", "1,2", "0"]))
    dom, dow = draw(st.sampled_from([("*", "*"), ("?", "*"), ("*", "?"), ("L", "SUN"), ("1-7", "SUN")]))
    words = [minute, hour, dom, "*", dow]
    if draw(st.booleans()):
        words.insert(0, sec)
    zone = draw(st.sampled_from(DST_ZONES))
    t = draw(st.sampled_from(TRANSITIONS[zone])) + draw(st.integers(-4 * 3600, 3 * 3600))
    return " ".join(words), zone, t * 1000


@settings(max_examples=150, deadline=None, derandomize=True, database=None)
@given(case=dst_cases())
def test_daylight_saving_neighbourhood_matches_brute_force(case: tuple[str, str, int]) -> None:
    text, zone, after = case
    tz = ZoneInfo(zone)
    expr = parse_cron(text)
    oracle = Oracle(text)
    t = after
    for _ in range(3):
        got = expr.next_fire(t, tz)
        assert got == oracle.next_fire(t, tz), (text, zone, t)
        t = got


DAY_FIELDS = [
    ("L", "?"), ("L-1", "?"), ("L-3", "?"), ("L-30", "?"), ("LW", "?"),
    ("1W", "?"), ("2W", "?"), ("15W", "?"), ("28W", "?"), ("29W", "?"), ("30W", "?"), ("31W", "?"),
    ("1,15W,L", "?"), ("28-3", "?"), ("*/2", "?"), ("3/10", "?"), ("29", "?"),
    ("?", "0L"), ("?", "6L"), ("?", "7L"), ("?", "MON#1"), ("?", "FRI#5"), ("?", "0#5"), ("?", "SAT#4,SUN#1"),
    ("?", "FRI-MON"), ("?", "5-7"), ("?", "*/2"), ("?", "1/3"), ("?", "2-6/2"),
    ("13", "FRI"), ("L", "FRI"), ("LW", "MON#1"), ("15W", "5L"), ("1", "SUN"),
    ("*/2", "FRI"), ("13", "*/2"), ("*", "MON"), ("L", "*"), ("*/3", "1#2"), ("?", "?"),
]


@pytest.mark.parametrize(("dom", "dow"), DAY_FIELDS)
def test_day_fields_over_eight_years_match_the_calendar(dom: str, dow: str) -> None:
    """Every day from 2024 to 2031 (leap years, all weekday layouts): fires exactly on matching days."""
    text = f"0 0 0 {dom} * {dow}"
    utc = ZoneInfo("UTC")
    expr = parse_cron(text)
    oracle = Oracle(text)
    start = int(datetime(2024, 1, 1, tzinfo=timezone.utc).timestamp()) * 1000 - 1
    end = datetime(2032, 1, 1, tzinfo=timezone.utc)
    fired = []
    t = expr.next_fire(start, utc)
    while t is not None and t < end.timestamp() * 1000:
        fired.append(datetime.fromtimestamp(t // 1000, timezone.utc).date())
        t = expr.next_fire(t, utc)
    day = datetime(2024, 1, 1).date()
    expected = []
    while day < end.date():
        if oracle.day_matches(day):
            expected.append(day)
        day = day.fromordinal(day.toordinal() + 1)
    assert fired == expected
    assert expected  # every field above fires at least once in eight years
