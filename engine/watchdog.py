"""Watchdog: blocked tasks whose dependencies arrived or that waited too long, agents that stopped moving."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from engine import sidecars
from engine.config import WatchdogConfig
from engine.patterns import Patterns
from engine.tasks import DoneListing, Task, TaskError, resolve_dependencies

Verdict = Literal["ready", "warn", "fail"]


@dataclass(frozen=True)
class BlockedVerdict:
    """What to do about one blocked task: dispatch it now, tell the operator, or give up on it."""

    task: Task
    verdict: Verdict
    since: float
    missing: tuple[str, ...]


def progress_mark(text: str, patterns: Patterns) -> str:
    """A digest of the pane without its spinner lines: a hung agent's spinner keeps counting seconds,
    so only what the agent writes (answers, tool calls, the box, a dialog) counts as progress."""
    spinner = patterns.rx("spinner")
    kept = [line for line in text.splitlines() if not spinner.match(line.strip())]
    return hashlib.blake2b("\n".join(kept).encode(), digest_size=16).hexdigest()


@dataclass
class Stall:
    """Where one working session's pane last changed."""

    mark: str
    changed_at: float
    stalled: bool = False


@dataclass
class Watchdog:
    """Decisions only; the engine carries them out (sidecars, state, events)."""

    config: WatchdogConfig
    patterns: Patterns
    stalls: dict[str, Stall] = field(default_factory=dict)
    warned: set[str] = field(default_factory=set)
    counters: dict[str, int] = field(
        default_factory=lambda: {"stalled": 0, "unstalled": 0, "blocked_warned": 0, "blocked_failed": 0}
    )

    # ----------------------------------------------------------------- stalled sessions

    def observe(self, session: str, text: str, now: float) -> Literal["stalled", "moving"] | None:
        """Feed one look at a working session: `stalled` when it crosses `stalled_after` without a
        change, `moving` when a stalled one changes again, else None."""
        mark = progress_mark(text, self.patterns)
        seen = self.stalls.get(session)
        if seen is None:
            self.stalls[session] = Stall(mark, now)
            return None
        if mark != seen.mark:
            was = seen.stalled
            self.stalls[session] = Stall(mark, now)
            if was:
                self.counters["unstalled"] += 1
                return "moving"
            return None
        if not seen.stalled and now - seen.changed_at >= self.config.stalled_after:
            seen.stalled = True
            self.counters["stalled"] += 1
            return "stalled"
        return None

    def forget(self, session: str) -> None:
        """The session let go of its task (or was resumed elsewhere): its next task starts fresh."""
        self.stalls.pop(session, None)

    def stalled_since(self, session: str) -> float | None:
        seen = self.stalls.get(session)
        return seen.changed_at if seen is not None and seen.stalled else None

    # ----------------------------------------------------------------- blocked tasks

    def blocked(
        self,
        tasks: Sequence[Task],
        projects_dir: Path | None,
        projects: Mapping[str, Path],
        now: float,
    ) -> list[BlockedVerdict]:
        """Verdicts for the blocked tasks in `tasks` (reads the done queues; run it off the event loop)."""
        listing = DoneListing()
        out: list[BlockedVerdict] = []
        live: set[str] = set()
        for task in tasks:
            try:
                since = sidecars.sidecar_since(task, "blocked")
            except TaskError:
                continue
            if since is None:
                continue
            live.add(task.key)
            status = resolve_dependencies(task, projects_dir, projects, listing)
            missing = status.missing + tuple(f"unsafe {u!r}" for u in status.unsafe)
            waited = now - since
            if status.met:
                out.append(BlockedVerdict(task, "ready", since, ()))
            elif waited >= self.config.blocked_fail:
                self.counters["blocked_failed"] += 1
                out.append(BlockedVerdict(task, "fail", since, missing))
            elif waited >= self.config.blocked_warn and task.key not in self.warned:
                self.warned.add(task.key)
                self.counters["blocked_warned"] += 1
                out.append(BlockedVerdict(task, "warn", since, missing))
        self.warned &= live
        return out
