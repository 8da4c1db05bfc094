"""Periodic ticks: blocked tasks judged by the watchdog (dispatched, reported or failed), and the janitor."""

from __future__ import annotations

import asyncio
import logging
import time

from engine import moves
from engine.bounded import listed
from engine.context import Context
from engine.durations import format_duration
from engine.janitor import Janitor
from engine.tasks import TaskError
from engine.tmux import TmuxError
from engine.watchdog import Watchdog

log = logging.getLogger(__name__)


class Housekeeping:
    """The slow loops beside dispatch: blocked-task deadlines and the janitor's sweep."""

    def __init__(self, ctx: Context, watchdog: Watchdog, janitor: Janitor) -> None:
        self.ctx = ctx
        self.watchdog = watchdog
        self.janitor = janitor

    async def watchdog_once(self) -> None:
        """Blocked tasks: dispatch those whose dependencies are done now, report and then fail the
        ones that waited too long. (Stalled sessions are judged on the watcher's looks.)"""
        ctx = self.ctx
        scan = ctx.last_scan
        blocked = [t for t in scan.tasks if scan.marked(t.key, "blocked")]
        if not blocked:
            return
        # Sidecar ages are file times: wall clock, whatever clock the engine is given.
        now = time.time()
        verdicts = await asyncio.to_thread(
            self.watchdog.blocked, blocked, ctx.config.projects_dir, ctx.projects, now
        )
        wake = False
        for v in verdicts:
            waited = format_duration(now - v.since)
            waiting = listed(v.missing)
            if v.verdict == "ready":
                wake = True
            elif v.verdict == "warn":
                log.warning("%s: blocked for %s, waiting for %s", v.task.path, waited, waiting)
                ctx.emit("blocked_too_long", task=v.task.key, reason=f"blocked for {waited}: {waiting}")
            else:
                reason = f"blocked for {waited}; still waiting for {waiting}"
                try:
                    await asyncio.to_thread(moves.fail, v.task.path, reason)
                except TaskError as exc:
                    log.error("%s", exc)
                    continue
                log.error("%s: moved to failed/: %s", v.task.path, reason)
                ctx.emit("failed", task=v.task.key, reason=reason)
                wake = True
        if wake:
            ctx.wake_dispatch.set()

    async def janitor_once(self) -> None:
        """Housekeeping (see engine/janitor.py); sessions being launched count as live."""
        ctx = self.ctx

        def sweep() -> None:
            live = set(ctx.tmux.list_sessions()) | set(ctx.running)
            self.janitor.run_once(ctx.discover(), live)

        try:
            await asyncio.to_thread(sweep)
        except TmuxError as exc:
            log.error("janitor: %s", exc)
