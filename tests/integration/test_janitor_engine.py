"""The engine runs the janitor at start: old finished tasks are archived, the inbox is left alone."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from engine.tmux import LibtmuxClient
from tests.integration.pipeline_support import Workspace, make_workspace, new_engine, run_engine

pytestmark = pytest.mark.integration


@pytest.fixture
def ws(tmp_path: Path, tmux: LibtmuxClient) -> Workspace:
    return make_workspace(tmp_path / "ws", tmux, agents=1)


def aged(path: Path, days: float) -> Path:
    stamp = time.time() - days * 86400
    os.utime(path, (stamp, stamp))
    return path


def test_old_done_files_are_archived_at_start_and_a_dependency_on_them_still_holds(ws: Workspace) -> None:
    done = ws.project("api") / ".agent-queue" / "done"
    (done / "old.md").write_text("finished long ago\n")
    aged(done / "old.md", 40)
    (done / "recent.md").write_text("finished yesterday\n")
    aged(done / "recent.md", 1)
    archive = ws.project("api") / ".agent-queue" / "archive"
    added: list[Path] = []

    def add_dependent_once_archived() -> None:
        if not added and list(archive.glob("*/done/old.md")):
            added.append(ws.add_task("api", "needs-old", "After\nsim: work 100ms", depends_on=["api:old"]))

    engine = new_engine(ws)
    run_engine(
        engine, lambda: "needs-old.md" in ws.done("api"), timeout=30, during=add_dependent_once_archived
    )
    archived = list(archive.glob("*/done/old.md"))
    assert len(archived) == 1 and archived[0].read_text() == "finished long ago\n"
    assert sorted(ws.done("api")) == ["needs-old.md", "recent.md"]
    assert [e["task"] for e in ws.events() if e["type"] == "archived"] == ["api:old"]
    assert not added[0].exists()
