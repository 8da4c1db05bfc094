"""The engine's alerts reach a real webhook on 127.0.0.1, and a dead webhook never holds up the queue."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from engine.clock import SystemClock
from engine.notify import Notifier
from engine.tmux import LibtmuxClient
from tests.helpers import free_port
from tests.integration.pipeline_support import Workspace, make_workspace, new_engine, run_engine
from tests.integration.test_notify import Receiver, receiver  # noqa: F401  (the fixture)

pytestmark = pytest.mark.integration


@pytest.fixture
def ws(tmp_path: Path, tmux: LibtmuxClient) -> Workspace:
    return make_workspace(tmp_path / "ws", tmux, agents=2)


def bad_task(ws: Workspace, name: str) -> None:
    inbox = ws.project("api") / ".agent-queue" / "inbox"
    tmp = inbox / f".{name}.tmp"
    tmp.write_text("---\ntitle: [unclosed\n---\nbody\n")
    tmp.rename(inbox / f"{name}.md")


def test_one_message_per_swap_and_one_for_a_burst_of_failures(ws: Workspace, receiver: Receiver) -> None:  # noqa: F811
    for n in range(6):
        bad_task(ws, f"broken-{n}")
    engine = new_engine(ws, notifications__webhook=receiver.url)
    engine.notifier = Notifier(engine.config.notifications, SystemClock(), window=0.3)
    asked: list[str | None] = []

    def swap_once() -> None:
        if not asked and len(ws.failed("api")) == 6:
            asked.append(engine.request_swap("operator"))

    def both_sent() -> bool:
        types = [r.json()["type"] for r in receiver.seen()]
        return "swap" in types and "failed" in types

    run_engine(engine, both_sent, timeout=30, during=swap_once)
    time.sleep(0.5)  # a second message of either kind would have arrived by now
    messages = [r.json() for r in receiver.seen()]
    assert asked == ["secondary"]
    assert sorted(m["type"] for m in messages) == ["failed", "swap"]
    failed = next(m for m in messages if m["type"] == "failed")
    assert failed["count"] == 6 and failed["text"].startswith("6 tasks failed: api:broken-")
    swap = next(m for m in messages if m["type"] == "swap")
    assert "primary -> secondary" in swap["text"]


def test_a_dead_webhook_does_not_hold_up_dispatch(ws: Workspace) -> None:
    port = free_port()  # nothing listens there: a dead webhook
    for n in range(3):
        bad_task(ws, f"broken-{n}")
    for n in range(4):
        ws.add_task("api", f"ok-{n}", "Fine\nsim: work 100ms")
    engine = new_engine(ws, notifications__webhook=f"http://127.0.0.1:{port}/hook")
    engine.notifier = Notifier(engine.config.notifications, SystemClock(), window=0.05, backoff=0.5)
    started = time.monotonic()
    # A malformed file goes to failed/ once it stayed broken for the grace window (2 s).
    run_engine(engine, lambda: len(ws.done("api")) == 4 and len(ws.failed("api")) == 3, timeout=60)
    assert time.monotonic() - started < 30
