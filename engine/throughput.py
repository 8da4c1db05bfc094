"""Throughput: tasks done per hour, the median task time, and each account's use since its last reset."""

from __future__ import annotations

import json
import os
import statistics
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

KEEP = 24 * 3600.0
"""Completions older than a day are forgotten: the strip speaks of the last hour and the current window."""
WINDOW = 5 * 3600.0
"""An account whose reset time is unknown is counted over the last five hours, Claude's usage window."""
MEDIAN_OF = 200
"""The median is over the latest completions, so it follows changes in the kind of work queued."""
SEED_BYTES = 4 * 1024 * 1024


@dataclass(frozen=True)
class Finish:
    at: float
    seconds: float | None
    account: str | None


@dataclass(frozen=True)
class AccountUse:
    name: str
    tasks: int
    seconds: float
    since: float
    since_reset: bool
    """True when `since` is the account's last limit reset, False for the five-hour fallback."""


@dataclass(frozen=True)
class ThroughputView:
    last_hour: int
    median_seconds: float | None
    accounts: tuple[AccountUse, ...] = ()


class Throughput:
    """Completions of the last day, in memory; seeded from the event log so a restart keeps the figures."""

    def __init__(self) -> None:
        self._done: deque[Finish] = deque()

    def record(self, at: float, seconds: float | None, account: str | None) -> None:
        self._done.append(Finish(at, seconds, account))
        self._trim(at)

    def _trim(self, now: float) -> None:
        while self._done and self._done[0].at < now - KEEP:
            self._done.popleft()

    def seed(self, events_path: Path, now: float) -> int:
        """Read the completions of the last day from the end of `events.jsonl`; returns how many."""
        found = [f for f in _completions(_tail_lines(events_path)) if f.at >= now - KEEP]
        for finish in sorted(found, key=lambda f: f.at):
            self._done.append(finish)
        return len(found)

    def view(self, now: float, accounts: Mapping[str, tuple[float | None, float | None]]) -> ThroughputView:
        """`accounts`: name -> (usable again at, last reset), in config order."""
        self._trim(now)
        last_hour = sum(1 for f in self._done if f.at >= now - 3600)
        durations = [f.seconds for f in list(self._done)[-MEDIAN_OF:] if f.seconds is not None]
        uses: list[AccountUse] = []
        for name, (usable_at, last_reset) in accounts.items():
            reset = usable_at if usable_at is not None and usable_at <= now else last_reset
            known = reset is not None and reset >= now - KEEP
            since = reset if known and reset is not None else now - WINDOW
            mine = [f for f in self._done if f.account == name and f.at >= since]
            used = sum(f.seconds or 0.0 for f in mine)
            uses.append(AccountUse(name, len(mine), used, since, known))
        return ThroughputView(
            last_hour=last_hour,
            median_seconds=statistics.median(durations) if durations else None,
            accounts=tuple(uses),
        )


def _tail_lines(path: Path) -> list[str]:
    try:
        with path.open("rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            fh.seek(max(0, size - SEED_BYTES))
            data = fh.read()
    except OSError:
        return []
    lines = data.decode("utf-8", "replace").splitlines()
    return lines[1:] if len(data) >= SEED_BYTES else lines  # the first may be cut


def _completions(lines: Iterable[str]) -> Iterable[Finish]:
    for line in lines:
        if '"completed"' not in line:
            continue
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if not isinstance(event, dict) or event.get("type") != "completed":
            continue
        at = _epoch(event.get("ts"))
        if at is None:
            continue
        account = event.get("account")
        yield Finish(at, _number(event.get("seconds")), account if isinstance(account, str) else None)


def _number(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _epoch(value: object) -> float | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None
