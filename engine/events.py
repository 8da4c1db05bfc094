"""The append-only event log (events.jsonl): typed events, a torn-line-tolerant reader, live subscribers."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Final, Literal, Protocol, TypeVar, get_args

from engine.redact import redact, redact_tree

log = logging.getLogger(__name__)

EventType = Literal[
    "dispatched",
    "submitted",
    "completed",
    "failed",
    "requeued",
    "blocked",
    "unblocked",
    "blocked_too_long",
    "delegated",
    "delegation_fallback",
    "swap",
    "moved",
    "quota_hit",
    "all_exhausted",
    "paused",
    "resumed",
    "launch_failed",
    "api_error",
    "auth_failed",
    "session_disabled",
    "stalled",
    "unstalled",
    "recovered",
    "started",
    "stopped",
    "archived",
    "rotated",
    "cleaned",
    "inbox_stale",
]
"""Every type the engine emits (docs/operations.md describes each); readers must accept others."""
KNOWN_TYPES: frozenset[str] = frozenset(get_args(EventType))

DISPATCHED: Final = "dispatched"
COMPLETED: Final = "completed"
FAILED: Final = "failed"
SWAP: Final = "swap"
RESUMED: Final = "resumed"
STALLED: Final = "stalled"


class Emit(Protocol):
    """How workers record an event: its type and its fields."""

    def __call__(self, kind: EventType, **fields: Any) -> object: ...


_CORE = ("ts", "type", "session", "task", "account", "reason")

EventCallback = Callable[["Event"], None]
T = TypeVar("T")
_FLAGS = os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC


def iso_ms(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class Event:
    """One line of events.jsonl; `type` is open (see KNOWN_TYPES), `extra` holds any further fields."""

    type: str
    ts: float
    session: str | None = None
    task: str | None = None
    account: str | None = None
    reason: str | None = None
    extra: Mapping[str, object] = field(default_factory=dict)

    def to_dict(self) -> dict[str, object]:
        out: dict[str, object] = {"ts": iso_ms(self.ts), "type": self.type}
        for key in ("session", "task", "account", "reason"):
            value = getattr(self, key)
            if value is not None:
                out[key] = value
        out.update((k, v) for k, v in self.extra.items() if k not in _CORE)
        return out

    @classmethod
    def from_dict(cls, data: object) -> Event:
        """Raises ValueError if `data` is not an event."""
        if not isinstance(data, dict):
            raise ValueError("not an object")
        kind, ts = data.get("type"), data.get("ts")
        if not isinstance(kind, str) or not isinstance(ts, str):
            raise ValueError("missing type or ts")
        core: dict[str, str | None] = {}
        for key in ("session", "task", "account", "reason"):
            value = data.get(key)
            if value is not None and not isinstance(value, str):
                raise ValueError(f"{key} is not text")
            core[key] = value
        return cls(
            type=kind,
            ts=datetime.fromisoformat(ts).timestamp(),
            session=core["session"],
            task=core["task"],
            account=core["account"],
            reason=core["reason"],
            extra={k: v for k, v in data.items() if k not in _CORE},
        )

    def to_line(self) -> bytes:
        text = json.dumps(self.to_dict(), ensure_ascii=False, separators=(",", ":"), default=str)
        # Names that are not UTF-8 arrive as lone surrogates; backslashreplace turns them into JSON escapes.
        return text.encode("utf-8", "backslashreplace") + b"\n"


class EventLog:
    """Appends events to a JSONL file, one unbuffered write per event, and fans them out to subscribers.

    Thread-safe: workers in threads may emit. Callbacks run on the emitting thread; use
    `subscribe_async` to receive events on an asyncio loop instead.
    """

    def __init__(self, path: Path, now: Callable[[], float] = time.time) -> None:
        self.path = path
        self._now = now
        self._lock = threading.Lock()
        self._callbacks: list[EventCallback] = []
        path.parent.mkdir(parents=True, exist_ok=True)
        self._fd: int | None = os.open(path, _FLAGS, 0o600)
        # A crash mid-write leaves a torn last line; end it so the next event starts on a line of its own.
        size = os.fstat(self._fd).st_size
        if size and os.pread(self._fd, 1, size - 1) != b"\n":
            os.write(self._fd, b"\n")
        self._torn = False

    def _write(self, line: bytes) -> None:
        assert self._fd is not None
        if self._torn:
            line = b"\n" + line
        view = memoryview(line)
        try:
            while view:
                view = view[os.write(self._fd, view) :]
        except OSError:
            # A part went in: the next event starts a line of its own.
            self._torn = self._torn or len(view) < len(line)
            raise
        self._torn = False

    def emit(
        self,
        kind: EventType,
        *,
        session: str | None = None,
        task: str | None = None,
        account: str | None = None,
        reason: str | None = None,
        **extra: object,
    ) -> Event:
        return self.append(Event(kind, self._now(), session, task, account, reason, extra))

    def append(self, event: Event) -> Event:
        """Write `event` with its secrets redacted (one write call), then hand that to every subscriber;
        returns it."""
        event = _redacted(event)
        line = event.to_line()
        with self._lock:
            if self._fd is None:
                raise ValueError(f"{self.path}: event log is closed")
            try:
                self._write(line)
            except OSError as exc:
                # A full or read-only disk must not stop the engine between a move and its bookkeeping:
                # the event still reaches the console and the log, and the state write reports the fault.
                log.error("%s: event not written: %s", self.path, exc.strerror or exc)
            callbacks = list(self._callbacks)
        for callback in callbacks:
            try:
                callback(event)
            except Exception:
                log.exception("event subscriber %r failed on %s", callback, event.type)
        return event

    def rotate(self, move: Callable[[], T]) -> T:
        """Run `move` (which renames the log file away) under the write lock, then go on writing to a
        fresh file at the same path: no event is lost or lands in the moved file. Returns `move()`."""
        with self._lock:
            result = move()
            fd = os.open(self.path, _FLAGS, 0o600)
            try:
                if self._fd is not None:
                    # The same descriptor number now names the new file, so nothing else needs to know.
                    os.dup2(fd, self._fd, inheritable=False)
            finally:
                os.close(fd)
        return result

    def subscribe(self, callback: EventCallback) -> Callable[[], None]:
        """Call `callback` for every later event; returns the function that unsubscribes it."""
        with self._lock:
            self._callbacks.append(callback)

        def unsubscribe() -> None:
            with self._lock, contextlib.suppress(ValueError):
                self._callbacks.remove(callback)

        return unsubscribe

    def subscribe_async(
        self, loop: asyncio.AbstractEventLoop, maxsize: int = 1000
    ) -> tuple[asyncio.Queue[Event], Callable[[], None]]:
        """An asyncio queue on `loop` receiving every later event; when full, the oldest is dropped."""
        queue: asyncio.Queue[Event] = asyncio.Queue(maxsize)

        def offer(event: Event) -> None:
            if queue.full():
                queue.get_nowait()
            queue.put_nowait(event)

        def forward(event: Event) -> None:
            with contextlib.suppress(RuntimeError):  # the loop has closed: nobody is listening
                loop.call_soon_threadsafe(offer, event)

        return queue, self.subscribe(forward)

    def close(self) -> None:
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None

    def __enter__(self) -> EventLog:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def _redacted(event: Event) -> Event:
    """`event` without secrets: a reason may quote an error a service sent back, key included."""
    return replace(
        event,
        reason=None if event.reason is None else redact(event.reason),
        extra={key: redact_tree(value) for key, value in event.extra.items()},
    )


def read_events(
    path: Path,
    since: float | None = None,
    types: Collection[str] | None = None,
    last: int | None = None,
) -> list[Event]:
    """Events in file order, from `since` (epoch seconds, inclusive), of `types`, keeping the `last` N.

    Unparsable lines are skipped: silently for a torn last line (a crash mid-write), with one
    warning for corrupt lines elsewhere.
    """
    try:
        f = path.open("rb")
    except FileNotFoundError:
        return []
    events: deque[Event] = deque(maxlen=last)
    corrupt: list[int] = []
    with f:
        for lineno, raw in enumerate(f, start=1):
            if not raw.strip():
                continue
            try:
                event = Event.from_dict(json.loads(raw))
            except (ValueError, RecursionError):
                if raw.endswith(b"\n"):
                    corrupt.append(lineno)
                continue
            if (since is None or event.ts >= since) and (types is None or event.type in types):
                events.append(event)
    if corrupt:
        log.warning("%s: skipped %d corrupt line(s), first at line %d", path, len(corrupt), corrupt[0])
    return list(events)
