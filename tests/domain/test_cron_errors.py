"""Every class of bad cron input gives a CronError (a 400) that names what is wrong."""

from __future__ import annotations

import pytest

from traitor.domain.cron import CronError, describe_cron, parse_cron
from traitor.domain.errors import ValidationError

# (expression, words the message must contain)
BAD = [
    # not text / nothing
    (None, ["must be a string"]),
    (5, ["must be a string"]),
    (b"* * * * *", ["must be a string"]),
    (["*", "*", "*", "*", "*"], ["must be a string"]),
    ("", ["empty"]),
    ("   \t ", ["empty"]),
    ("x" * 2000, ["too long"]),
    # wrong field count
    ("*", ["5 fields", "got 1"]),
    ("* * * *", ["5 fields", "got 4"]),
    ("0 0 0 * * * * *", ["got 8"]),
    # values out of range, in every field and inside ranges
    ("61 * * * * *", ["second field '61'", "out of range 0-59"]),
    ("60 * * * *", ["minute field '60'", "out of range"]),
    ("* 24 * * *", ["hour field '24'", "out of range 0-23"]),
    ("* * 0 * *", ["day-of-month field '0'", "out of range 1-31"]),
    ("* * 1-32 * *", ["day-of-month field '1-32'", "32"]),
    ("* * * 13 *", ["month field '13'", "out of range 1-12"]),
    ("* * * 0 *", ["month field", "out of range"]),
    ("* * * * 8", ["day-of-week field '8'", "out of range 0-7"]),
    ("0 0 0 1 1 ? 1969", ["year field '1969'", "out of range 1970-2199"]),
    ("0 0 0 1 1 ? 2200", ["year field '2200'"]),
    ("99999999999999999999 * * * *", ["minute field", "out of range"]),
    # unknown names
    ("0 0 8 ? * FOO", ["day-of-week field 'FOO'", "unknown name FOO"]),
    ("* * * * JAN", ["day-of-week field", "unknown name JAN"]),
    ("* * * MON *", ["month field", "unknown name MON"]),
    ("0 0 0 ? * 1-FOO", ["day-of-week field", "FOO"]),
    ("MON * * * *", ["minute field", "MON"]),
    # bad steps
    ("*/0 * * * *", ["minute field '*/0'", "step 0"]),
    ("5/0 * * * * *", ["second field", "step 0"]),
    ("*/61 * * * * *", ["second field", "step 61"]),
    ("* * * * */8", ["day-of-week field", "step 8"]),
    ("*/x * * * *", ["minute field", "*/x"]),
    # L, W, # and ? in the wrong place or malformed
    ("L * * * *", ["minute field 'L'", "only allowed in day-of-month and day-of-week"]),
    ("* L * * *", ["hour field", "only allowed"]),
    ("* * * L *", ["month field", "only allowed"]),
    ("* 5W * * *", ["hour field", "only allowed"]),
    ("* * * 1#2 *", ["month field", "only allowed"]),
    ("0 0 0 1 1 ? L", ["year field", "only allowed"]),
    ("* * * * L", ["day-of-week field", "weekday before it"]),
    ("* * * * MON#6", ["day-of-week field 'MON#6'", "1-5"]),
    ("* * * * 1#0", ["day-of-week field", "1-5"]),
    ("* * * * 1#", ["day-of-week field"]),
    ("* * * * 8L", ["day-of-week field", "out of range"]),
    ("* * L-31 * *", ["day-of-month field", "L-n"]),
    ("* * 0W * *", ["day-of-month field", "out of range"]),
    ("* * 32W * *", ["day-of-month field", "out of range"]),
    ("* * W * *", ["day-of-month field"]),
    ("* * 1-5W * *", ["day-of-month field"]),
    ("? * * * *", ["minute field", "'?' is only allowed"]),
    ("* * * ? *", ["month field", "'?' is only allowed"]),
    ("* * * * ?/2", ["day-of-week field"]),
    # garbage
    ("5$ * * * *", ["minute field '5$'", "cannot parse"]),
    ("* 1..3 * * *", ["hour field", "cannot parse"]),
    ("-5 * * * *", ["minute field", "cannot parse"]),
    ("1- * * * *", ["minute field", "cannot parse"]),
    ("*-5 * * * *", ["minute field", "cannot parse"]),
    ("1-2-3 * * * *", ["minute field", "cannot parse"]),
    (",5 * * * *", ["minute field", "empty list item"]),
    ("5, * * * *", ["minute field", "empty list item"]),
    ("\uff15 * * * *", ["minute field", "cannot parse"]),  # a full-width digit
    # ranges that cannot wrap
    ("0 0 0 1 1 ? 2030-2020", ["year field", "backwards"]),
    # shorthands and @every
    ("@reboot", ["@reboot", "not supported"]),
    ("@fortnightly", ["unknown shorthand", "@fortnightly"]),
    ("@daily 5", ["@daily", "no fields"]),
    ("@every", ["@every", "duration"]),
    ("@every 0s", ["@every", "at least 1s"]),
    ("@every 500ms", ["@every", "at least 1s"]),
    ("@every 1500ms", ["@every", "whole number of seconds"]),
    ("@every 1.5s", ["@every", "whole number of seconds"]),
    ("@every -1s", ["@every", "duration"]),
    ("@every 10", ["@every", "duration"]),
    ("@every 1d", ["@every", "duration"]),
    ("@every 1h x", ["@every", "duration"]),
    ("@every 9000h", ["@every", "at most"]),
]


@pytest.mark.parametrize(("text", "words"), BAD, ids=[repr(t)[:40] for t, _ in BAD])
def test_bad_input_is_a_cron_error_naming_the_problem(text: object, words: list[str]) -> None:
    with pytest.raises(CronError) as caught:
        parse_cron(text)  # type: ignore[arg-type]
    error = caught.value
    assert isinstance(error, ValidationError)
    assert error.field == "cron"
    assert str(error).startswith("cron: ")
    for word in words:
        assert word in error.message, (word, error.message)


def test_the_documented_example_message() -> None:
    with pytest.raises(CronError) as caught:
        parse_cron("0 0 8 ? * FOO")
    assert str(caught.value) == "cron: day-of-week field 'FOO': unknown name FOO"


@pytest.mark.parametrize("text", ["0 0 8 ? * FOO", "", "@every 0s", None])
def test_describe_rejects_what_parse_rejects(text: object) -> None:
    with pytest.raises(CronError):
        describe_cron(text)  # type: ignore[arg-type]


def test_invalid_input_is_not_cached_as_valid() -> None:
    for _ in range(2):
        with pytest.raises(CronError):
            parse_cron("61 * * * * *")


@pytest.mark.parametrize(
    "text",
    [
        "0 0 8 ? * MON",
        "0 0 0 1-1 * ?",
        "0 0 22-2 * * *",
        "0 0 0 ? * FRI-MON",
        "0 0 0 L-30 * ?",
        "0 0 0 31W * ?",
        "0 0 0 ? * 7L",
        "0 0 0 ? * 7#5",
        "*/60 */60 */24 */31 */12 */7 */230",
        "@every 8784h",
        "@every 1s",
        "@every 2000ms",
        "@EVERY 1h30m",
        "@Hourly",
        "  @daily  ",
    ],
)
def test_edge_of_the_grammar_is_accepted(text: str) -> None:
    assert parse_cron(text).source == text
    assert describe_cron(text)
