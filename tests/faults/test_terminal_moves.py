"""Every terminal move lands or the task stays where it is: a completion that cannot be written to done/
is not reported, keeps its claim as finished work, is never run again by a restart, and is reported
once the move lands."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.integration.pipeline_support import Workspace, new_engine, run_engine

pytestmark = pytest.mark.integration


def of_type(ws: Workspace, kind: str) -> list[dict[str, object]]:
    return [e for e in ws.events() if e["type"] == kind and e.get("task") == "web:t1"]


def after(seconds: float) -> Callable[[], bool]:
    until = time.monotonic() + seconds
    return lambda: time.monotonic() > until


def test_a_completion_that_cannot_reach_done_is_not_reported_and_never_runs_again(
    ws: Workspace, tmp_path: Path
) -> None:
    queue = ws.project("web") / ".agent-queue"
    outside = tmp_path / "outside"
    outside.mkdir()
    (queue / "done").rmdir()
    (queue / "done").symlink_to(outside)  # refused: cfo never writes through a link out of the project
    claim = queue / "inbox" / "t1.md.dispatched"
    ws.add_task("web", "t1", "Task 1\nsim: work 200ms")

    engine = new_engine(ws)
    run_engine(engine, lambda: bool(engine.state.finishing) and not engine.running, timeout=60)
    assert claim.exists(), "the task stays claimed"
    assert list(outside.iterdir()) == []
    assert of_type(ws, "completed") == []
    assert "completed" not in engine.state.counters
    assert [f.outcome for f in engine.state.finishing.values()] == ["completed"]

    for _ in range(2):  # each restart keeps it: finished work is not run again
        again = new_engine(ws)
        run_engine(again, after(3.0), timeout=30)
        assert claim.exists()
        assert len(of_type(ws, "dispatched")) == 1
        assert of_type(ws, "completed") == []

    (queue / "done").unlink()
    (queue / "done").mkdir()
    last = new_engine(ws)
    run_engine(last, lambda: ws.done("web") == ["t1.md"], timeout=30)
    assert not claim.exists()
    assert len(of_type(ws, "completed")) == 1
    assert len(of_type(ws, "dispatched")) == 1
    assert last.state.finishing == {}
    assert "status: completed" in (queue / "done" / "t1.md").read_text()


def test_a_completion_whose_move_landed_just_before_a_stop_is_reported_once_at_the_next_start(
    ws: Workspace, tmp_path: Path
) -> None:
    from engine import moves

    queue = ws.project("web") / ".agent-queue"
    outside = tmp_path / "outside"
    outside.mkdir()
    (queue / "done").rmdir()
    (queue / "done").symlink_to(outside)  # holds the outcome in state, the move pending, for this test
    claim = queue / "inbox" / "t1.md.dispatched"
    ws.add_task("web", "t1", "Task 1\nsim: work 200ms")
    engine = new_engine(ws)
    run_engine(engine, lambda: bool(engine.state.finishing) and not engine.running, timeout=60)
    [record] = engine.state.finishing.values()
    assert record.claim is not None and record.claim == moves.claim_token(claim)

    # The move lands, and the engine stops before it could report it (as a stop cancelling it could).
    (queue / "done").unlink()
    (queue / "done").mkdir()
    moves.complete(claim, record.footer)
    assert not claim.exists() and ws.done("web") == ["t1.md"]

    again = new_engine(ws)
    run_engine(again, lambda: bool(of_type(ws, "completed")) and not again.state.finishing, timeout=30)
    assert len(of_type(ws, "completed")) == 1  # reported once, when the landed file was recognised
    assert ws.done("web") == ["t1.md"] and len(of_type(ws, "dispatched")) == 1
