"""File watch: wakes the dispatcher on inbox changes and the watcher on done signals (watchfiles)."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Mapping
from pathlib import Path

from engine.context import Context

log = logging.getLogger(__name__)


def becoming_projects(root: Path | None, projects: Mapping[str, Path]) -> frozenset[str]:
    """Folders under `root` (projects_dir) that may yet become projects: the folder while it has no
    `.agent-queue`, else its `.agent-queue`. A clone or a copy makes the folder first and its files
    later, and the watch on projects_dir alone sees only the folder."""
    try:
        entries = list(os.scandir(root)) if root is not None else []
    except OSError:
        return frozenset()
    out: set[str] = set()
    for entry in entries:
        if entry.name.startswith(".") or projects.get(entry.name) == Path(entry.path):
            continue
        try:
            if not entry.is_dir(follow_symlinks=False):
                continue
        except OSError:
            continue
        queue = os.path.join(entry.path, ".agent-queue")
        if not os.path.isdir(os.path.join(queue, "inbox")):  # one with an inbox was refused
            out.add(queue if os.path.isdir(queue) else entry.path)
    return frozenset(out)


class FileWatch:
    """Watches the inboxes, projects_dir, folders becoming projects and the done-signal folder; restarted
    when the set of projects changes."""

    def __init__(self, ctx: Context, retry_after: float) -> None:
        self.ctx = ctx
        self.retry_after = retry_after
        self.becoming: frozenset[str] = frozenset()
        self._restart = asyncio.Event()

    def update(self, projects: dict[str, Path], becoming: frozenset[str]) -> None:
        """The dispatcher's latest discovery: the watch restarts on the new folders if they changed."""
        if projects != self.ctx.projects or becoming != self.becoming:
            self.ctx.projects, self.becoming = projects, becoming
            self._restart.set()

    def _paths(self, signals: str) -> list[str]:
        config = self.ctx.config
        paths = [signals] + [str(d / ".agent-queue" / "inbox") for d in self.ctx.projects.values()]
        if config.projects_dir and config.projects_dir.is_dir():
            paths.append(str(config.projects_dir))
        return [p for p in paths if Path(p).is_dir()] + sorted(self.becoming)

    async def run(self) -> None:
        from watchfiles import Change, awatch

        ctx = self.ctx
        self._restart = asyncio.Event()
        signals = str(ctx.config.watcher.done_signal_dir)
        while True:
            self._restart.clear()
            becoming = self.becoming
            paths = self._paths(signals)
            # Files that arrived while the watch was (re)starting raise no event: look once it is up.
            for delay in (0.2, 1.0):
                ctx.wake_later(ctx.wake_dispatch, delay)
            try:
                async for changes in awatch(
                    *paths,
                    stop_event=self._restart,
                    step=10,
                    debounce=30,
                    recursive=False,
                    yield_on_timeout=False,
                ):
                    if any(Path(p).parent == Path(signals) for _, p in changes):
                        ctx.wake_watch.set()
                    if any(
                        c != Change.deleted
                        and Path(p).parent != Path(signals)
                        # In a folder becoming a project only its queue's next step counts, not the
                        # edits of whoever works there.
                        and (str(Path(p).parent) not in becoming or Path(p).name in (".agent-queue", "inbox"))
                        for c, p in changes
                    ):
                        ctx.wake_dispatch.set()
            except Exception:
                current = asyncio.current_task()
                if current is not None and current.cancelling():
                    raise  # a cancellation that surfaced as another error: stop, do not watch again
                log.exception("file watch failed; the periodic scan goes on")
                await asyncio.sleep(self.retry_after)
