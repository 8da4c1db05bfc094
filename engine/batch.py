"""Coalesces the pane reads of many concurrent waiters into one tmux invocation per short window."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Generic, TypeVar

from engine.tmux import TmuxClient

T = TypeVar("T")

WINDOW = 0.02  # long enough to gather the waiters of one polling round, short against a 100 ms poll


class _Coalescer(Generic[T]):
    """Callers asking for a name within one window share one call that answers every name at once."""

    def __init__(self, fetch: Callable[[list[str]], dict[str, T]], missing: T) -> None:
        self._fetch = fetch
        self._missing = missing
        self._pending: dict[str, list[asyncio.Future[T]]] = {}
        self._scheduled = False

    async def get(self, name: str) -> T:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._pending.setdefault(name, []).append(future)
        if not self._scheduled:
            self._scheduled = True
            loop.call_later(WINDOW, lambda: loop.create_task(self._flush()))
        return await future

    async def _flush(self) -> None:
        pending, self._pending, self._scheduled = self._pending, {}, False
        try:
            found = await asyncio.to_thread(self._fetch, list(pending))
        except Exception as exc:
            for futures in pending.values():
                for future in futures:
                    if not future.done():
                        future.set_exception(exc)
            return
        for name, futures in pending.items():
            for future in futures:
                if not future.done():
                    future.set_result(found.get(name, self._missing))


class PaneReader:
    """`capture` and `command` for many sessions, each round of requests served by one tmux call."""

    def __init__(self, tmux: TmuxClient, lines: int = 80) -> None:
        self._captures: _Coalescer[str] = _Coalescer(lambda names: tmux.capture_many(names, lines), "")
        self._commands: _Coalescer[str] = _Coalescer(lambda _names: tmux.pane_commands(), "")

    async def capture(self, name: str) -> str:
        return await self._captures.get(name)

    async def command(self, name: str) -> str:
        """The foreground command of the session's pane; empty if the session is gone."""
        return await self._commands.get(name)
