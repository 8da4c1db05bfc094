"""The operator's commands on a real engine: pause and resume dispatch, force-complete a session."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from engine.tmux import LibtmuxClient
from tests.integration.pipeline_support import Workspace, make_workspace, new_engine, run_engine

pytestmark = pytest.mark.integration


@pytest.fixture
def ws(tmp_path: Path, tmux: LibtmuxClient) -> Workspace:
    ws = make_workspace(tmp_path / "ws", tmux, agents=2)
    ws.data["pool"]["autonomous"].update(min=1, max=1)
    return ws


def saved_dispatch(ws: Workspace) -> str:
    return str(json.loads((ws.root / "state" / "state.json").read_text())["dispatch"])


def test_paused_dispatch_leaves_new_tasks_in_the_inbox_until_resumed(ws: Workspace) -> None:
    engine = new_engine(ws)
    marks: dict[str, float] = {}

    def operator() -> None:
        if "paused" not in marks and engine.state.sessions.get("ccl-auto-11") is not None:
            engine.pause_dispatch()
            marks["paused"] = time.monotonic()
            marks["saved_paused"] = saved_dispatch(ws) == "paused"
            ws.add_task("web", "later", "Later\nsim: work 100ms")
        elif "paused" in marks and "resumed" not in marks and time.monotonic() - marks["paused"] > 2.0:
            marks["inbox_while_paused"] = ws.inbox("web") == ["later.md"]
            engine.resume_dispatch()
            marks["resumed"] = time.monotonic()

    run_engine(engine, lambda: ws.done("web") == ["later.md"], timeout=60, during=operator)

    assert marks["saved_paused"] and marks["inbox_while_paused"]
    assert saved_dispatch(ws) == "running"
    kinds = [e["type"] for e in ws.events() if e["type"] in ("paused", "resumed", "dispatched")]
    assert kinds == ["paused", "resumed", "dispatched"]
    assert all(e["reason"] == "operator" for e in ws.events() if e["type"] in ("paused", "resumed"))


def test_force_complete_finishes_a_hung_task_as_done_and_recycles_the_session_at_once(ws: Workspace) -> None:
    ws.add_task("web", "endless", "Never ends\nsim: hang")
    engine = new_engine(ws)
    forced: dict[str, object] = {}

    def operator() -> None:
        run = engine.running.get("ccl-auto-11")
        if "at" not in forced and run is not None and run.phase == "working":
            forced["answer"] = engine.force_complete("ccl-auto-11")
            forced["again"] = engine.force_complete("ccl-auto-11")
            forced["idle"] = engine.force_complete("ccl-auto-99")
            forced["at"] = time.monotonic()

    def idle_again() -> bool:
        s = engine.state.sessions.get("ccl-auto-11")
        return ws.done("web") == ["endless.md"] and s is not None and s.state == "idle"

    run_engine(engine, idle_again, timeout=60, during=operator)
    took = time.monotonic() - float(forced["at"])  # type: ignore[arg-type]

    assert (forced["answer"], forced["again"], forced["idle"]) == (True, False, False)
    text = (ws.project("web") / ".agent-queue" / "done" / "endless.md").read_text()
    assert "forced by operator" in text
    # The busy agent is interrupted and exits: the session is not left waiting for the turn to end.
    assert took < 10, f"recycling took {took:.1f}s"
    assert ws.tmux.has_session("ccl-auto-11") and ws.tmux.current_command("ccl-auto-11") == "sh"
    completed = [e for e in ws.events() if e["type"] == "completed"]
    assert [(e["task"], e["reason"]) for e in completed] == [("web:endless", "forced by operator")]
