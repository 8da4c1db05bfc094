"""Injectable time: the system clock and a fake one that tests advance by hand."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from typing import Protocol


class Clock(Protocol):
    """Wall time for timestamps and timeouts; `sleep` is how workers wait between looks."""

    def now(self) -> float: ...

    async def sleep(self, seconds: float) -> None: ...


class SystemClock:
    def now(self) -> float:
        return time.time()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


class FakeClock:
    """A clock that moves only when told; `sleep` yields to the loop without waiting for real."""

    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self._now = start

    def now(self) -> float:
        return self._now

    def advance(self, seconds: float) -> None:
        self._now += seconds

    async def sleep(self, seconds: float) -> None:
        # Workers still poll real panes, so let real time pass briefly; timeouts use `now` only.
        await asyncio.sleep(min(seconds, 0.05))


def iso(ts: float) -> str:
    """ISO 8601 in UTC with seconds, as used in events and footers."""
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
