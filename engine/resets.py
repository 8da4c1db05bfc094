"""When a limit lifts: the reset time a limit message names, as an aware datetime."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import date, datetime, time, timedelta, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from engine.patterns import Patterns, load_patterns

log = logging.getLogger(__name__)

_MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")

_UNKNOWN_ZONES: set[str] = set()  # each reported once
# A dated reset this little in the past has just happened (clocks differ); further back, it is next year's.
_JUST_PAST = timedelta(hours=1)
# Messages name the minute, cut down (a reset at 18:41:55 reads "6:41pm"): a time in the current minute
# has not passed yet, it ends with the minute.
_MINUTE = timedelta(minutes=1)


def _zone(name: str | None, fallback: tzinfo) -> tzinfo:
    if not name:
        return fallback
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        if name not in _UNKNOWN_ZONES:
            _UNKNOWN_ZONES.add(name)
            log.warning("reset time zone %r is not a known IANA zone; local time is assumed", name)
        return fallback


def _clock(g: Mapping[str, str | None]) -> tuple[int, int] | None:
    hour, minute = int(g["hour"] or 0), int(g.get("minute") or 0)
    ampm = (g.get("ampm") or "").lower()
    if ampm:
        if not 1 <= hour <= 12:
            return None
        hour = hour % 12 + (12 if ampm.startswith("p") else 0)
    elif g.get("minute") is None:
        return None  # a bare number ("resets 5 times") is not a time
    return (hour, minute) if hour < 24 and minute < 60 else None


def _reset_date(g: Mapping[str, str | None], local_now: datetime, at: time, zone: tzinfo) -> date | None:
    today = local_now.date()
    month, day, weekday = g.get("month"), g.get("day"), g.get("weekday")
    if month and day:
        # The message names no year: a limit resets in the future, so a date already past is next year's
        # (Jan 2 seen on Dec 30, or on Jan 14), unless it has only just passed.
        for year in (today.year, today.year + 1):
            try:
                when = date(year, _MONTHS.index(month[:3].lower()) + 1, int(day))
            except ValueError:
                continue
            if datetime.combine(when, at, zone) > local_now - _JUST_PAST:
                return when
        return None
    if weekday:
        when = today + timedelta(days=(_WEEKDAYS.index(weekday[:3].lower()) - today.weekday()) % 7)
        return when if datetime.combine(when, at, zone) > local_now else when + timedelta(days=7)
    return today if datetime.combine(today, at, zone) + _MINUTE > local_now else today + timedelta(days=1)


def parse_reset(text: str, now: datetime, tz: tzinfo, patterns: Patterns | None = None) -> datetime | None:
    """When a limit lifts, from a message: `|<epoch>`, `3am`, `1pm (Europe/Madrid)`, `13:00`, `Mon 9am`,
    `Jan 30, 11:30am`. A time in the current minute means the end of that minute (the message cuts the
    seconds off); a time without a date that is already past today means tomorrow; a date already past
    means next year's; a day name means its next occurrence; a zone in parentheses is used when known, `tz`
    otherwise (an unknown one is logged once)."""
    p = patterns or load_patterns()
    now = now if now.tzinfo else now.replace(tzinfo=tz)
    m = p.rx("reset_epoch").search(text)
    if m:
        try:
            return datetime.fromtimestamp(int(m["epoch"]), tz)
        except (OverflowError, OSError, ValueError):
            return None
    for m in p.rx("reset_clock").finditer(text):
        g = m.groupdict()
        clock = _clock(g)
        if clock is None:
            continue
        zone = _zone(g.get("tz"), tz)
        at = time(*clock)
        local_now = now.astimezone(zone)
        when = _reset_date(g, local_now, at, zone)
        if when is not None:
            reset = datetime.combine(when, at, zone)
            return reset + _MINUTE if timedelta(0) <= local_now - reset < _MINUTE else reset
    return None


def local_tz() -> tzinfo:
    """This machine's zone, the default for reading reset times."""
    tz = datetime.now().astimezone().tzinfo
    assert tz is not None
    return tz
