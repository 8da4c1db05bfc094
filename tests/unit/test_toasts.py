"""Toasts: what the console tells of engine events, exhaustions and errors, and what it keeps quiet."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

from cfo_tui.toasts import REPEAT_TOAST, Toast, Toasts
from engine.events import Event
from engine.snapshot import Snapshot, SwapRow

NOW = 1_800_000_000.0


def snapshot(accounts: Mapping[str, float | None]) -> Snapshot:
    return Snapshot(NOW, "a", "running", accounts, (), (), (), (), ())


def test_the_same_engine_error_is_toasted_again_only_after_the_repeat_window() -> None:
    toasts = Toasts()
    assert toasts.for_error("boom", 100.0) == Toast("boom", "Engine error", "error", timeout=15)
    assert toasts.for_error("boom", 100.0 + REPEAT_TOAST - 1) is None
    assert toasts.for_error("another", 101.0) is not None
    assert toasts.for_error("boom", 100.0 + REPEAT_TOAST) is not None


def test_an_exhaustion_is_toasted_once_and_again_only_after_an_account_came_back() -> None:
    toasts = Toasts()
    out = snapshot({"a": NOW + 600, "b": NOW + 60})
    exhausted = Event("all_exhausted", NOW, extra={"until": NOW + 60})
    first = toasts.for_snapshot(out, NOW)
    assert first is not None and first.text.startswith("Dispatch waits; b is usable again at")
    assert toasts.for_event(exhausted, out, NOW) is None
    assert toasts.for_snapshot(out, NOW + 1) is None
    assert toasts.for_snapshot(snapshot({"a": None, "b": NOW + 60}), NOW + 2) is None
    again = toasts.for_event(exhausted, out, NOW + 3)
    assert again is not None and again.title == "All accounts exhausted" and again.severity == "error"


def test_events_that_need_no_attention_give_no_toast() -> None:
    dispatched = Event("dispatched", NOW, session="ccl-auto-11", task="web:001")
    assert Toasts().for_event(dispatched, snapshot({"a": None}), NOW) is None


def _swapped(row: SwapRow) -> Toast | None:
    snap = replace(snapshot({"a": None, "b": None}), swaps=(row,))
    return Toasts().for_event(Event("swap", NOW, account=row.to_account), snap, NOW)


def test_a_swap_toast_names_its_trigger_readably_and_where_it_was_seen() -> None:
    limit = SwapRow(
        NOW,
        "a",
        "b",
        "ccl-auto-11",
        "hit_your_session_limit",
        "You've hit…",
        ("ccl-auto-11",),
        1.2,
        trigger="session limit",
    )
    toast = _swapped(limit)
    assert toast is not None and toast.title == "Account swapped"
    assert toast.text == "a → b: session limit in ccl-auto-11; 1 session(s) resumed"


def test_an_operator_swap_toast_says_it_was_the_operator_and_how() -> None:
    now = SwapRow(NOW, "a", "b", None, "operator", "now: tasks move at once", (), 0.4, trigger="operator")
    toast = _swapped(now)
    assert toast is not None
    assert toast.text == "a → b: operator (now: tasks move at once); 0 session(s) resumed"
