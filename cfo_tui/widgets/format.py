"""Text formatting shared by the panes: durations, clock times, and the styles of state and priority words."""

from __future__ import annotations

import re
import time

# A state is always shown as its word; the colour only reinforces it.
STATE_STYLES: dict[str, str] = {
    "working": "bold green",
    "launching": "cyan",
    "recycling": "blue",
    "idle": "dim",
    "stalled": "bold yellow",
    "out of pool": "bold red",
}
PRIORITY_STYLES: dict[str, str] = {
    "critical": "bold red",
    "high": "yellow",
    "default": "",
    "low": "dim",
}
OUTCOME_STYLES: dict[str, str] = {"done": "green", "failed": "bold red"}
JOB_STYLES: dict[str, str] = {"submitting": "dim", "submitted": "dim", "queued": "yellow", "running": "green"}

_DIGITS = re.compile(r"(\d+)")


def elapsed(seconds: float) -> str:
    """`42s`, `3m 05s`, `1h 02m`, `2d 03h`: two units at most, so the column stays narrow."""
    s = max(0, int(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m {s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h {s % 3600 // 60:02d}m"
    return f"{s // 86400}d {s % 86400 // 3600:02d}h"


def age(seconds: float) -> str:
    """One unit: `12s`, `5m`, `3h`, `2d` — for ages in long lists."""
    s = max(0, int(seconds))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if s >= size:
            return f"{s // size}{unit}"
    return f"{s}s"


def clock(ts: float, now: float, seconds: bool = True) -> str:
    """Local time: `14:05:09` (or `14:05`) today, `05-17 14:05` on another day."""
    then, today = time.localtime(ts), time.localtime(now)
    if then[:3] == today[:3]:
        return time.strftime("%H:%M:%S" if seconds else "%H:%M", then)
    return time.strftime("%m-%d %H:%M", then)


def natural_key(name: str) -> tuple[str | int, ...]:
    """Sort `ccl-auto-9` before `ccl-auto-10`."""
    return tuple(int(part) if part.isdigit() else part for part in _DIGITS.split(name))


def count(n: int) -> str:
    return f"{n:,}"
