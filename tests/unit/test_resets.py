"""Reset times: every message form a limit names its reset in, read at a fixed moment in a fixed zone."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from engine.resets import parse_reset

TZ = ZoneInfo("Europe/Madrid")
# A Wednesday morning: 3am has passed (so "resets 3am" means tomorrow), Monday is five days away.
NOW = datetime(2026, 1, 14, 10, 30, tzinfo=TZ)

RESETS = {
    "Claude AI usage limit reached|1768402800": "2026-01-14T16:00:00+01:00",
    "Your limit will reset at 1pm (Europe/Madrid).": "2026-01-14T13:00:00+01:00",
    "5-hour limit reached ∙ resets 3am": "2026-01-15T03:00:00+01:00",
    "resets 11am": "2026-01-14T11:00:00+01:00",
    "resets 12am": "2026-01-15T00:00:00+01:00",
    "resets 12pm": "2026-01-14T12:00:00+01:00",
    "resets 2:30pm": "2026-01-14T14:30:00+01:00",
    "resets 13:00": "2026-01-14T13:00:00+01:00",
    "resets 09:15": "2026-01-15T09:15:00+01:00",
    "Limits will reset at 9:30 AM.": "2026-01-15T09:30:00+01:00",
    "resets 2am (Europe/Paris)": "2026-01-15T02:00:00+01:00",
    "resets 8:30pm (Asia/Tokyo)": "2026-01-14T20:30:00+09:00",
    "resets 3pm (Mars/Olympus)": "2026-01-14T15:00:00+01:00",
    "resets 7pm (UTC)": "2026-01-14T19:00:00+00:00",
    "resets Mon 9am": "2026-01-19T09:00:00+01:00",
    "resets Wed 9am": "2026-01-21T09:00:00+01:00",
    "resets Wednesday 11am": "2026-01-14T11:00:00+01:00",
    "resets Jan 30, 11:30am (Asia/Calcutta)": "2026-01-30T11:30:00+05:30",
    "resets Jan 19 at 7pm": "2026-01-19T19:00:00+01:00",
    "resets Jan 2, 9am": "2027-01-02T09:00:00+01:00",
    "resets Dec 31, 9am": "2026-12-31T09:00:00+01:00",
    "resets Jan 14, 10am": "2026-01-14T10:00:00+01:00",
}


@pytest.mark.parametrize("message", sorted(RESETS))
def test_reset_time(message: str) -> None:
    when = parse_reset(message, NOW, TZ)
    assert when is not None and when.isoformat() == RESETS[message]


@pytest.mark.parametrize(
    "message",
    ["You've hit your limit", "resets 5 times a day", "resets 25:00", "resets 13pm", "resets Feb 30, 9am"],
)
def test_no_reset_time(message: str) -> None:
    assert parse_reset(message, NOW, TZ) is None


def test_a_naive_now_is_taken_in_the_given_zone() -> None:
    when = parse_reset("resets 11am", NOW.replace(tzinfo=None), TZ)
    assert when is not None and when.isoformat() == "2026-01-14T11:00:00+01:00"


def test_a_dated_reset_seen_in_december_for_january_is_next_year() -> None:
    december = datetime(2026, 12, 30, 10, 0, tzinfo=TZ)
    when = parse_reset("resets Jan 2, 9am", december, TZ)
    assert when is not None and when.isoformat() == "2027-01-02T09:00:00+01:00"


def test_an_unknown_zone_is_taken_as_local_time_and_reported_once(caplog: pytest.LogCaptureFixture) -> None:
    for _ in range(2):
        when = parse_reset("resets 3pm (PST)", NOW, TZ)
        assert when is not None and when.isoformat() == "2026-01-14T15:00:00+01:00"
    assert [r.getMessage() for r in caplog.records if "PST" in r.getMessage()] == [
        "reset time zone 'PST' is not a known IANA zone; local time is assumed"
    ]


def test_a_reset_in_the_current_minute_is_the_end_of_that_minute_not_tomorrow() -> None:
    from datetime import UTC, datetime

    from engine.resets import parse_reset

    now = datetime(2026, 12, 6, 18, 41, 30, tzinfo=UTC)
    reset = parse_reset("You've hit your session limit · resets 6:41pm (UTC)", now, UTC)
    assert reset == datetime(2026, 12, 6, 18, 42, tzinfo=UTC)
    earlier = parse_reset("You've hit your session limit · resets 6:40pm (UTC)", now, UTC)
    assert earlier == datetime(2026, 12, 7, 18, 40, tzinfo=UTC)
