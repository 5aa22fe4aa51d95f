"""The shared rules of wod/values.py: each written once, used by every layer."""

from __future__ import annotations

from datetime import datetime

import pytest

from wod.settings import Settings
from wod.values import local_time, parse_age, parse_students, seat_error, truthy


@pytest.mark.parametrize("word", ["on", "ON", "yes", "y", "true", "t", "1", " True "])
def test_truthy_words(word):
    assert truthy(word) is True


@pytest.mark.parametrize("word", ["off", "no", "false", "0", "", "maybe"])
def test_falsy_words(word):
    assert truthy(word) is False


def test_truthy_non_strings():
    assert truthy(True) and truthy(1) and not truthy(0) and not truthy(None)


@pytest.mark.parametrize(
    "text, seconds",
    [("90d", 90 * 86400), ("12h", 43200), ("30m", 1800), ("45s", 45), ("2w", 1209600), ("7", 7)],
)
def test_parse_age(text, seconds):
    assert parse_age(text) == seconds


@pytest.mark.parametrize("bad", ["soon", "", "-3d", "3x", "d"])
def test_parse_age_refuses(bad):
    with pytest.raises(ValueError, match="expected e.g. 90d"):
        parse_age(bad)


@pytest.mark.parametrize("text, pair", [("3", (3, 3)), ("3-5", (3, 5)), ("3,5", (3, 5))])
def test_parse_students(text, pair):
    assert parse_students(text) == pair


@pytest.mark.parametrize(
    "bad, message",
    [("5-3", "reversed"), ("x", "not a student number"), ("3-", "not a student"), ("-3", "not")],
)
def test_parse_students_refuses(bad, message):
    with pytest.raises(ValueError, match=message):
        parse_students(bad)


def test_seat_error():
    s = Settings(user_min=1, user_max=10)
    assert seat_error(3, s) is None
    assert seat_error(0, s) == "student 0 is outside this backend's range 1-10"
    assert (
        seat_error(11, s, what="range end") == "range end 11 is outside this backend's range 1-10"
    )
    assert seat_error(7, s, workshop=("WKSHP-X", 1, 6)) == (
        "student 7 is outside the range 1-6 of WKSHP-X"
    )


def test_local_time_is_local_iso():
    stamp = 1_700_000_000.0
    shown = local_time(stamp)
    assert datetime.fromisoformat(shown).timestamp() == stamp
    assert shown.startswith(datetime.fromtimestamp(stamp).strftime("%Y-%m-%dT%H:%M:%S"))
    assert local_time(None) is None
