"""Notifications against a real webhook receiver on 127.0.0.1, and the desktop through a fake notify-send."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import stat
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Literal

import pytest

from engine.clock import SystemClock
from engine.config import NotificationsConfig
from engine.events import Event
from engine.notify import Notifier

WINDOW = 0.1


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Receiver:
    """A webhook endpoint that records every POST; the first `fail_first` requests get a 503."""

    fail_first: int = 0
    requests: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    url: str = ""

    def seen(self) -> list[Received]:
        with self.lock:
            return list(self.requests)


@pytest.fixture(autouse=True)
def no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    # httpx honours proxy variables; a proxy in the test's environment must not swallow 127.0.0.1.
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    rec = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            with rec.lock:
                rec.requests.append(Received(self.path, dict(self.headers.items()), body))
                failing = len(rec.requests) <= rec.fail_first
            self.send_response(503 if failing else 200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    rec.url = f"http://127.0.0.1:{httpd.server_address[1]}/hook"
    thread = threading.Thread(target=httpd.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    try:
        yield rec
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()


def ev(kind: str, **fields: Any) -> Event:
    core = {k: fields.pop(k) for k in ("session", "task", "account", "reason") if k in fields}
    return Event(kind, time.time(), extra=fields, **core)


async def until(predicate: Callable[[], object], timeout: float = 2.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s")
        await asyncio.sleep(0.01)


def with_notifier(notifier: Notifier, body: Callable[[], Awaitable[None]]) -> None:
    """Run `notifier` on a fresh loop while `body` runs, then cancel it as the engine does on stop."""

    async def main() -> None:
        task = asyncio.create_task(notifier.run())
        try:
            await body()
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    asyncio.run(main())


def fast(config: NotificationsConfig, window: float = WINDOW) -> Notifier:
    """A Notifier with windows and backoffs short enough for the whole file to run in about a second."""
    return Notifier(config, SystemClock(), window=window, attempts=3, backoff=0.05, timeout=2.0)


def webhook(url: str, fmt: Literal["json", "ntfy"] = "json") -> NotificationsConfig:
    return NotificationsConfig(webhook=url, webhook_format=fmt)


def test_each_swap_is_one_json_message(receiver: Receiver) -> None:
    notifier = fast(webhook(receiver.url))

    async def body() -> None:
        notifier.notify(ev("dispatched", session="ccl-auto-11", task="p:a"))
        notifier.notify(ev("swap", account="b", reason="quota", from_account="a", session="ccl-auto-11"))
        await until(lambda: len(receiver.seen()) == 1)
        notifier.notify(ev("swap", account="a", reason="limit reset", from_account="b"))
        await until(lambda: len(receiver.seen()) == 2)
        await asyncio.sleep(WINDOW * 2)

    with_notifier(notifier, body)
    first, second = receiver.seen()
    assert first.path == "/hook"
    assert first.headers["Content-Type"] == "application/json"
    assert first.json()["type"] == "swap"
    assert first.json()["count"] == 1
    assert first.json()["text"] == "account swapped: a -> b (quota in ccl-auto-11)"
    assert first.json()["events"][0]["session"] == "ccl-auto-11"
    assert second.json()["text"] == "account swapped: b -> a (limit reset)"


def test_a_burst_of_50_failures_is_one_message_with_the_count(receiver: Receiver) -> None:
    notifier = fast(webhook(receiver.url), window=0.2)
    failures = [ev("failed", task=f"proj:t{i:02d}", reason="timed out") for i in range(50)]

    async def body() -> None:
        # Engine workers emit from threads too: notify must be safe there.
        with ThreadPoolExecutor(4) as pool:
            list(pool.map(notifier.notify, failures))
        await until(lambda: receiver.seen())
        await asyncio.sleep(0.25)

    with_notifier(notifier, body)
    (message,) = receiver.seen()
    data = message.json()
    assert data["type"] == "failed"
    assert data["count"] == 50
    assert data["text"].startswith("50 tasks failed: proj:t")
    assert data["text"].endswith("; …")
    assert len(data["events"]) == 5


def test_accounts_back_after_a_limit_reset_but_not_after_an_operator_resume(receiver: Receiver) -> None:
    notifier = fast(webhook(receiver.url))

    async def body() -> None:
        notifier.notify(ev("all_exhausted", account="b", reason="quota", until=1_800_003_600.0))
        notifier.notify(ev("resumed", reason="operator"))
        notifier.notify(ev("resumed", reason="limit reset", account="a"))
        await until(lambda: len(receiver.seen()) == 2)
        await asyncio.sleep(WINDOW * 2)

    with_notifier(notifier, body)
    by_type = {r.json()["type"]: r.json() for r in receiver.seen()}
    assert set(by_type) == {"all_exhausted", "accounts_back"}
    assert (
        by_type["all_exhausted"]["text"]
        == "all accounts exhausted: dispatch paused until 2027-01-15T09:00:00Z"
    )
    assert by_type["accounts_back"]["text"] == "accounts back: dispatch resumed on a"


def test_ntfy_sends_plain_text_titled_with_the_event_type(receiver: Receiver) -> None:
    notifier = fast(webhook(receiver.url, "ntfy"))

    async def body() -> None:
        notifier.notify(ev("failed", task="proj:caf\udcff", session="ccl-auto-12", reason="over 1 MiB"))
        await until(lambda: receiver.seen())

    with_notifier(notifier, body)
    (message,) = receiver.seen()
    assert message.headers["Title"] == "failed"
    assert message.headers["Content-Type"].startswith("text/plain")
    assert message.body.decode() == "task failed: proj:caf\\udcff: over 1 MiB"


def test_a_failing_webhook_is_retried_until_it_answers(
    receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    receiver.fail_first = 2
    notifier = fast(webhook(receiver.url))
    caplog.set_level(logging.WARNING, logger="engine.notify")

    async def body() -> None:
        notifier.notify(ev("session_disabled", session="ccl-auto-11", reason="auth failed twice"))
        await until(lambda: any("reachable again" in r.getMessage() for r in caplog.records))

    with_notifier(notifier, body)
    assert len(receiver.seen()) == 3
    bodies = {r.body for r in receiver.seen()}
    assert len(bodies) == 1
    assert json.loads(bodies.pop())["text"] == "session disabled: ccl-auto-11: auth failed twice"
    messages = [r.getMessage() for r in caplog.records]
    assert any("HTTP 503" in m and "retrying" in m for m in messages)
    assert not any(r.levelno >= logging.ERROR for r in caplog.records)


def test_a_dead_receiver_never_blocks_the_engine_and_is_given_up_with_an_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    notifier = fast(webhook(f"http://127.0.0.1:{port}/hook"), window=0.0)
    caplog.set_level(logging.WARNING, logger="engine.notify")
    gaps: list[float] = []
    calls: list[float] = []

    async def body() -> None:
        async def ticker() -> None:
            last = time.monotonic()
            while True:
                await asyncio.sleep(0.01)
                now = time.monotonic()
                gaps.append(now - last)
                last = now

        tick = asyncio.create_task(ticker())
        for i in range(20):
            started = time.monotonic()
            notifier.notify(ev("failed", task=f"p:t{i}", reason="crashed twice"))
            calls.append(time.monotonic() - started)
            await asyncio.sleep(0.01)
        await until(lambda: any(r.levelno == logging.ERROR for r in caplog.records))
        tick.cancel()

    with_notifier(notifier, body)
    # Generous bounds for a loaded machine: a blocking POST or backoff would take whole seconds here.
    assert max(calls) < 0.05
    assert max(gaps) < 0.25
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(warnings) == 1
    assert "retrying" in warnings[0].getMessage()
    assert "gave up on a failed alert after 3 attempts" in errors[0].getMessage()


def test_a_receiver_that_never_answers_times_out_without_holding_up_the_engine(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="engine.notify")
    gaps: list[float] = []
    with socket.socket() as silent:
        # Connections are accepted by the kernel and the request is sent, but no answer ever comes.
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/hook"
        notifier = Notifier(webhook(url), SystemClock(), window=0.0, attempts=2, backoff=0.05, timeout=0.3)

        async def body() -> None:
            async def ticker() -> None:
                last = time.monotonic()
                while True:
                    await asyncio.sleep(0.01)
                    now = time.monotonic()
                    gaps.append(now - last)
                    last = now

            tick = asyncio.create_task(ticker())
            notifier.notify(ev("swap", account="secondary", from_account="primary"))
            await until(lambda: any(r.levelno == logging.ERROR for r in caplog.records), timeout=5.0)
            tick.cancel()

        started = time.monotonic()
        with_notifier(notifier, body)
        took = time.monotonic() - started
    assert max(gaps) < 0.25  # the loop kept turning while the POST waited
    assert 0.5 <= took < 4.0  # two attempts of 0.3 s each, then given up
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and "gave up on a swap alert after 2 attempts" in errors[0]


def test_desktop_alerts_go_through_notify_send(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bin_dir, calls = tmp_path / "bin", tmp_path / "calls.txt"
    bin_dir.mkdir()
    fake = bin_dir / "notify-send"
    fake.write_text(f'#!/bin/sh\nfor a in "$@"; do printf "%s\\n" "$a" >> {calls}; done\n')
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}")
    notifier = fast(NotificationsConfig(desktop=True))
    assert notifier.enabled

    async def body() -> None:
        notifier.notify(ev("stalled", session="ccl-auto-13", task="p:slow", reason="no output for 15m"))
        await until(lambda: calls.exists() and len(calls.read_text().splitlines()) == 3)

    with_notifier(notifier, body)
    assert calls.read_text().splitlines() == [
        "--app-name=cfo",
        "cfo: stalled",
        "session stalled: p:slow: no output for 15m",
    ]


def test_desktop_without_notify_send_is_reported_and_disables_alerts(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    caplog.set_level(logging.WARNING, logger="engine.notify")
    notifier = fast(NotificationsConfig(desktop=True))
    assert not notifier.enabled
    assert "notify-send is not on PATH" in caplog.text
