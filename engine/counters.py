"""Task outcome counters: a lifetime total and one per local day, counted from the outcome events alone."""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping
from datetime import datetime
from typing import Final

OUTCOMES: Final = frozenset({"completed", "failed"})
"""The event types that are a task's outcome: each one emitted is counted, whichever path emitted it
(a run's end, a bad file, a blocked task given up, a delegated job), so every figure agrees."""
COUNTED_DAYS = 7
"""Per-day counters older than this age out."""


def day_of(ts: float) -> str:
    """The local calendar day of `ts`, as used in the per-day counters (`completed:2026-11-21`)."""
    return datetime.fromtimestamp(ts).strftime("%Y-%m-%d")


def tally(counters: MutableMapping[str, int], counter: str, now: float) -> None:
    """Count one `counter` in its lifetime total and in today's; days past COUNTED_DAYS age out."""
    for key in (counter, f"{counter}:{day_of(now)}"):
        counters[key] = counters.get(key, 0) + 1
    cutoff = f"{counter}:{day_of(now - COUNTED_DAYS * 86400)}"
    for key in [k for k in counters if k.startswith(counter + ":") and k < cutoff]:
        del counters[key]


def today(counters: Mapping[str, int], counter: str, now: float) -> int:
    """`counter` for the local day of `now`."""
    return counters.get(f"{counter}:{day_of(now)}", 0)
