"""Throughput: the last hour, the median task time, each account since its reset; seeded from events."""

from __future__ import annotations

from pathlib import Path

from engine.events import EventLog
from engine.throughput import WINDOW, Throughput

NOW = 1_800_000_000.0


def test_last_hour_median_and_accounts_since_reset_or_the_five_hour_window() -> None:
    t = Throughput()
    t.record(NOW - 7200, 600.0, "primary")  # before primary's reset, two hours ago
    t.record(NOW - 3000, 120.0, "primary")
    t.record(NOW - 1000, 300.0, "primary")
    t.record(NOW - 500, 240.0, "secondary")
    t.record(NOW - 100, None, None)  # a delegated job without a time
    view = t.view(NOW, {"primary": (None, NOW - 3600), "secondary": (None, None)})
    assert view.last_hour == 4
    assert view.median_seconds == 270.0
    primary, secondary = view.accounts
    assert (primary.tasks, primary.seconds, primary.since, primary.since_reset) == (
        2,
        420.0,
        NOW - 3600,
        True,
    )
    assert (secondary.tasks, secondary.since, secondary.since_reset) == (1, NOW - WINDOW, False)


def test_a_limit_that_has_passed_counts_as_the_last_reset() -> None:
    t = Throughput()
    t.record(NOW - 900, 60.0, "primary")
    t.record(NOW - 300, 60.0, "primary")
    view = t.view(NOW, {"primary": (NOW - 600, None)})
    assert view.accounts[0].tasks == 1 and view.accounts[0].since == NOW - 600


def test_nothing_done_reads_as_zero_and_no_median() -> None:
    view = Throughput().view(NOW, {"primary": (None, None)})
    assert (view.last_hour, view.median_seconds, view.accounts[0].tasks) == (0, None, 0)


def test_a_day_of_completions_is_seeded_from_the_event_log(tmp_path: Path) -> None:
    clock = iter([NOW - 90000, NOW - 1800, NOW - 60, NOW - 30])
    log = EventLog(tmp_path / "events.jsonl", now=lambda: next(clock))
    log.emit("completed", task="p:old", account="primary", seconds=50.0)
    log.emit("completed", task="p:a", account="primary", seconds=100.0)
    log.emit("dispatched", task="p:b", account="primary")
    log.emit("completed", task="p:c", account="secondary", seconds=300.0)
    with (tmp_path / "events.jsonl").open("a") as fh:
        fh.write('{"type": "completed", torn line\n')
    t = Throughput()
    assert t.seed(tmp_path / "events.jsonl", NOW) == 2
    view = t.view(NOW, {"primary": (None, None), "secondary": (None, None)})
    assert view.last_hour == 2 and view.median_seconds == 200.0
    assert [a.tasks for a in view.accounts] == [1, 1]
