"""A short English description of a cron expression, for UI hints.

>>> describe_cron("0 0 8 ? * MON")
'At 08:00:00 on Monday'
>>> describe_cron("*/30 * * * * *")
'Every 30 seconds'
>>> describe_cron("0 */2 * * *")
'At minute 0 past every 2nd hour'

Never raises for a valid expression; an invalid one raises :class:`CronError`.
"""

from __future__ import annotations

from traitor.domain.cron.parser import DOW, MONTH, Field, Item, parse_parts

__all__ = ["describe_cron"]

_MONTHS = (
    "January February March April May June July August September October November December"
).split()
_DAYS = "Sunday Monday Tuesday Wednesday Thursday Friday Saturday".split()
_NTH = ("first", "second", "third", "fourth", "fifth")


def _ordinal(n: int) -> str:
    if 10 <= n % 100 <= 20:
        suffix = "th"
    else:
        suffix = {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def _join(parts: list[str], word: str = "and") -> str:
    if len(parts) <= 1:
        return "".join(parts)
    return ", ".join(parts[:-1]) + f" {word} " + parts[-1]


def _plural(n: int, unit: str) -> str:
    return f"{n} {unit}" if n == 1 else f"{n} {unit}s"


def _name(field: Field, v: int) -> str:
    if field.spec is MONTH:
        return _MONTHS[v - 1]
    if field.spec is DOW:
        return _DAYS[v % 7]
    return str(v)


def _is_single(field: Field) -> bool:
    return len(field.items) == 1 and field.items[0].kind == "range" and field.items[0].a == field.items[0].b


def _singles(field: Field) -> list[int] | None:
    """The values of a field made only of single values, else None."""
    if all(i.kind == "range" and i.a == i.b for i in field.items):
        return sorted({i.a for i in field.items})
    return None


def _is_all(field: Field) -> bool:
    return len(field.items) == 1 and field.items[0].kind == "all" and field.items[0].step == 1


def _star_step(field: Field) -> int | None:
    if len(field.items) == 1 and field.items[0].kind == "all" and field.items[0].step > 1:
        return field.items[0].step
    return None


def _item_text(field: Field, item: Item, unit: str) -> str:
    """One list item of a plain field, e.g. ``5``, ``1 through 5``, ``every 2nd from 1 through 9``."""
    if item.kind == "all":
        return f"every {_ordinal(item.step)} {unit}" if item.step > 1 else f"every {unit}"
    a, b = _name(field, item.a), _name(field, item.b)
    if item.open:
        return f"every {_ordinal(item.step)} {unit} from {a}"
    if item.a == item.b:
        return a
    if item.step > 1:
        return f"every {_ordinal(item.step)} {unit} from {a} through {b}"
    return f"{a} through {b}"


def _list_text(field: Field, unit: str) -> str:
    return _join([_item_text(field, item, unit) for item in field.items])


def _hhmm(h: int, m: int, s: int | None = None) -> str:
    return f"{h:02d}:{m:02d}" if s is None else f"{h:02d}:{m:02d}:{s:02d}"


def _phrase(field: Field, unit: str) -> str:
    """``every 10 minutes``, ``minute 5``, ``minutes 0 and 30``, ``every 2nd minute from 10 through 20``."""
    if _is_all(field):
        return f"every {unit}"
    step = _star_step(field)
    if step:
        return f"every {_plural(step, unit)}"
    if all(i.kind == "range" and i.step == 1 and not i.open for i in field.items):
        values = _singles(field)
        label = unit if values is not None and len(values) == 1 else unit + "s"
        return f"{label} {_list_text(field, unit)}"
    return _join(
        [
            _item_text(field, i, unit) if (i.kind == "all" or i.step > 1 or i.open) else f"{unit} {_item_text(field, i, unit)}"
            for i in field.items
        ]
    )


def _time(sec: Field, minute: Field, hour: Field, has_seconds: bool) -> str:
    secs, mins, hours = _singles(sec), _singles(minute), _singles(hour)
    # fixed times of day: "At 08:00", "At 08:00 and 17:30"
    if secs is not None and mins is not None and hours is not None and len(secs) * len(mins) * len(hours) <= 6:
        times = [_hhmm(h, m, s if has_seconds else None) for h in hours for m in mins for s in secs]
        return "At " + _join(times)
    minute_phrase = _phrase(minute, "minute")
    if has_seconds and not (secs == [0] and not _is_all(minute)):
        sec_phrase = _phrase(sec, "second")
        if not sec_phrase.startswith("every"):
            sec_phrase = "at " + sec_phrase
        if _is_all(minute) and sec_phrase.startswith("every"):
            text = sec_phrase
        else:
            text = f"{sec_phrase} of {minute_phrase}"
    elif minute_phrase.startswith("every"):
        text = minute_phrase
    else:
        text = "at " + minute_phrase
    if _is_all(hour):
        if mins is not None:
            text += " past every hour"
    elif len(hour.items) == 1 and hour.items[0].kind == "range" and hour.items[0].step == 1 and hour.items[0].a != hour.items[0].b:
        item = hour.items[0]
        text += f" between {_hhmm(item.a, 0)} and {_hhmm(item.b, 59)}"
    elif _star_step(hour):
        text += f" past every {_ordinal(_star_step(hour))} hour"
    else:
        text += " past " + _phrase(hour, "hour")
    return text[0].upper() + text[1:]


def _dom_text(field: Field) -> str:
    pieces: list[str] = []
    plain: list[Item] = []
    for item in field.items:
        if item.kind == "last":
            pieces.append("the last day" if item.a == 0 else f"{_plural(item.a, 'day')} before the last day")
        elif item.kind == "lastwd":
            pieces.append("the last weekday")
        elif item.kind == "nearest":
            pieces.append(f"the weekday nearest day {item.a}")
        elif item.kind == "all":
            pieces.append(f"every {_ordinal(item.step)} day" if item.step > 1 else "every day")
        else:
            plain.append(item)
    if plain:
        sub = Field(field.spec, field.text, tuple(plain))
        values = _singles(sub)
        if values is not None:
            pieces.insert(0, ("day " if len(values) == 1 else "days ") + _join([str(v) for v in values]))
        else:
            pieces.insert(0, "days " + _list_text(sub, "day"))
    return "on " + _join(pieces) + " of the month"


def _dow_text(field: Field) -> str:
    pieces: list[str] = []
    for item in field.items:
        if item.kind == "lastdow":
            pieces.append(f"the last {_DAYS[item.a]} of the month")
        elif item.kind == "nth":
            pieces.append(f"the {_NTH[item.b - 1]} {_DAYS[item.a]} of the month")
        elif item.kind == "all":
            pieces.append(f"every {_ordinal(item.step)} day of the week" if item.step > 1 else "every day")
        else:
            pieces.append(_item_text(field, item, "day of the week"))
    return "on " + _join(pieces, "or")


def _days(dom: Field, dow: Field) -> str:
    dom_all, dow_all = _is_all(dom), _is_all(dow)
    if dom_all and dow_all:
        return ""
    if dow_all:
        return _dom_text(dom)
    if dom_all:
        return _dow_text(dow)
    if dom.restricted and dow.restricted:
        return f"{_dom_text(dom)} or {_dow_text(dow)}"
    # one field starts with * or ? (e.g. */2 and MON): both must match
    return f"{_dom_text(dom)}, if it falls {_dow_text(dow)}"


def _months(month: Field) -> str:
    if _is_all(month):
        return ""
    step = _star_step(month)
    if step:
        return f"every {_ordinal(step)} month"
    return "in " + _list_text(month, "month")


def _years(year: Field) -> str:
    if _is_all(year):
        return ""
    step = _star_step(year)
    if step:
        return f"every {_ordinal(step)} year"
    return "in " + _list_text(year, "year")


def _every(seconds: int) -> str:
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [
        _plural(n, unit)
        for n, unit in ((days, "day"), (hours, "hour"), (minutes, "minute"), (secs, "second"))
        if n
    ]
    if len(parts) == 1 and parts[0].startswith("1 "):
        return "Every " + parts[0][2:]
    return "Every " + _join(parts)


def describe_cron(text: str) -> str:
    """English for a cron expression, e.g. ``"At 08:00:00 on Monday"``."""
    parsed = parse_parts(text)
    if parsed.every is not None:
        return _every(parsed.every)
    sec, minute, hour, dom, month, dow, year = parsed.fields
    if parsed.shorthand == "@hourly" or (
        _singles(sec) == [0] and _singles(minute) == [0] and _is_all(hour)
    ):
        text_time = "Every hour"
    else:
        text_time = _time(sec, minute, hour, parsed.has_seconds)
    out = text_time
    days = _days(dom, dow)
    if days:
        out += " " + days
    for extra in (_months(month), _years(year)):
        if extra:
            out += ", " + extra
    return out
