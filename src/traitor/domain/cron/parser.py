"""Cron expression text → compiled fields (SPEC §1, "Cron dialect").

Parsing happens in two steps that :mod:`describe` shares:

1. :func:`parse_parts` checks the text and turns every field into a list of
   :class:`Item` (one per comma-separated part);
2. :func:`parse_cron` compiles the items into integer bitmasks held by an
   immutable :class:`~traitor.domain.cron.schedule.CronExpression`, cached by
   text (a million jobs typically share a few expressions).

Grammar decisions beyond the SPEC:

* ranges wrap around when the start is after the end (``22-2`` hours is
  22, 23, 0, 1, 2; ``FRI-MON``; ``NOV-FEB``; ``28-3`` days); steps follow the
  wrapped walk (``22-4/2`` is 22, 0, 2, 4).  The year field does not wrap.
* ``a/n`` runs from ``a`` to the field maximum; in day-of-week the maximum is
  6 (Saturday), so ``*/2`` and ``0/2`` are Sun, Tue, Thu, Sat.  ``7`` is
  Sunday everywhere else (``5-7`` is Fri–Sun).
* a step must be between 1 and the size of the field (``*/0``, ``*/61`` in
  seconds are errors).
* ``?`` is accepted alone in the day fields only; ``L`` alone in day-of-week is
  an error (write ``6L`` or ``SATL`` for the last Saturday).
* years go from 1970 to 2199; nothing fires after 2199.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from functools import lru_cache

from traitor.domain.cron.schedule import YEAR_MAX, YEAR_MIN, CronExpression
from traitor.domain.errors import ValidationError

__all__ = ["CronError", "Item", "Field", "Parsed", "parse_cron", "parse_parts", "SHORTHANDS"]

#: Longest expression accepted (a guard against abuse, far above any real use).
MAX_LENGTH = 1024

#: Shortest and longest ``@every`` interval, in seconds.
EVERY_MIN_SECONDS = 1
EVERY_MAX_SECONDS = 366 * 86400


class CronError(ValidationError):
    """An invalid cron expression; ``field`` is always ``"cron"`` (the JSON field)."""

    def __init__(self, message: str) -> None:
        super().__init__("cron", message)


MONTH_NAMES = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
DAY_NAMES = ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")

SHORTHANDS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}


@dataclass(frozen=True, slots=True)
class Spec:
    """One field of the dialect: its name, value range and names."""

    name: str
    lo: int
    hi: int
    names: dict[str, int] | None = None
    #: largest value reached by ``*`` and ``a/n`` (differs from ``hi`` in day-of-week)
    top: int | None = None
    wraps: bool = True

    @property
    def last(self) -> int:
        return self.hi if self.top is None else self.top


SECOND = Spec("second", 0, 59)
MINUTE = Spec("minute", 0, 59)
HOUR = Spec("hour", 0, 23)
DOM = Spec("day-of-month", 1, 31)
MONTH = Spec("month", 1, 12, {n: i + 1 for i, n in enumerate(MONTH_NAMES)})
DOW = Spec("day-of-week", 0, 7, {n: i for i, n in enumerate(DAY_NAMES)}, top=6)
YEAR = Spec("year", YEAR_MIN, YEAR_MAX, wraps=False)

FIELDS_5 = (MINUTE, HOUR, DOM, MONTH, DOW)
FIELDS_6 = (SECOND,) + FIELDS_5
FIELDS_7 = FIELDS_6 + (YEAR,)


@dataclass(frozen=True, slots=True)
class Item:
    """One comma-separated part of a field.

    ``kind`` is one of:

    * ``"all"``      – ``*`` (``step`` from ``*/n``) or ``?`` (``a`` = 0 for ``*``, 1 for ``?``)
    * ``"range"``    – ``a``, ``a-b``, ``a-b/n``; ``open`` for ``a/n`` (``b`` is then the field top)
    * ``"last"``     – ``L`` / ``L-a`` in day-of-month (``a`` days before the last day)
    * ``"lastwd"``   – ``LW``
    * ``"nearest"``  – ``aW``
    * ``"lastdow"``  – ``aL`` in day-of-week (last weekday ``a`` of the month)
    * ``"nth"``      – ``a#b`` in day-of-week (``b``-th weekday ``a``)
    """

    kind: str
    a: int = 0
    b: int = 0
    step: int = 1
    open: bool = False


@dataclass(frozen=True, slots=True)
class Field:
    spec: Spec
    text: str
    items: tuple[Item, ...]

    @property
    def restricted(self) -> bool:
        """False when the field starts with ``*`` or ``?`` (the Vixie day rule)."""
        return not self.text.startswith(("*", "?"))


@dataclass(frozen=True, slots=True)
class Parsed:
    """The checked structure of an expression (before compilation)."""

    source: str
    #: the fields, always seven (seconds and year filled in when absent)
    fields: tuple[Field, ...] = ()
    has_seconds: bool = False
    has_year: bool = False
    #: ``"@daily"`` etc. when written as a shorthand
    shorthand: str | None = None
    #: interval of ``@every``, in seconds (then ``fields`` is empty)
    every: int | None = None


# --------------------------------------------------------------------------- items

_PLAIN = re.compile(r"([0-9A-Z]+)(?:-([0-9A-Z]+))?(?:/([0-9]+))?", re.ASCII)
_STAR = re.compile(r"\*(?:/([0-9]+))?", re.ASCII)
_DOM_LAST = re.compile(r"L(?:-([0-9]+))?", re.ASCII)
_DOM_NEAREST = re.compile(r"([0-9]+)W", re.ASCII)
_DOW_LAST = re.compile(r"([0-9]+|[A-Z]+)L", re.ASCII)
_DOW_NTH = re.compile(r"([0-9]+|[A-Z]+)#([0-9]+)", re.ASCII)
_SPECIAL_HINT = re.compile(r"L|LW|L-[0-9]+|[0-9]+W|([0-9]+|[A-Z]+)L|.*#.*", re.ASCII)


def _fail(spec: Spec, field_text: str, reason: str) -> CronError:
    return CronError(f"{spec.name} field {field_text!r}: {reason}")


def _value(spec: Spec, token: str, field_text: str) -> int:
    if token.isdigit():
        if len(token) > 6:
            raise _fail(spec, field_text, f"{token} is out of range {spec.lo}-{spec.hi}")
        value = int(token)
        if not spec.lo <= value <= spec.hi:
            raise _fail(spec, field_text, f"{value} is out of range {spec.lo}-{spec.hi}")
        return value
    if spec.names is not None:
        if token in spec.names:
            return spec.names[token]
        raise _fail(spec, field_text, f"unknown name {token}")
    raise _fail(spec, field_text, f"invalid value {token}")


def _step(spec: Spec, token: str, field_text: str) -> int:
    size = spec.last - spec.lo + 1
    step = int(token) if len(token) <= 6 else size + 1
    if step < 1:
        raise _fail(spec, field_text, f"step {token} must be at least 1")
    if step > size:
        raise _fail(spec, field_text, f"step {token} is larger than the field ({size} values)")
    return step


def _parse_item(spec: Spec, part: str, field_text: str) -> Item:
    if not part:
        raise _fail(spec, field_text, "empty list item")
    up = part.upper()
    m = _STAR.fullmatch(up)
    if m:
        return Item("all", 0, 0, _step(spec, m.group(1), field_text) if m.group(1) else 1)
    if up == "?":
        if spec not in (DOM, DOW):
            raise _fail(spec, field_text, "'?' is only allowed in day-of-month and day-of-week")
        return Item("all", 1)
    if spec is DOM:
        m = _DOM_LAST.fullmatch(up)
        if m:
            n = int(m.group(1)) if m.group(1) else 0
            if len(m.group(1) or "") > 2 or n > 30:
                raise _fail(spec, field_text, "L-n needs n between 0 and 30")
            return Item("last", n)
        if up == "LW":
            return Item("lastwd")
        m = _DOM_NEAREST.fullmatch(up)
        if m:
            return Item("nearest", _value(spec, m.group(1), field_text))
    elif spec is DOW:
        if up == "L":
            raise _fail(spec, field_text, "L in day-of-week needs a weekday before it (e.g. 5L = last Friday)")
        m = _DOW_NTH.fullmatch(up)
        if m:
            day = _value(spec, m.group(1), field_text) % 7
            n = int(m.group(2)) if len(m.group(2)) <= 2 else 99
            if not 1 <= n <= 5:
                raise _fail(spec, field_text, f"occurrence after '#' must be 1-5, not {m.group(2)}")
            return Item("nth", day, n)
        m = _DOW_LAST.fullmatch(up)
        if m and (m.group(1).isdigit() or m.group(1) in DAY_NAMES):
            return Item("lastdow", _value(spec, m.group(1), field_text) % 7)
    elif (up not in (spec.names or ())) and _SPECIAL_HINT.fullmatch(up):
        raise _fail(spec, field_text, "L, W and # are only allowed in day-of-month and day-of-week")
    m = _PLAIN.fullmatch(up)
    if not m:
        raise _fail(spec, field_text, f"cannot parse {part!r}")
    a = _value(spec, m.group(1), field_text)
    step = _step(spec, m.group(3), field_text) if m.group(3) else 1
    if m.group(2) is not None:
        b = _value(spec, m.group(2), field_text)
        if a > b and not spec.wraps:
            raise _fail(spec, field_text, f"range {a}-{b} goes backwards")
        return Item("range", a, b, step)
    if m.group(3):
        if spec is DOW:
            a %= 7
        return Item("range", a, spec.last, step, open=True)
    return Item("range", a, a, 1)


def _parse_field(spec: Spec, text: str) -> Field:
    return Field(spec, text, tuple(_parse_item(spec, part, text) for part in text.split(",")))


def _parse_every(source: str, rest: str) -> Parsed:
    text = rest.strip()
    if not text:
        raise CronError("@every needs a duration, e.g. @every 30s, @every 1m30s, @every 2h")
    parts = re.findall(r"([0-9]*\.?[0-9]*)(ms|us|µs|μs|ns|h|m|s)", text)
    if not parts or "".join(n + u for n, u in parts) != text or any(n in ("", ".") for n, _ in parts):
        raise CronError(f"@every duration {text!r}: expected a duration like 30s, 1m30s, 2h or 1h15m")
    unit_ns = {"h": 3600 * 10**9, "m": 60 * 10**9, "s": 10**9, "ms": 10**6, "us": 1000, "µs": 1000, "μs": 1000, "ns": 1}
    total = Decimal(0)
    try:
        for number, unit in parts:
            total += Decimal(number) * unit_ns[unit]
    except InvalidOperation:  # pragma: no cover - the regex already restricts the numbers
        raise CronError(f"@every duration {text!r}: invalid number") from None
    if total < EVERY_MIN_SECONDS * 10**9:
        raise CronError(f"@every duration {text!r}: the interval must be at least 1s")
    if total % 10**9:
        raise CronError(f"@every duration {text!r}: the interval must be a whole number of seconds")
    seconds = int(total // 10**9)
    if seconds > EVERY_MAX_SECONDS:
        raise CronError(f"@every duration {text!r}: the interval must be at most 8784h (366 days)")
    return Parsed(source, every=seconds, has_seconds=seconds % 60 != 0, shorthand="@every")


def parse_parts(text: object) -> Parsed:
    """Check ``text`` and split it into fields and items; raise :class:`CronError` if invalid."""
    if not isinstance(text, str):
        raise CronError("must be a string")
    if len(text) > MAX_LENGTH:
        raise CronError(f"expression is too long ({len(text)} characters, at most {MAX_LENGTH})")
    stripped = text.strip()
    if not stripped:
        raise CronError("expression is empty")
    shorthand = None
    if stripped.startswith("@"):
        word, *more = stripped.split(None, 1)
        word = word.lower()
        rest = more[0] if more else ""
        if word == "@every":
            return _parse_every(text, rest)
        if word not in SHORTHANDS:
            if word == "@reboot":
                raise CronError("@reboot is not supported")
            raise CronError(
                f"unknown shorthand {word!r} (expected @yearly, @annually, @monthly, @weekly, "
                "@daily, @midnight, @hourly or @every <duration>)"
            )
        if rest.strip():
            raise CronError(f"{word} takes no fields after it")
        shorthand = word
        stripped = SHORTHANDS[word]
    words = stripped.split()
    if len(words) == 5:
        specs = FIELDS_5
    elif len(words) == 6:
        specs = FIELDS_6
    elif len(words) == 7:
        specs = FIELDS_7
    else:
        raise CronError(
            f"expected 5 fields (minute hour day-of-month month day-of-week), 6 (second first) "
            f"or 7 (second first, year last), got {len(words)}"
        )
    fields = [_parse_field(spec, word) for spec, word in zip(specs, words)]
    if len(words) == 5:
        fields.insert(0, Field(SECOND, "0", (Item("range", 0, 0, 1),)))
    if len(words) < 7:
        fields.append(Field(YEAR, "*", (Item("all"),)))
    return Parsed(text, tuple(fields), has_seconds=len(words) >= 6, has_year=len(words) == 7, shorthand=shorthand)


# ----------------------------------------------------------------------- compiling


def _walk(lo: int, size: int, a: int, b: int, step: int) -> list[int]:
    """Values from a to b (wrapping in a cycle of ``size`` values starting at ``lo``), every ``step``."""
    count = (b - a) % size + 1
    return [lo + (a - lo + i) % size for i in range(0, count, step)]


def _values(spec: Spec, item: Item) -> list[int]:
    if item.kind == "all":
        return list(range(spec.lo, spec.last + 1, item.step))
    a, b = item.a, item.b
    if a <= b:
        return list(range(a, b + 1, item.step))
    if spec is DOW:  # 7 is Sunday: wrap in the 0-6 cycle
        return _walk(0, 7, a % 7, b % 7, item.step)
    return _walk(spec.lo, spec.hi - spec.lo + 1, a, b, item.step)


def _mask(spec: Spec, field: Field, offset: int = 0) -> int:
    mask = 0
    for item in field.items:
        for v in _values(spec, item):
            mask |= 1 << (v - offset)
    return mask


def _compile(parsed: Parsed) -> CronExpression:
    if parsed.every is not None:
        return CronExpression(parsed.source, has_seconds=parsed.has_seconds, every=parsed.every)
    sec, minute, hour, dom, month, dow, year = parsed.fields
    dom_bits = 0
    dom_last: list[int] = []
    dom_lw = False
    dom_near: list[int] = []
    for item in dom.items:
        if item.kind == "last":
            dom_last.append(item.a)
        elif item.kind == "lastwd":
            dom_lw = True
        elif item.kind == "nearest":
            dom_near.append(item.a)
        else:
            for v in _values(DOM, item):
                dom_bits |= 1 << v
    dow_bits = 0
    dow_last: list[int] = []
    dow_nth: list[tuple[int, int]] = []
    for item in dow.items:
        if item.kind == "lastdow":
            dow_last.append(item.a)
        elif item.kind == "nth":
            dow_nth.append((item.a, item.b))
        else:
            for v in _values(DOW, item):
                dow_bits |= 1 << (v % 7)
    day = (
        dom_bits,
        tuple(sorted(set(dom_last))),
        dom_lw,
        tuple(sorted(set(dom_near))),
        dow_bits,
        tuple(sorted(set(dow_last))),
        tuple(sorted(set(dow_nth))),
        dom.restricted and dow.restricted,
    )
    return CronExpression(
        parsed.source,
        has_seconds=parsed.has_seconds,
        second=_mask(SECOND, sec),
        minute=_mask(MINUTE, minute),
        hour=_mask(HOUR, hour),
        month=_mask(MONTH, month, 1),
        year=_mask(YEAR, year, YEAR_MIN),
        day=day,
        elapsed=not hour.restricted,
    )


@lru_cache(maxsize=4096)
def _parse_cached(text: str) -> CronExpression:
    return _compile(parse_parts(text))


def parse_cron(text: str) -> CronExpression:
    """Compile a cron expression (cached); raise :class:`CronError` naming the bad field."""
    if not isinstance(text, str):
        raise CronError("must be a string")
    return _parse_cached(text)
