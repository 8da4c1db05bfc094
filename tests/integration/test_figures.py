"""The figures the console shows are true on real tmux with the simulated agent: failures counted on every
path, the account each session's agent runs under, a failure that fades, readable swap triggers."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from engine.snapshot import Snapshot
from engine.status import render_status, status_dict
from engine.statusviews import metrics_text
from engine.tmux import LibtmuxClient
from tests.integration.pipeline_support import Workspace, make_workspace, new_engine, run_engine

pytestmark = pytest.mark.integration


@pytest.fixture
def ws(tmp_path: Path, tmux: LibtmuxClient) -> Workspace:
    return make_workspace(tmp_path / "ws", tmux, agents=2)


def test_a_bad_file_and_a_crashing_task_are_two_failures_everywhere_and_a_later_success_clears_one(
    ws: Workspace,
) -> None:
    ws.data["pool"]["autonomous"].update(min=1, max=1)
    inbox = ws.project("web") / ".agent-queue" / "inbox"
    bad = inbox / "bad.md"
    bad.write_text("---\ntitle: [unclosed\n---\nNever runs\n", encoding="utf-8")
    os.utime(bad, (0, 0))  # long unchanged: failed at the first look, not waited for
    ws.add_task("web", "boom", "Crash please\nsim: crash", priority="critical")
    ws.add_task("web", "fine", "Fine\nsim: work 100ms", priority="low")
    engine = new_engine(ws)
    run_engine(engine, lambda: ws.done("web") == ["fine.md"] and not engine.running, timeout=60)

    assert ws.failed("web") == ["bad.md", "boom.md"]
    snap = engine.snapshot()
    assert snap.today("failed") == 2 and snap.today("completed") == 1  # the console's header
    status = status_dict(ws.config())
    assert status["today"] == {"completed": 1, "failed": 2}  # `cfo status`
    assert "today: done 1  failed 2" in render_status(status).splitlines()
    metrics = metrics_text(engine)  # /metrics
    assert re.search(r'^cfo_tasks_total\{outcome="failed"\} 2$', metrics, re.M), metrics
    assert re.search(r'^cfo_tasks_total\{outcome="completed"\} 1$', metrics, re.M), metrics
    # The session crashed on `boom`, then completed `fine`: its failure is history, still readable.
    [row] = [s for s in snap.sessions if s.name == "ccl-auto-11"]
    assert row.last_fail is not None and row.last_fail.startswith("the agent exited")
    assert row.last_fail_cleared


def _rows(snap: Snapshot) -> dict[str, tuple[str | None, bool]]:
    return {s.name: (s.account, s.account_old) for s in snap.sessions}


def test_after_a_swap_each_session_shows_the_account_its_agent_runs_under(ws: Workspace) -> None:
    ws.add_task(
        "web",
        "a-limited",
        'Hits the limit\nsim: work 1s\nsim: quota "You\'ve hit your session limit · resets 3am"',
        age=2,
    )
    ws.add_task("web", "b-long", "Long work\nsim: work 4s", age=1)
    engine = new_engine(ws)
    during_swap: list[dict[str, tuple[str | None, bool]]] = []

    def look() -> None:
        snap = engine.snapshot()
        if (
            snap.swaps
            and len(engine.running) == 2
            and all(r.phase == "working" for r in engine.running.values())
        ):
            during_swap.append(_rows(snap))

    run_engine(engine, lambda: len(ws.done("web")) == 2 and not engine.running, timeout=90, during=look)

    assert during_swap, "never saw both runs at work after the swap"
    [swap_event] = [e for e in ws.events() if e["type"] == "swap"]
    moved = str(swap_event["session"])
    [healthy] = {"ccl-auto-11", "ccl-auto-12"} - {moved}
    seen = during_swap[-1]
    assert seen[moved] == ("secondary", False)  # restarted and resumed there
    assert seen[healthy] == ("primary", True)  # its healthy turn finishes on the left account: marked
    # Both idle now: no agent runs in them, so no account, least of all the exhausted one.
    after = _rows(engine.snapshot())
    assert after[moved] == (None, False) and after[healthy] == (None, False)
    # The trigger reads as what ran out, in the swap row and the event.
    [row] = engine.snapshot().swaps
    assert (row.trigger, row.trigger_session, row.pattern) == (
        "session limit",
        moved,
        "hit_your_session_limit",
    )
    assert swap_event["reason"] == "quota: session limit"


def test_an_operator_swap_says_operator_and_whether_tasks_moved_now_or_drain(ws: Workspace) -> None:
    engine = new_engine(ws)
    asked: list[str | None] = []

    def ask_once() -> None:
        if not asked and engine.state.sessions.get("ccl-auto-12") is not None:
            asked.append(engine.request_swap("operator", drain=True))

    run_engine(engine, lambda: bool(engine.snapshot().swaps), timeout=60, during=ask_once)
    [row] = engine.snapshot().swaps
    assert asked == ["secondary"]
    assert (row.trigger, row.trigger_session) == ("operator", None)
    assert row.snippet == "drain: tasks finish on primary"
