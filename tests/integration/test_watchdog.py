"""The watchdog on a real tmux server with the simulated agent: stalled sessions and blocked tasks."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pytest

from engine import footers
from engine.core import Engine
from engine.tmux import LibtmuxClient
from tests.integration.pipeline_support import Workspace, make_workspace, run_engine

pytestmark = pytest.mark.integration


@pytest.fixture
def ws(tmp_path: Path, tmux: LibtmuxClient) -> Workspace:
    return make_workspace(tmp_path / "ws", tmux, agents=2)


def engine_for(ws: Workspace, full_scan: float = 2.0, **overrides: Any) -> Engine:
    return Engine(
        ws.config(**overrides), ws.tmux, api_error_backoff=0.2, full_scan=full_scan, watchdog_tick=0.2
    )


def events(ws: Workspace, kind: str) -> list[dict[str, Any]]:
    return [e for e in ws.events() if e["type"] == kind]


def test_a_hung_agent_is_marked_stalled_with_a_stuck_sidecar(ws: Workspace) -> None:
    ws.add_task("api", "hang", "Hang forever\nsim: hang")
    engine = engine_for(ws, watchdog__stalled_after="1s")
    claimed = ws.project("api") / ".agent-queue" / "inbox" / "hang.md.dispatched"
    stuck = claimed.with_name("hang.md.stuck")
    run_engine(engine, lambda: bool(events(ws, "stalled")) and stuck.exists(), timeout=30)

    stalled = events(ws, "stalled")
    assert len(stalled) == 1
    assert stalled[0]["task"] == "api:hang" and stalled[0]["reason"] == "no output for 1s"
    session = stalled[0]["session"]
    assert engine.state.sessions[session].state == "stalled"
    assert claimed.exists(), "a stalled task stays claimed by its session"
    assert "no output for 1s" in stuck.read_text()
    assert [r.state for r in engine.snapshot().sessions if r.name == session] == ["stalled"]


def test_a_working_agent_that_keeps_writing_is_not_stalled(ws: Workspace) -> None:
    steps = "\n".join(f'sim: say "step {n}"\nsim: work 400ms' for n in range(6))
    ws.add_task("api", "busy", f"Busy\n{steps}")
    engine = engine_for(ws, watchdog__stalled_after="1s")
    run_engine(engine, lambda: ws.done("api") == ["busy.md"], timeout=30)
    assert events(ws, "stalled") == []


def test_a_dependency_done_elsewhere_unblocks_without_waiting_for_a_full_scan(ws: Workspace) -> None:
    ws.project("schema")
    ws.add_task("api", "build", "Build\nsim: work 100ms", depends_on=["schema:design"])
    engine = engine_for(ws, full_scan=600.0)
    sidecar = ws.project("api") / ".agent-queue" / "inbox" / "build.md.blocked"
    done = ws.project("schema") / ".agent-queue" / "done" / "design.md"
    marks: dict[str, float] = {}

    def finish_the_dependency_by_hand() -> None:
        if sidecar.exists() and "at" not in marks:
            time.sleep(0.5)  # the dispatcher has settled: only the watchdog can notice what follows
            done.write_text("designed elsewhere\n")
            marks["at"] = time.monotonic()

    run_engine(
        engine,
        lambda: ws.done("api") == ["build.md"],
        timeout=20,
        during=finish_the_dependency_by_hand,
    )
    assert [e["task"] for e in events(ws, "unblocked")] == ["api:build"]
    assert not sidecar.exists()


def old_blocked(ws: Workspace, task_id: str, age: float) -> Path:
    task = ws.add_task("api", task_id, "Waits\nsim: work 100ms", depends_on=["schema:never"])
    sidecar = task.with_name(f"{task_id}.md.blocked")
    sidecar.write_text("depends_on not met: schema:never\n")
    stamp = time.time() - age
    os.utime(sidecar, (stamp, stamp))
    return sidecar


def test_blocked_too_long_is_reported_once_then_failed_with_the_missing_dependencies(ws: Workspace) -> None:
    warned = old_blocked(ws, "late", age=2 * 3600)
    old_blocked(ws, "ancient", age=3 * 86400)
    engine = engine_for(ws)
    start = time.monotonic()
    run_engine(
        engine,
        # A second of ticks more than needed: the warning must not repeat on each of them.
        lambda: (
            ws.failed("api") == ["ancient.md"]
            and bool(events(ws, "blocked_too_long"))
            and time.monotonic() - start > 1.0
        ),
        timeout=20,
    )
    warnings = events(ws, "blocked_too_long")
    assert [e["task"] for e in warnings] == ["api:late"]
    assert warnings[0]["reason"].startswith("blocked for 2h") and "schema:never" in warnings[0]["reason"]
    footer = footers.read_footer(ws.project("api") / ".agent-queue" / "failed" / "ancient.md")
    assert footer is not None
    assert str(footer["reason"]).startswith("blocked for 3d") and "schema:never" in str(footer["reason"])
    assert warned.exists() and "late.md" in ws.inbox("api")  # warned, not failed
    assert [e["task"] for e in events(ws, "failed")] == ["api:ancient"]
