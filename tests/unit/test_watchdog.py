"""Watchdog decisions: a pane that only ticks its spinner is stalled; blocked tasks ready, warned, failed."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from engine import sidecars
from engine.config import WatchdogConfig
from engine.patterns import load_patterns
from engine.tasks import Task, read_task
from engine.watchdog import Watchdog, progress_mark

PANES = Path(__file__).resolve().parents[1] / "data" / "panes"
PATTERNS = load_patterns()


def dog(stalled_after: float = 60.0, warn: float = 3600.0, fail: float = 86400.0) -> Watchdog:
    return Watchdog(
        WatchdogConfig(blocked_warn=warn, blocked_fail=fail, stalled_after=stalled_after), PATTERNS
    )


def working() -> str:
    return (PANES / "real-working-thinking.txt").read_text(encoding="utf-8")


def test_the_spinner_ticking_is_not_progress() -> None:
    text = working()
    line = next(x for x in text.splitlines() if "Thinking" in x or "…" in x)
    later = text.replace(line, line.replace(line.strip()[0], "✶", 1).replace("s ·", "9s ·", 1))
    assert later != text
    assert progress_mark(later, PATTERNS) == progress_mark(text, PATTERNS)


def test_new_output_is_progress() -> None:
    text = working()
    moved = text.replace("────", "⏺ Edited auth/session.py\n\n────", 1)
    assert progress_mark(moved, PATTERNS) != progress_mark(text, PATTERNS)


def test_a_session_is_stalled_once_after_the_quiet_period_and_moving_again_on_output() -> None:
    w = dog(stalled_after=60)
    text = working()
    assert w.observe("s1", text, 1000.0) is None
    assert w.observe("s1", text, 1059.0) is None
    assert w.observe("s1", text, 1060.0) == "stalled"
    assert w.stalled_since("s1") == 1000.0
    assert w.observe("s1", text, 2000.0) is None  # reported once, not on every look
    assert w.observe("s1", text + "\n⏺ Done.", 2001.0) == "moving"
    assert w.stalled_since("s1") is None
    assert w.counters["stalled"] == 1 and w.counters["unstalled"] == 1


def test_output_resets_the_quiet_period_and_forget_starts_fresh() -> None:
    w = dog(stalled_after=60)
    assert w.observe("s1", "a", 0.0) is None
    assert w.observe("s1", "b", 50.0) is None
    assert w.observe("s1", "b", 100.0) is None  # 50 s since the change
    assert w.observe("s1", "b", 110.0) == "stalled"
    w.forget("s1")
    assert w.observe("s1", "b", 500.0) is None
    assert w.observe("s1", "b", 559.0) is None


def blocked_task(tmp_path: Path, task_id: str, depends: str, age: float) -> Task:
    inbox = tmp_path / "p" / ".agent-queue" / "inbox"
    inbox.mkdir(parents=True, exist_ok=True)
    (tmp_path / "p" / ".agent-queue" / "done").mkdir(exist_ok=True)
    path = inbox / f"{task_id}.md"
    path.write_text(f"---\ndepends_on: [{depends}]\n---\nbody\n", encoding="utf-8")
    task = read_task(path, "p", tmp_path / "p", 1 << 20)
    sidecars.mark_blocked(task, [depends])
    stamp = time.time() - age
    os.utime(sidecars.sidecar_path(task, "blocked"), (stamp, stamp))
    return task


@pytest.mark.parametrize(
    ("age", "done", "expected"),
    [
        (10.0, True, "ready"),
        (10.0, False, None),
        (4000.0, False, "warn"),
        (90000.0, False, "fail"),
        (90000.0, True, "ready"),  # dependencies beat the age: it runs rather than fails
    ],
)
def test_blocked_verdicts(tmp_path: Path, age: float, done: bool, expected: str | None) -> None:
    task = blocked_task(tmp_path, "t", "p:dep", age)
    if done:
        (tmp_path / "p" / ".agent-queue" / "done" / "dep.md").write_text("x")
    verdicts = dog().blocked([task], tmp_path, {"p": tmp_path / "p"}, time.time())
    assert [v.verdict for v in verdicts] == ([expected] if expected else [])
    if expected in ("warn", "fail"):
        assert verdicts[0].missing == ("p:dep",)


def test_a_warning_is_given_once_per_blocked_task(tmp_path: Path) -> None:
    task = blocked_task(tmp_path, "t", "p:dep", 4000.0)
    w = dog()
    now = time.time()
    projects = {"p": tmp_path / "p"}
    assert [v.verdict for v in w.blocked([task], tmp_path, projects, now)] == ["warn"]
    assert w.blocked([task], tmp_path, projects, now + 1) == []
    assert w.counters["blocked_warned"] == 1


def test_a_task_no_longer_blocked_is_skipped(tmp_path: Path) -> None:
    task = blocked_task(tmp_path, "t", "p:dep", 90000.0)
    sidecars.clear_sidecar(task, "blocked")
    assert dog().blocked([task], tmp_path, {"p": tmp_path / "p"}, time.time()) == []
