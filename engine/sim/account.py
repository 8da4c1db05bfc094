"""The account's usage limit, shared by every session of the account: `sim-quota` in its config dir.

A subscriber's limit belongs to the account, not to a conversation: once the server answers "rejected",
every session of that account meets the limit at its next request until the reset time the message
names. `sim-quota` holds the message on its first line and, when the limit lifts by itself, a line
`until <epoch>`; without that line the account stays exhausted until the file is removed.
"""

from __future__ import annotations

import math
import os
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from datetime import datetime

QUOTA_FILE = "sim-quota"
UNTIL = "until "
ACCOUNT_LIMIT_MESSAGE = "You've hit your session limit · resets {reset}"
"""`sim: exhaust`'s message unless the task names one: the wording of a subscriber's five-hour limit."""


def wall() -> float:
    """Wall-clock time: a reset is a moment every session of the account agrees on."""
    return time.time()


def limit_message(config_dir: str, default: str, now: float | None = None) -> str | None:
    """The limit message while the account is exhausted, else None; `now` is wall-clock time."""
    path = os.path.join(config_dir, QUOTA_FILE)
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            lines = handle.read().strip().splitlines()
    except FileNotFoundError:
        return None
    except OSError:
        lines = []
    message, until = _parse(lines)
    if until is not None and (wall() if now is None else now) >= until:
        return None  # the limit has reset
    return message or default


def _parse(lines: list[str]) -> tuple[str, float | None]:
    until: float | None = None
    if len(lines) > 1 and lines[-1].startswith(UNTIL):
        try:
            until = float(lines[-1][len(UNTIL) :])
        except ValueError:
            until = None
        else:
            lines = lines[:-1]
    return "\n".join(lines).strip(), until


def reset_time(template: str, now: float, after: float) -> float:
    """When a limit hit at `now` lifts, `after` seconds on, as exactly as its message names it: a clock
    time (`{reset}`) names a whole minute, so the limit lifts at the first one `after` or more ahead,
    as real limits lift on the hour; `{epoch}` names the second."""
    at = now + after
    if "{reset}" in template:
        return math.ceil(at / 60) * 60
    return float(math.ceil(at))


def clock(epoch: float) -> str:
    """`8:47pm (Europe/Madrid)`, `3am (UTC)`: a reset time as the real agent shows it, in local time, the
    zone named when this machine's IANA name for it is known."""
    from datetime import datetime

    local = datetime.fromtimestamp(epoch).astimezone()
    hour = local.hour % 12 or 12
    shown = f"{hour}{local.strftime(':%M') if local.minute else ''}{'am' if local.hour < 12 else 'pm'}"
    zone = zone_name(local)
    return f"{shown} ({zone})" if zone else shown


def zone_name(local: datetime) -> str | None:
    """The IANA name of the zone `local` (an aware time) is in, if one can be found that agrees."""
    from zoneinfo import ZoneInfo

    candidates = [os.environ.get("TZ", "").lstrip(":")]
    try:
        with open("/etc/timezone", encoding="utf-8") as handle:
            candidates.append(handle.read().strip())
    except OSError:
        pass
    target = os.path.realpath("/etc/localtime")
    if "zoneinfo/" in target:
        candidates.append(target.split("zoneinfo/", 1)[1])
    candidates.append("UTC")
    for name in candidates:
        if not name or name.startswith("/"):
            continue
        try:
            zone = ZoneInfo(name)
        except (ValueError, OSError, KeyError):
            continue
        if local.astimezone(zone).utcoffset() == local.utcoffset():
            return name
    return None


def exhaust(config_dir: str, template: str, after: float, now: float | None = None) -> str:
    """The account runs out at `now` (wall-clock) until `after` seconds on (see `reset_time`): writes
    `sim-quota` at once, for every session of the account to read, and returns the message shown."""
    now = wall() if now is None else now
    until = reset_time(template, now, after)
    message = template.replace("{reset}", clock(until)).replace("{epoch}", str(int(until)))
    path = os.path.join(config_dir, QUOTA_FILE)
    temporary = f"{path}.{os.getpid()}.tmp"
    os.makedirs(config_dir, exist_ok=True)
    with open(temporary, "w", encoding="utf-8") as handle:
        handle.write(f"{message}\n{UNTIL}{until:.3f}\n")
    os.replace(temporary, path)  # other sessions read the whole file or none of it
    return message
