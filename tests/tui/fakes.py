"""A recording stand-in for the Engine: fixed snapshots, canned pane tails, commands logged as calls."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import replace

from engine.config import Config
from engine.config_reader import config_from_dict
from engine.events import Event
from engine.snapshot import Snapshot, SwapRow

NOW = 1_800_000_000.0
"""The frozen clock: 2027-01-15 08:00:00 UTC."""


def make_config(accounts: tuple[str, ...] = ("primary", "secondary")) -> Config:
    return config_from_dict(
        {
            "accounts": [{"name": name, "home": f"/nonexistent/{name}"} for name in accounts],
            "pool": {
                "dedicated": [{"name": "ccl-1-conformvault", "project": "/nonexistent/conformvault"}],
                "autonomous": {"prefix": "ccl-auto-", "start_index": 11, "min": 2, "max": 200},
            },
            "state_dir": "/nonexistent/state",
        }
    )


class FakeEngine:
    """Implements the console's EngineApi over a Snapshot that tests replace at will."""

    def __init__(
        self,
        snap: Snapshot,
        tails: dict[str, str] | None = None,
        swap_to: str | None = "secondary",
        now: float = NOW,
    ) -> None:
        self.snap = snap
        self.tails = tails or {}
        self.swap_to = swap_to
        self.now = now
        self.calls: list[tuple[str, ...]] = []
        self.tail_requests: list[str] = []
        self.snapshots = 0
        self.stopped = False
        self._callbacks: list[Callable[[Event], None]] = []

    # ---- EngineApi

    def snapshot(self) -> Snapshot:
        self.snapshots += 1
        return self.snap

    def subscribe(self, callback: Callable[[Event], None]) -> Callable[[], None]:
        self._callbacks.append(callback)
        return lambda: self._callbacks.remove(callback)

    async def pane_tail(self, name: str, lines: int = 40) -> str:
        self.tail_requests.append(name)
        return self.tails.get(name, "")

    def pause_dispatch(self) -> None:
        self.calls.append(("pause_dispatch",))
        self.snap = replace(self.snap, dispatch="paused")
        self.emit(Event("paused", self.now, reason="operator"))

    def resume_dispatch(self) -> None:
        self.calls.append(("resume_dispatch",))
        self.snap = replace(self.snap, dispatch="running")
        self.emit(Event("resumed", self.now, reason="operator"))

    def force_complete(self, name: str) -> bool:
        self.calls.append(("force_complete", name))
        return any(s.name == name and s.state == "working" for s in self.snap.sessions)

    def retry_launches(self) -> list[str]:
        self.calls.append(("retry_launches", ""))
        held = [s.name for s in self.snap.sessions if s.held_until is not None]
        self.snap = replace(
            self.snap, sessions=tuple(replace(s, held_until=None) for s in self.snap.sessions)
        )
        return held

    def request_swap(self, reason: str, drain: bool = False) -> str | None:
        self.calls.append(("request_swap", reason + (" (drain)" if drain else "")))
        if self.swap_to is None:
            return None
        was = self.snap.active_account
        how = f"drain: tasks finish on {was}" if drain else "now: tasks move at once"
        swap = SwapRow(self.now, was, self.swap_to, None, "operator", how, (), 0.4, trigger="operator")
        # The operator's swap leaves the account it leaves usable: with two accounts, the next target.
        self.snap = replace(
            self.snap, active_account=self.swap_to, swaps=(*self.snap.swaps, swap), swap_target=was
        )
        self.emit(Event("swap", self.now, account=self.swap_to, reason=reason))
        return self.swap_to

    async def run(self, stop: asyncio.Event) -> None:
        # As the engine does once its startup (state, pool, recovery) is done.
        self.emit(Event("started", self.now, account=self.snap.active_account))
        await stop.wait()
        self.stopped = True

    # ---- test controls

    def emit(self, event: Event) -> None:
        for callback in list(self._callbacks):
            callback(event)
