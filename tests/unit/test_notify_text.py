"""Which events raise alerts, and the one line each alert reads as."""

from __future__ import annotations

from typing import Any

import pytest

from engine.events import Event
from engine.notify import alert_type, message_text

TS = 1_800_000_000.0


def ev(kind: str, **fields: Any) -> Event:
    core = {k: fields.pop(k) for k in ("session", "task", "account", "reason") if k in fields}
    return Event(kind, TS, extra=fields, **core)


@pytest.mark.parametrize(
    ("event", "text"),
    [
        (ev("swap", account="b", from_account="a", reason="quota"), "account swapped: a -> b (quota)"),
        (
            ev("swap", session="ccl-auto-11", account="b", from_account="a", reason="quota: session limit"),
            "account swapped: a -> b (quota: session limit in ccl-auto-11)",
        ),
        (ev("swap", account="b", from_account="a", reason="operator"), "account swapped: a -> b (operator)"),
        (
            ev("all_exhausted", until=TS),
            "all accounts exhausted: dispatch paused until 2027-01-15T08:00:00Z",
        ),
        (ev("resumed", account="a", reason="limit reset"), "accounts back: dispatch resumed on a"),
        (ev("failed", task="web:1", reason="timed out"), "task failed: web:1: timed out"),
        (
            ev("auth_failed", session="ccl-auto-12", reason="Not logged in · Please run /login"),
            "auth failure: ccl-auto-12: Not logged in · Please run /login",
        ),
        (
            ev("session_disabled", session="ccl-auto-12", reason="auth failed twice"),
            "session disabled: ccl-auto-12: auth failed twice",
        ),
        (
            ev("stalled", session="ccl-auto-15", task="api:2", reason="no output for 15m"),
            "session stalled: api:2: no output for 15m",
        ),
    ],
    ids=lambda v: v.type if isinstance(v, Event) else "",
)
def test_each_alert_reads_as_one_line(event: Event, text: str) -> None:
    kind = alert_type(event)
    assert kind is not None
    assert message_text(kind, 1, [event]) == text


@pytest.mark.parametrize(
    "event",
    [
        ev("dispatched", session="ccl-auto-11", task="web:1"),
        ev("completed", session="ccl-auto-11", task="web:1"),
        ev("resumed", reason="operator"),
        ev("quota_hit", session="ccl-auto-11"),
    ],
    ids=lambda e: f"{e.type}-{e.reason}",
)
def test_routine_events_and_an_operator_resume_raise_no_alert(event: Event) -> None:
    assert alert_type(event) is None


def test_a_burst_reads_as_a_count_and_a_sample() -> None:
    sample = [ev("auth_failed", session=f"ccl-auto-{i}", reason="expired") for i in range(11, 14)]
    assert message_text("auth_failed", 7, sample) == (
        "7 auth failures: ccl-auto-11: expired; ccl-auto-12: expired; ccl-auto-13: expired; …"
    )
