"""The task pipeline on a real tmux server with the simulated agent: dispatch, watch, recycle, recover."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest

from engine.clock import FakeClock
from engine.context import CAPTURE_LINES
from engine.conversations import conversation_dir
from engine.dispatcher import LAUNCH_HOLD_MAX, hold_after
from engine.tmux import LibtmuxClient
from tests.integration.pipeline_support import (
    SIM_STYLES,
    Workspace,
    make_workspace,
    new_engine,
    run_engine,
    use_sim_style,
)

pytestmark = pytest.mark.integration

PRIORITIES = ("critical", "high", "default", "low")


@pytest.fixture
def ws(tmp_path: Path, tmux: LibtmuxClient) -> Workspace:
    return make_workspace(tmp_path / "ws", tmux, agents=4)


def dispatched(ws: Workspace) -> list[str]:
    return [e["task"] for e in ws.events() if e["type"] == "dispatched"]


def test_thirty_tasks_over_three_projects_are_done_once_in_priority_then_age_order(ws: Workspace) -> None:
    side_effects = ws.root / "ran.log"
    expected: list[tuple[int, float, str]] = []
    for n in range(30):
        project = ("alpha", "beta", "gamma")[n % 3]
        priority = PRIORITIES[n % 4]
        age = float(n * 7 % 30)
        ws.add_task(
            project,
            f"t{n:02d}",
            f"Task {n}\nsim: work 200ms\nsim: append {side_effects} {project}:t{n:02d}",
            age=age,
            priority=priority,
        )
        expected.append((PRIORITIES.index(priority), -age, f"{project}:t{n:02d}"))
    engine = new_engine(ws)
    run_engine(engine, lambda: sum(len(ws.done(p)) for p in ("alpha", "beta", "gamma")) == 30, timeout=120)

    assert dispatched(ws) == [key for _, _, key in sorted(expected)]
    ran = side_effects.read_text().split()
    assert sorted(ran) == sorted(key for _, _, key in expected)  # every task ran, none twice
    for project in ("alpha", "beta", "gamma"):
        assert ws.inbox(project) == []
        assert len(ws.done(project)) == 10
    footer = (ws.project("alpha") / ".agent-queue" / "done" / "t00.md").read_text()
    assert "session: ccl-auto-1" in footer and "account: primary" in footer


def test_cross_project_dependency_chain_runs_in_order_with_blocked_sidecar(ws: Workspace) -> None:
    order = ws.root / "order.log"
    ws.add_task("docs", "c-publish", f"Publish\nsim: append {order} c", depends_on=["api:b-build"])
    ws.add_task("api", "b-build", f"Build\nsim: append {order} b", depends_on=["schema:a-design"])
    ws.add_task("schema", "a-design", f"Design\nsim: work 1s\nsim: append {order} a", age=0)
    sidecar = ws.project("docs") / ".agent-queue" / "inbox" / "c-publish.md.blocked"
    seen_blocked: list[bool] = []
    engine = new_engine(ws)
    run_engine(
        engine,
        lambda: ws.done("docs") == ["c-publish.md"],
        timeout=60,
        during=lambda: seen_blocked.append(sidecar.exists()),
    )
    assert order.read_text().split() == ["a", "b", "c"]
    assert any(seen_blocked), "the .blocked sidecar never appeared"
    assert not sidecar.exists(), "the .blocked sidecar stayed after dispatch"
    blocked = [e for e in ws.events() if e["type"] == "blocked" and e["task"] == "docs:c-publish"]
    assert len(blocked) == 1  # created once, not re-reported on every scan


def test_unsafe_depends_on_blocks_and_is_reported(ws: Workspace, caplog: pytest.LogCaptureFixture) -> None:
    ws.add_task("web", "evil", "Never run me", depends_on=["../etc:passwd"])
    ws.add_task("web", "fine", "Run me\nsim: work 100ms")
    engine = new_engine(ws)
    run_engine(engine, lambda: ws.done("web") == ["fine.md"], timeout=30)
    assert "evil.md" in ws.inbox("web") and "evil.md.blocked" in ws.inbox("web")
    reasons = [e.get("reason", "") for e in ws.events() if e["type"] == "blocked" and e["task"] == "web:evil"]
    assert reasons and "unsafe depends_on entry '../etc:passwd'" in reasons[0]
    assert "web:evil" not in dispatched(ws)
    assert any("unsafe depends_on" in r.getMessage() and "evil.md" in r.getMessage() for r in caplog.records)


def test_idle_dedicated_session_is_never_dispatched_into(ws: Workspace) -> None:
    dedicated_project = ws.project("conformvault")
    ws.tmux.new_session("ccl-1-conformvault", dedicated_project, command=["/bin/sh"])
    ws.data["pool"]["dedicated"] = [{"name": "ccl-1-conformvault", "project": str(dedicated_project)}]
    ws.data["pool"]["autonomous"].update(min=1, max=1)
    for n in range(3):
        ws.add_task("conformvault", f"d{n}", f"Dedicated project task {n}\nsim: work 300ms", age=n)
    engine = new_engine(ws)
    run_engine(engine, lambda: len(ws.done("conformvault")) == 3, timeout=60)
    sessions = {e.get("session") for e in ws.events() if e["type"] == "dispatched"}
    assert sessions == {"ccl-auto-11"}
    assert "engine.sim" not in ws.tmux.capture("ccl-1-conformvault") and "cd --" not in ws.tmux.capture(
        "ccl-1-conformvault"
    )


def test_crashing_agent_is_requeued_once_then_failed(ws: Workspace) -> None:
    ws.data["pool"]["autonomous"].update(min=1, max=1)
    ws.add_task("web", "boom", "Crash please\nsim: crash")
    engine = new_engine(ws)
    run_engine(
        engine,
        lambda: ws.failed("web") == ["boom.md"] and any(e["type"] == "failed" for e in ws.events()),
        timeout=60,
    )
    kinds = [e["type"] for e in ws.events() if e.get("task") == "web:boom"]
    assert kinds.count("dispatched") == 2
    assert kinds.count("requeued") == 1 and kinds[-1] == "failed"
    failed = (ws.project("web") / ".agent-queue" / "failed" / "boom.md").read_text()
    assert "crashed twice" in failed


def test_a_task_done_after_one_crash_starts_afresh_when_queued_again(ws: Workspace) -> None:
    ws.data["pool"]["autonomous"].update(min=1, max=1)
    ws.add_task("web", "flaky", "Flaky one\nsim: work 3s")
    engine = new_engine(ws)
    killed: list[bool] = []

    def kill_the_first_agent() -> None:
        run = engine.running.get("ccl-auto-11")
        if not killed and run is not None and run.phase == "working":
            ws.tmux.send_keys("ccl-auto-11", "C-c", "C-c")  # the agent quits: a crash to the engine
            killed.append(True)

    run_engine(
        engine,
        lambda: ws.done("web") == ["flaky.md"] and not engine.running,
        timeout=60,
        during=kill_the_first_agent,
    )
    kinds = [e["type"] for e in ws.events() if e.get("task") == "web:flaky"]
    assert kinds.count("requeued") == 1 and kinds[-1] == "completed"
    assert "web:flaky" not in engine.state.requeues
    saved = json.loads((ws.root / "state" / "state.json").read_text())
    assert "web:flaky" not in saved.get("requeues", {})


UUID = "605d46b9-cbaf-4d65-833b-3ba8b940c183"


def test_a_saved_resume_id_outlives_a_failed_launch_and_is_consumed_by_the_one_that_works(
    ws: Workspace,
) -> None:
    ws.data["pool"]["autonomous"].update(min=1, max=1)
    saved = ws.root / "resume" / "ccl-auto-11-resume-id.txt"
    saved.parent.mkdir(parents=True, exist_ok=True)
    saved.write_text(UUID + "\n")
    ws.add_task("web", "again", "Carry on\nsim: work 200ms")
    conversation = conversation_dir(ws.root / "accounts" / "primary", ws.project("web")) / f"{UUID}.jsonl"
    clock = FakeClock()
    engine = new_engine(ws, clock=clock, agent__prompt_timeout="2s")
    kept: list[bool] = []

    def after_the_first_failure() -> None:
        if not kept and any(e["type"] == "launch_failed" for e in ws.events()):
            kept.append(saved.exists())
            # The agent refused the id (no such conversation yet); now there is one.
            conversation.parent.mkdir(parents=True, exist_ok=True)
            conversation.touch()
            clock.advance(LAUNCH_HOLD_MAX + 1)

    run_engine(engine, lambda: ws.done("web") == ["again.md"], timeout=60, during=after_the_first_failure)
    assert kept == [True]
    assert not saved.exists()
    assert "[again.md] Carry on" in conversation.read_text()  # the agent resumed that conversation


def test_a_resume_id_is_dropped_after_two_failed_launches_but_a_newer_one_is_kept(ws: Workspace) -> None:
    engine = new_engine(ws)
    saved = ws.root / "resume" / "ccl-auto-11-resume-id.txt"
    saved.parent.mkdir(parents=True, exist_ok=True)
    saved.write_text(UUID)
    assert engine.resume_ids.get("ccl-auto-11") == UUID
    engine.resume_ids.used("ccl-auto-11", UUID, launched=False)
    assert saved.exists()
    engine.resume_ids.used("ccl-auto-11", UUID, launched=False)
    assert not saved.exists()
    newer = UUID.replace("605d", "705d")
    saved.write_text(newer)
    engine.resume_ids.used("ccl-auto-11", UUID, launched=True)  # not the id that launch used
    assert saved.read_text() == newer


def test_hanging_agent_times_out_on_the_fake_clock(ws: Workspace) -> None:
    ws.data["pool"]["autonomous"].update(min=1, max=1)
    ws.add_task("web", "stuck", "Hang please\nsim: hang")
    clock = FakeClock()
    engine = new_engine(ws, clock=clock, watcher__idle_timeout="30m")

    def advance_once_working() -> None:
        run = engine.running.get("ccl-auto-11")
        if run is not None and run.phase == "working" and clock.now() - run.started < 3600:
            clock.advance(3600)

    def recycled() -> bool:
        s = engine.state.sessions.get("ccl-auto-11")
        return ws.failed("web") == ["stuck.md"] and s is not None and s.state == "idle"

    run_engine(engine, recycled, timeout=60, during=advance_once_working)
    text = (ws.project("web") / ".agent-queue" / "failed" / "stuck.md").read_text()
    assert "timed out: not finished within 30m" in text
    assert ws.tmux.current_command("ccl-auto-11") == "sh"  # the hung agent was stopped


@pytest.mark.parametrize("style", SIM_STYLES)
def test_restart_adopts_a_task_whose_agent_still_works_and_finishes_it_once(
    ws: Workspace, style: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_sim_style(style, monkeypatch)
    ran = ws.root / "ran.log"
    ws.data["pool"]["autonomous"].update(min=1, max=1)
    ws.add_task("web", "long", f"Long one\nsim: work 6s\nsim: append {ran} long")
    first = new_engine(ws)
    run_engine(
        first,
        lambda: (
            first.state.sessions.get("ccl-auto-11", None) is not None
            and first.state.sessions["ccl-auto-11"].state == "working"
        ),
        timeout=30,
    )
    # a clean stop leaves the claim to the next run
    assert ws.inbox("web") == ["long.md.dispatched"], ws.events()
    second = new_engine(ws)
    run_engine(second, lambda: ws.done("web") == ["long.md"], timeout=30)
    recovered = [e for e in ws.events() if e["type"] == "recovered"]
    assert [(e["session"], e["task"]) for e in recovered] == [("ccl-auto-11", "web:long")]
    assert ran.read_text().split() == ["long"]
    assert [e["type"] for e in ws.events() if e.get("task") == "web:long"].count("dispatched") == 1


@pytest.mark.parametrize("style", SIM_STYLES)
def test_restart_with_its_state_lost_finds_the_holder_by_the_echoed_prompt(
    ws: Workspace, style: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_sim_style(style, monkeypatch)
    ran = ws.root / "ran.log"
    ws.data["pool"]["autonomous"].update(min=2, max=2)
    ws.add_task("web", "long", f"Long one\nsim: work 6s\nsim: append {ran} long")
    first = new_engine(ws)
    run_engine(
        first,
        lambda: any(s.state == "working" for s in first.state.sessions.values()),
        timeout=30,
    )
    holder = next(name for name, s in first.state.sessions.items() if s.state == "working")
    (ws.root / "state" / "state.json").unlink()  # only the pane tells who holds the task now
    second = new_engine(ws)
    run_engine(second, lambda: ws.done("web") == ["long.md"], timeout=30)
    recovered = [(e["session"], e["task"]) for e in ws.events() if e["type"] == "recovered"]
    assert recovered == [(holder, "web:long")]
    assert [e["type"] for e in ws.events() if e.get("task") == "web:long"].count("dispatched") == 1
    assert ran.read_text().split() == ["long"]


@pytest.mark.parametrize("scrollback", ["deep", "short"])
def test_restart_with_its_state_lost_finds_the_holder_whose_echo_scrolled_out_of_the_capture(
    ws: Workspace, tmp_path: Path, scrollback: str
) -> None:
    if scrollback == "short":  # the echo is gone from tmux altogether: only the transcript tells
        ws.tmux.new_session("zz-user", tmp_path, command=["/bin/sh"])
        subprocess.run(
            ["tmux", "-L", str(ws.tmux.socket_name), "set-option", "-g", "history-limit", "30"], check=True
        )
    ran = ws.root / "ran.log"
    ws.data["pool"]["autonomous"].update(min=2, max=2)
    says = "\n".join(f'sim: say "progress report number {n} of the long one"' for n in range(1, 131))
    ws.add_task("web", "long", f"Long one\n{says}\nsim: work 8s\nsim: append {ran} long")
    first = new_engine(ws)

    def far_along() -> bool:
        holder = next((n for n, s in first.state.sessions.items() if s.state == "working"), None)
        return holder is not None and "number 130 of" in ws.tmux.capture(holder)

    run_engine(first, far_along, timeout=30)
    holder = next(name for name, s in first.state.sessions.items() if s.state == "working")
    assert "[long.md]" not in ws.tmux.capture(holder, CAPTURE_LINES)
    assert ("[long.md]" in ws.tmux.capture(holder, 100_000)) == (scrollback == "deep")
    (ws.root / "state" / "state.json").unlink()
    second = new_engine(ws)
    run_engine(second, lambda: ws.done("web") == ["long.md"], timeout=40)
    recovered = [(e["session"], e["task"]) for e in ws.events() if e["type"] == "recovered"]
    assert recovered == [(holder, "web:long")]
    assert [e["type"] for e in ws.events() if e.get("task") == "web:long"].count("dispatched") == 1
    assert ran.read_text().split() == ["long"]


def test_restart_requeues_a_claimed_task_whose_agent_is_gone(ws: Workspace) -> None:
    ws.data["pool"]["autonomous"].update(min=1, max=1)
    ws.add_task("web", "orphan", "Orphan\nsim: work 100ms")
    inbox = ws.project("web") / ".agent-queue" / "inbox"
    (inbox / "orphan.md").rename(inbox / "orphan.md.dispatched")  # claimed by a run that died
    engine = new_engine(ws)
    run_engine(
        engine,
        lambda: ws.done("web") == ["orphan.md"] and any(e["type"] == "completed" for e in ws.events()),
        timeout=30,
    )
    kinds = [e["type"] for e in ws.events() if e.get("task") == "web:orphan"]
    assert kinds[:2] == ["requeued", "dispatched"] and kinds[-1] == "completed"


def test_stop_hook_done_signal_completes_a_task_long_before_the_next_poll(ws: Workspace) -> None:
    ws.data["agent"]["install_stop_hook"] = True
    ws.data["watcher"]["interval"] = "60s"
    ws.data["pool"]["autonomous"].update(min=1, max=1)
    ws.add_task("web", "quick", "Quick one\nsim: work 300ms")
    engine = new_engine(ws)
    started = time.monotonic()
    run_engine(engine, lambda: ws.done("web") == ["quick.md"], timeout=30)
    assert time.monotonic() - started < 20  # far below the 60 s poll: the signal woke the watcher
    settings = json.loads((ws.root / "accounts" / "primary" / "settings.json").read_text())
    assert "agent-done-" in settings["hooks"]["Stop"][0]["hooks"][0]["command"]


def test_an_agent_that_exits_at_once_fails_its_launch_with_what_it_printed(ws: Workspace) -> None:
    ws.data["pool"]["autonomous"].update(min=1, max=1)
    refusing = ws.root / "refusing-agent"
    refusing.write_text(
        "#!/bin/sh\necho '--dangerously-skip-permissions cannot be used with root/sudo privileges'\nexit 1\n"
    )
    refusing.chmod(0o755)
    ws.add_task("web", "t", "Task\nsim: work 200ms")
    engine = new_engine(ws, agent__command=str(refusing), agent__prompt_timeout="60s")
    run_engine(engine, lambda: any(e["type"] == "launch_failed" for e in ws.events()), timeout=30)
    [failed] = [e for e in ws.events() if e["type"] == "launch_failed"]
    # Read from the pane as soon as the shell was back, not after the prompt timeout.
    assert "exited at once" in failed["reason"] and "cannot be used with root/sudo" in failed["reason"]
    assert ws.inbox("web") == ["t.md"]  # requeued, not lost
    # The session is held back a little, says so, and the operator (or a restart) lifts the hold.
    row = next(r for r in engine.snapshot().sessions if r.name == "ccl-auto-11")
    assert row.held_until is not None and row.held_until - time.time() <= hold_after(1)
    assert engine.retry_launches() == ["ccl-auto-11"]
    assert engine.state.sessions["ccl-auto-11"].held_until is None


def test_a_launch_hold_backs_off_and_is_lifted_by_a_restart(ws: Workspace) -> None:
    assert [hold_after(n) for n in range(1, 7)] == [15, 30, 60, 120, 240, 300]
    ws.data["pool"]["autonomous"].update(min=1, max=1)
    engine = new_engine(ws)
    s = engine.session_state("ccl-auto-11")
    s.launch_failures, s.held_until = 3, time.time() + 3600
    engine.save()
    ws.add_task("web", "t", "Task\nsim: work 200ms")
    again = new_engine(ws)
    run_engine(again, lambda: ws.done("web") == ["t.md"], timeout=60)
    assert again.state.sessions["ccl-auto-11"].launch_failures == 0
