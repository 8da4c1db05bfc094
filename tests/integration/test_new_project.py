"""A project made under projects_dir while the engine runs is watched at once, not at the next full scan."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from engine.core import Engine
from engine.tmux import LibtmuxClient
from tests.integration.pipeline_support import Workspace, make_workspace, run_engine

pytestmark = pytest.mark.integration

NEVER = 3600.0  # a full scan interval no test waits for: only the file watch can find the task


@pytest.fixture
def ws(tmp_path: Path, tmux: LibtmuxClient) -> Workspace:
    ws = make_workspace(tmp_path / "ws", tmux, agents=1)
    ws.project("existing")
    return ws


def rename_in(inbox: Path, task_id: str, body: str) -> None:
    tmp = inbox.parent / f".{task_id}.tmp"
    tmp.write_text(body + "\n", encoding="utf-8")
    stamp = time.time() - 60
    os.utime(tmp, (stamp, stamp))
    tmp.rename(inbox / f"{task_id}.md")


def done(project: Path) -> list[str]:
    folder = project / ".agent-queue" / "done"
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


def engine(ws: Workspace) -> Engine:
    return Engine(ws.config(), ws.tmux, api_error_backoff=0.2, full_scan=NEVER)


def test_a_project_made_at_once_gets_its_task_done_without_a_full_scan(ws: Workspace) -> None:
    e = engine(ws)
    inbox = ws.projects_dir / "fresh" / ".agent-queue" / "inbox"
    steps: list[str] = []

    def make_project() -> None:
        if not steps and e.dispatcher.scans >= 1:  # the engine is up and has done its first round
            inbox.mkdir(parents=True)
            rename_in(inbox, "hello", "Hello\nsim: work 100ms")
            steps.append("made")

    run_engine(e, lambda: done(inbox.parent.parent) == ["hello.md"], timeout=30, during=make_project)


def test_a_project_whose_queue_appears_after_its_folder_is_still_watched(ws: Workspace) -> None:
    rename_in(ws.project("existing") / ".agent-queue" / "inbox", "warm", "Warm up\nsim: work 1500ms")
    e = engine(ws)
    folder = ws.projects_dir / "cloned"
    inbox = folder / ".agent-queue" / "inbox"
    steps: list[int] = []

    def make_project_in_steps() -> None:
        # Past the engine's start-up rounds, so that only the file watch can wake it.
        if not steps and ws.done("existing") == ["warm.md"] and not e.running:
            folder.mkdir()  # as a clone does: the folder first, its files a while later
            steps.append(e.dispatcher.scans)
        elif len(steps) == 1 and e.dispatcher.scans > steps[0]:  # the engine looked: not a project yet
            inbox.parent.mkdir()
            steps.append(e.dispatcher.scans)
        elif len(steps) == 2 and e.dispatcher.scans > steps[1]:  # nor now
            inbox.mkdir()
            rename_in(inbox, "hello", "Hello\nsim: work 100ms")
            steps.append(e.dispatcher.scans)

    run_engine(e, lambda: done(folder) == ["hello.md"], timeout=20, during=make_project_in_steps)
