"""The throughput figures come from real completions, and a restart keeps them (seeded from events.jsonl)."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.tmux import LibtmuxClient
from tests.integration.pipeline_support import Workspace, make_workspace, new_engine, run_engine

pytestmark = pytest.mark.integration


@pytest.fixture
def ws(tmp_path: Path, tmux: LibtmuxClient) -> Workspace:
    return make_workspace(tmp_path / "ws", tmux, agents=2)


def test_completed_tasks_fill_the_throughput_strip_and_survive_a_restart(ws: Workspace) -> None:
    for n in range(3):
        ws.add_task("web", f"t{n}", f"Task {n}\nsim: work 300ms")
    first = new_engine(ws)

    def completed() -> int:
        return sum(1 for e in ws.events() if e["type"] == "completed")

    # The events, not the files: a task reaches done/ a moment before its completion is counted.
    run_engine(first, lambda: completed() == 3, timeout=60)

    view = first.snapshot().throughput
    assert view is not None
    assert view.last_hour == 3
    assert view.median_seconds is not None and 0.3 <= view.median_seconds < 30
    primary = {a.name: a for a in view.accounts}["primary"]
    assert primary.tasks == 3 and primary.seconds >= 0.9

    second = new_engine(ws)
    before = second.snapshot().throughput
    assert before is not None and before.last_hour == 0  # nothing known before it starts

    def seeded() -> bool:
        again = second.snapshot().throughput
        return again is not None and again.last_hour == 3

    run_engine(second, seeded, timeout=30)
    again = second.snapshot().throughput
    assert again is not None
    assert {a.name: a.tasks for a in again.accounts}["primary"] == 3
