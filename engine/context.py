"""The context every engine worker receives: config, tmux, clock, patterns, state, events and wake-ups."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

from engine import counters
from engine import queue as q
from engine.batch import PaneReader
from engine.clock import Clock
from engine.config import Account, Config
from engine.events import Event, EventLog, EventType
from engine.lifecycle import ensure_pool
from engine.lock import EngineError, StateLock
from engine.patterns import Patterns
from engine.runtime import Look, Running
from engine.state import SessionKind, SessionState, State, StateStore
from engine.tmux import TmuxClient

log = logging.getLogger(__name__)

CAPTURE_LINES = 120  # how much of a pane one look reads
RETRY_FIRST = 0.5  # a failed state or queue write is tried again after this, doubling up to RETRY_MAX
RETRY_MAX = 30.0


class Context:
    """What the workers share. Each worker owns one job and reaches the others only through the
    objects it is given; this holds the state they all read and write, and the ways to wake them."""

    def __init__(self, config: Config, tmux: TmuxClient, clock: Clock, patterns: Patterns) -> None:
        self.config = config
        self.tmux = tmux
        self.clock = clock
        self.patterns = patterns
        try:
            config.state_dir.mkdir(parents=True, exist_ok=True)
            self.store = StateStore(config.state_dir)
            self.state: State = self.store.load()
            self.events = EventLog(config.state_dir / "events.jsonl", now=clock.now)
        except OSError as exc:
            raise EngineError(
                f"state_dir {config.state_dir}: cannot be used: {exc.strerror or exc}"
            ) from None
        self.reader = PaneReader(tmux, CAPTURE_LINES)
        self.running: dict[str, Running] = {}
        """Session -> the run it holds, from claim to release."""
        self.projects: dict[str, Path] = {}
        """Project name -> folder, as the last discovery found them."""
        self.queue = q.Queue(max_bytes=config.tasks.max_bytes, settle=config.tasks.settle)
        self.last_scan = q.ScanResult()
        """The dispatcher's latest scan of every queue."""
        self.wake_dispatch = asyncio.Event()
        self.wake_watch = asyncio.Event()
        self.wake_reap = asyncio.Event()
        self._refused_projects: set[str] = set()
        self._pool_lock = threading.Lock()
        self._tasks: set[asyncio.Task[Any]] = set()
        self.lock: StateLock | None = None
        """The state_dir's lock while the engine runs: it carries the degraded note for `cfo status`."""
        self.degraded: str | None = None
        """Why a state or queue write fails now (`cannot write state — No space left on device`)."""
        self.retries = 0
        """Failed writes in a row, for the backoff of the storage loop."""
        self.wake_store = asyncio.Event()
        self.halted: str | None = None
        """Why the engine cannot go on safely: it stops and `run` raises EngineError with this."""
        self.wake_halt = asyncio.Event()

    # ----------------------------------------------------------------- events and state

    def emit(self, kind: EventType, **fields: Any) -> Event:
        """Record an event. A task's outcome (`completed`, `failed`) is counted here, and only here, so
        the console, `cfo status` and /metrics count every path that ends a task the same way; the
        count is saved with it."""
        if kind in counters.OUTCOMES:
            counters.tally(self.state.counters, kind, self.clock.now())
            self.save()
        return self.events.emit(kind, **fields)

    def save(self) -> bool:
        """Write the state; True if it is on disk. A failed write (disk full, read-only, folder gone)
        never raises: the engine is degraded, which is logged once and shown in the status, no task is
        claimed meanwhile, and the storage loop tries again with backoff until a write works."""
        try:
            self.store.save(self.state)
        except OSError as exc:
            self.storage_failed(f"cannot write state — {exc.strerror or exc}")
            return False
        self.storage_works()
        return True

    def storage_failed(self, reason: str) -> None:
        self.retries += 1
        if reason != self.degraded:
            log.error("degraded: %s; no task is claimed until it works again (retrying)", reason)
            self.degraded = reason
            if self.lock is not None:
                self.lock.note(reason)
            self.wake_store.set()

    def storage_works(self) -> None:
        self.retries = 0
        if self.degraded is not None:
            log.warning("no longer degraded: state is written again")
            self.degraded = None
            if self.lock is not None:
                self.lock.note(None)
            self.wake_dispatch.set()

    def retry_delay(self) -> float:
        """How long the storage loop waits before its next try: doubling from RETRY_FIRST."""
        return float(min(RETRY_MAX, RETRY_FIRST * 2 ** max(0, min(self.retries - 1, 10))))

    def halt(self, reason: str) -> None:
        """Stop the engine: going on would leave a task neither in the queue nor in a live run."""
        if self.halted is None:
            self.halted = reason
            self.wake_halt.set()

    def session_state(self, name: str) -> SessionState:
        """The persisted record of session `name`, made on first use."""
        kind: SessionKind = "dedicated" if name in self.config.dedicated_names else "pool"
        current = self.state.sessions.get(name)
        if current is None:
            current = SessionState(name=name, kind=kind, account=self.state.active_account)
            self.state.sessions[name] = current
        return current

    def active_account(self) -> Account:
        """The account new runs start under."""
        return self.config.account(self.state.active_account or "") or self.config.accounts[0]

    def followed_conversations(self) -> frozenset[str]:
        """The ids of the conversations pool runs follow: never a dedicated session's own."""
        return frozenset(r.follower.uuid for r in self.running.values() if r.follower is not None)

    # ----------------------------------------------------------------- tmux and files

    def signal(self, session: str) -> Path:
        """The Stop hook's done-signal file of `session`."""
        return self.config.watcher.done_signal_dir / f"agent-done-{session}"

    def look(self, session: str) -> Look | None:
        """One look at `session` (blocking: call it in a thread); None if it is gone."""
        if not self.tmux.has_session(session):
            return None
        return Look(
            command=self.tmux.current_command(session), text=self.tmux.capture(session, CAPTURE_LINES)
        )

    def ensure_pool_now(self, wanted: int) -> None:
        """At least `wanted` pool sessions alive (blocking); every live managed session has a record."""
        with self._pool_lock:  # two workers creating the same missing session would collide
            ensure_pool(self.config, self.tmux, wanted)
            live = set(self.tmux.list_sessions())
        for name in [*self.config.pool_names, *self.config.dedicated_names]:
            if name in live:
                self.session_state(name)

    def discover(self) -> dict[str, Path]:
        """The projects under projects_dir and those of dedicated sessions (blocking)."""
        dedicated = {d.project.name: d.project for d in self.config.pool.dedicated}
        return q.discover_projects(self.config.projects_dir, dedicated, self._refused_projects)

    # ----------------------------------------------------------------- running

    def reset_wakes(self) -> None:
        """Fresh wake-up events for a run on a new loop."""
        self.wake_dispatch = asyncio.Event()
        self.wake_watch = asyncio.Event()
        self.wake_reap = asyncio.Event()
        self.wake_store = asyncio.Event()
        self.wake_halt = asyncio.Event()

    def wake_later(self, event: asyncio.Event, delay: float) -> None:
        asyncio.get_running_loop().call_later(delay, event.set)

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        """Run `coro` in the background; it is cancelled with the engine and its failure is logged."""
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        task.add_done_callback(_report_crash)

    def spawned(self) -> list[asyncio.Task[Any]]:
        return list(self._tasks)


def _report_crash(task: asyncio.Task[Any]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("engine task failed", exc_info=task.exception())
