"""Operator alerts: engine events coalesced per type and sent to a webhook (json or ntfy) and the desktop."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import shutil
import threading
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

from engine.clock import Clock, iso
from engine.config import NotificationsConfig
from engine.events import FAILED, RESUMED, STALLED, SWAP, Event
from engine.redact import readable

log = logging.getLogger(__name__)

Post = Callable[[str, bytes, Mapping[str, str]], Awaitable[None]]

ALL_EXHAUSTED = "all_exhausted"
ACCOUNTS_BACK = "accounts_back"
AUTH_FAILED = "auth_failed"
SESSION_DISABLED = "session_disabled"
# Engine event types that are alerts as they are; `resumed` is handled apart (see alert_type).
ALERT_TYPES = frozenset({SWAP, ALL_EXHAUSTED, FAILED, AUTH_FAILED, SESSION_DISABLED, STALLED})
LIMIT_RESET = "limit reset"
SAMPLE = 5
WINDOW = 10.0
ATTEMPTS = 5
BACKOFF = 1.0
BACKOFF_MAX = 30.0
# How long one webhook POST or one notify-send may take.
TIMEOUT = 10.0

_TITLES = {
    SWAP: ("account swapped", "account swaps"),
    ALL_EXHAUSTED: ("all accounts exhausted", "all accounts exhausted"),
    ACCOUNTS_BACK: ("accounts back", "accounts back"),
    FAILED: ("task failed", "tasks failed"),
    AUTH_FAILED: ("auth failure", "auth failures"),
    SESSION_DISABLED: ("session disabled", "sessions disabled"),
    STALLED: ("session stalled", "sessions stalled"),
}


@dataclass
class _Batch:
    opened: float
    count: int = 0
    sample: list[Event] = field(default_factory=list)


def alert_type(event: Event) -> str | None:
    """The alert an event raises, or None: `resumed` is news only when a limit reset brought accounts back,
    not when the operator resumed dispatch."""
    if event.type == RESUMED:
        return ACCOUNTS_BACK if event.reason == LIMIT_RESET else None
    return event.type if event.type in ALERT_TYPES else None


def _when(value: object) -> str:
    return iso(value) if isinstance(value, int | float) else str(value)


def _line(event: Event) -> str:
    extra = event.extra
    if event.type == SWAP:
        line = f"{extra.get('from_account', '?')} -> {event.account}"
        # The reason names the trigger readably (`quota: session limit`, `operator`); a limit names where.
        why = " in ".join(filter(None, (event.reason, event.session)))
        return f"{line} ({why})" if why else line
    if event.type == ALL_EXHAUSTED:
        until = extra.get("until")
        return "dispatch paused" + (f" until {_when(until)}" if until is not None else "")
    if event.type == RESUMED:
        return f"dispatch resumed on {event.account}" if event.account else "dispatch resumed"
    who = event.task or event.session or event.account or ""
    if event.reason:
        return f"{who}: {event.reason}" if who else event.reason
    return who


def message_text(kind: str, count: int, sample: list[Event]) -> str:
    """`task failed: p:a: reason`, or for a burst `50 tasks failed: p:a: …; p:b: …; …`."""
    one, many = _TITLES[kind]
    lines = "; ".join(filter(None, (_line(e) for e in sample)))
    head = one if count == 1 else f"{count} {many}"
    more = "; …" if count > len(sample) else ""
    return readable(f"{head}: {lines}{more}" if lines else head)


class Notifier:
    """`notify` is cheap, thread-safe and never blocks; `run` (one task on the engine's loop) sends.

    Events of one alert type are gathered for `window` seconds from the first and sent as one message.
    A webhook that fails is retried with capped exponential backoff, then that message is dropped with
    an error logged; the start of an outage is logged once, and its end.
    """

    def __init__(
        self,
        config: NotificationsConfig,
        clock: Clock,
        post: Post | None = None,
        *,
        window: float = WINDOW,
        attempts: int = ATTEMPTS,
        backoff: float = BACKOFF,
        backoff_max: float = BACKOFF_MAX,
        timeout: float = TIMEOUT,
    ) -> None:
        self.config = config
        self.clock = clock
        self.window = window
        self.attempts = max(1, attempts)
        self.backoff = backoff
        self.backoff_max = backoff_max
        self.timeout = timeout
        self._post = post
        self._lock = threading.Lock()
        self._batches: dict[str, _Batch] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._client: httpx.AsyncClient | None = None
        self._outage = False
        # Looked up once: PATH does not change under a running engine.
        self._notify_send = shutil.which("notify-send") if config.desktop else None
        if config.desktop and self._notify_send is None:
            log.warning("notifications.desktop is on but notify-send is not on PATH; no desktop alerts")
        self._children: set[asyncio.Task[None]] = set()

    @property
    def enabled(self) -> bool:
        return bool(self.config.webhook) or self._notify_send is not None

    def notify(self, event: Event) -> None:
        """Queue `event` if it is an alert; callable from any thread (an EventLog subscriber)."""
        kind = alert_type(event)
        if kind is None or not self.enabled:
            return
        with self._lock:
            batch = self._batches.setdefault(kind, _Batch(opened=self.clock.now()))
            batch.count += 1
            if len(batch.sample) < SAMPLE:
                batch.sample.append(event)
            loop, wake = self._loop, self._wake
        if loop is not None and wake is not None:
            with contextlib.suppress(RuntimeError):  # the loop has closed: nothing more is sent
                loop.call_soon_threadsafe(wake.set)

    async def run(self) -> None:
        """Send due batches until cancelled; batches still gathering when cancelled are not sent."""
        with self._lock:
            self._loop, self._wake = asyncio.get_running_loop(), asyncio.Event()
            wake = self._wake
        try:
            while True:
                wake.clear()
                due, wait = self._take_due()
                for kind, batch in due:
                    try:
                        await self._send(kind, batch)
                    except Exception:
                        # One bad message must not end alerts for the rest of the run.
                        log.exception("notification %s could not be sent", kind)
                if due:
                    continue
                if wait is None:
                    await wake.wait()
                else:
                    # A new batch can only close later than the open ones, so no need to wake early.
                    await self.clock.sleep(wait)
        finally:
            with self._lock:
                self._loop = self._wake = None
            children = list(self._children)
            for child in children:
                child.cancel()
            await asyncio.gather(*children, return_exceptions=True)
            if self._client is not None:
                await self._client.aclose()
                self._client = None

    def _take_due(self) -> tuple[list[tuple[str, _Batch]], float | None]:
        """Batches whose window has closed, and how long until the next one closes (None: none open)."""
        now = self.clock.now()
        with self._lock:
            due = [(k, b) for k, b in self._batches.items() if now >= b.opened + self.window]
            for kind, _ in due:
                del self._batches[kind]
            left = [b.opened + self.window - now for b in self._batches.values()]
        return due, min(left) if left else None

    async def _send(self, kind: str, batch: _Batch) -> None:
        text = message_text(kind, batch.count, batch.sample)
        if self._notify_send is not None:
            # Its own task: a hung notify-send must not hold back the webhook.
            self._spawn(self._desktop(self._notify_send, kind, text))
        if self.config.webhook:
            body, headers = self._payload(kind, text, batch)
            await self._deliver(self.config.webhook, kind, body, headers)

    def _payload(self, kind: str, text: str, batch: _Batch) -> tuple[bytes, dict[str, str]]:
        # Names that are not UTF-8 arrive as lone surrogates; backslashreplace keeps them from raising.
        if self.config.webhook_format == "ntfy":
            return text.encode("utf-8", "backslashreplace"), {
                "Title": kind,
                "Content-Type": "text/plain; charset=utf-8",
            }
        data = {
            "type": kind,
            "text": text,
            "count": batch.count,
            "events": [e.to_dict() for e in batch.sample],
        }
        body = json.dumps(data, ensure_ascii=False, default=str).encode("utf-8", "backslashreplace")
        return body, {"Content-Type": "application/json"}

    async def _deliver(self, url: str, kind: str, body: bytes, headers: Mapping[str, str]) -> None:
        delay = self.backoff
        for attempt in range(1, self.attempts + 1):
            try:
                await (self._post or self._http_post)(url, body, headers)
            except Exception as e:
                if not self._outage:
                    self._outage = True
                    log.warning(
                        "webhook %s failed (%s); retrying with backoff", url, str(e) or type(e).__name__
                    )
                if attempt == self.attempts:
                    log.error("webhook %s: gave up on a %s alert after %d attempts", url, kind, attempt)
                    return
                await self.clock.sleep(delay)
                delay = min(delay * 2, self.backoff_max)
            else:
                if self._outage:
                    self._outage = False
                    log.warning("webhook %s reachable again", url)
                return

    async def _http_post(self, url: str, body: bytes, headers: Mapping[str, str]) -> None:
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=self.timeout)
        response = await self._client.post(url, content=body, headers=dict(headers))
        if response.is_error:
            # httpx's own message runs to several lines with a documentation link: too much for a log line.
            raise httpx.HTTPStatusError(
                f"HTTP {response.status_code}", request=response.request, response=response
            )

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coro)
        self._children.add(task)
        task.add_done_callback(self._children.discard)

    async def _desktop(self, program: str, kind: str, text: str) -> None:
        try:
            proc = await asyncio.create_subprocess_exec(
                program,
                "--app-name=cfo",
                f"cfo: {kind}",
                text,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.DEVNULL,
            )
        except (OSError, ValueError) as e:
            log.warning("notify-send could not run: %s", e)
            return
        try:
            code = await asyncio.wait_for(proc.wait(), self.timeout)
        except TimeoutError:
            log.warning("notify-send did not exit within %ss; killed", self.timeout)
            return
        finally:
            if proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()
        if code != 0:
            log.warning("notify-send exited with status %d", code)
