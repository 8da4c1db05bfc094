"""Quota failover on real tmux with the simulated agent: swaps, resumed conversations, false alarms."""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path
from typing import cast

import pytest

from engine.conversations import conversation_dir
from engine.events import Event
from engine.tmux import LibtmuxClient
from tests.integration.pipeline_support import Workspace, make_workspace, new_engine, run_engine

pytestmark = pytest.mark.integration


@pytest.fixture
def ws(tmp_path: Path, tmux: LibtmuxClient) -> Workspace:
    return make_workspace(tmp_path / "ws", tmux, agents=2)


def swaps(ws: Workspace) -> list[dict[str, object]]:
    return [e for e in ws.events() if e["type"] == "swap"]


def footer_account(ws: Workspace, project: str, name: str) -> str:
    text = (ws.project(project) / ".agent-queue" / "done" / name).read_text()
    return next(line.split(": ", 1)[1] for line in text.splitlines() if line.startswith("account: "))


def test_a_limit_moves_the_stopped_run_while_a_healthy_turn_finishes_on_the_old_account(
    ws: Workspace,
) -> None:
    ran = ws.root / "ran.log"
    ws.add_task(
        "web",
        "a-limited",
        "Hits the limit\nsim: work 1s\n"
        f'sim: quota "You\'ve hit your limit · resets 3am"\nsim: append {ran} A',
        age=2,
    )
    ws.add_task("web", "b-long", f"Long work\nsim: work 4s\nsim: append {ran} B", age=1)
    engine = new_engine(ws)
    run_engine(engine, lambda: len(ws.done("web")) == 2 and not engine.running, timeout=90)

    [swap] = swaps(ws)
    assert (swap["from_account"], swap["account"]) == ("primary", "secondary")
    assert swap["pattern"] == "hit_your_limit" and swap["session"] in ("ccl-auto-11", "ccl-auto-12")
    others = {"ccl-auto-11", "ccl-auto-12"} - {swap["session"]}
    assert swap["resumed"] == [swap["session"]] and swap["finishing"] == sorted(others)
    assert sorted(ran.read_text().split()) == ["A", "B"]  # each finished once
    assert footer_account(ws, "web", "a-limited.md") == "secondary"  # resumed in its conversation there
    assert footer_account(ws, "web", "b-long.md") == "primary"  # its healthy turn was not cut off
    # one conversation file per task: the resumed agent appended to the same transcript
    folder = conversation_dir(ws.root / "shared", ws.project("web"))
    assert len([p for p in os.listdir(folder) if p.endswith(".jsonl")]) == 2
    assert engine.state.active_account == "secondary"
    assert engine.state.accounts["primary"].usable_again_at is not None
    assert "requeued" not in [e["type"] for e in ws.events()]
    assert all(s.task is None for s in engine.state.sessions.values())  # no stale record after the swap


def test_a_run_left_on_the_exhausted_account_moves_alone_when_it_meets_the_limit(ws: Workspace) -> None:
    ran = ws.root / "ran.log"
    ws.add_task("web", "a", f"First\nsim: work 3s\nsim: append {ran} A", age=2)
    ws.add_task("web", "b", f"Second\nsim: work 3s\nsim: append {ran} B", age=1)
    engine = new_engine(ws)
    exhausted: list[bool] = []

    def run_out_mid_turn() -> None:  # the account runs out while both turns are under way
        if not exhausted and sum(1 for r in engine.running.values() if r.phase == "working") == 2:
            exhausted.append(True)
            (ws.root / "accounts" / "primary" / "sim-quota").write_text("You've hit your limit · resets 3am")

    run_engine(engine, lambda: len(ws.done("web")) == 2, timeout=90, during=run_out_mid_turn)
    [swap] = swaps(ws)  # one swap: the second limit on the old account moves its run, no swap back
    moved = [e for e in ws.events() if e["type"] == "moved"]
    assert len(cast(list[str], swap["resumed"])) + len(moved) == 2
    assert all(e["account"] == "secondary" and e["from_account"] == "primary" for e in moved)
    assert sorted(ran.read_text().split()) == ["A", "B"]
    assert footer_account(ws, "web", "a.md") == footer_account(ws, "web", "b.md") == "secondary"
    assert "requeued" not in [e["type"] for e in ws.events()]


def test_a_done_signal_left_by_the_old_agent_does_not_end_the_moved_run(ws: Workspace) -> None:
    ws.data["pool"]["autonomous"].update(min=1, max=1)
    ran = ws.root / "ran.log"
    ws.add_task("web", "a", f"Work\nsim: work 1s\nsim: exhaust 1h\nsim: work 2s\nsim: append {ran} A")
    engine = new_engine(ws)
    signal = ws.root / "signals" / "agent-done-ccl-auto-11"
    planted: list[bool] = []

    def late_stop_hook(event: Event) -> None:  # the old agent's hook lands just after the limit is seen
        if event.type == "quota_hit":
            planted.append(True)
            signal.parent.mkdir(parents=True, exist_ok=True)
            signal.touch()

    engine.subscribe(late_stop_hook)
    run_engine(engine, lambda: ws.done("web") == ["a.md"], timeout=60)
    assert planted
    assert ran.read_text().split() == ["A"]  # its work was over when it was reported done
    assert footer_account(ws, "web", "a.md") == "secondary"
    done = (ws.project("web") / ".agent-queue" / "done" / "a.md").read_text()
    assert "how: turn ended" in done


def test_a_429_record_swaps_though_the_screen_wording_is_new(ws: Workspace) -> None:
    ws.data["pool"]["autonomous"].update(min=1, max=1)
    ran = ws.root / "ran.log"
    body = f'New wording\nsim: quota "Your plan\'s allowance is used up for now"\nsim: append {ran} A'
    ws.add_task("web", "t", body)
    engine = new_engine(ws)
    run_engine(engine, lambda: ws.done("web") == ["t.md"], timeout=60)
    [swap] = swaps(ws)
    assert swap["pattern"] == "transcript:rate_limit" and swap["account"] == "secondary"
    assert ran.read_text().split() == ["A"]  # finished after the swap, not taken as done at the limit
    assert footer_account(ws, "web", "t.md") == "secondary"


def test_server_errors_never_swap(ws: Workspace) -> None:
    # The throttle comes as a 429 record, as the real agent writes it: its wording says it is no usage limit.
    body = (
        "Flaky API\nsim: error 529\nsim: error 500\nsim: throttle\nsim: error 529 recovered\nsim: work 200ms"
    )
    ws.add_task("web", "flaky", body)
    engine = new_engine(ws)
    run_engine(engine, lambda: ws.done("web") == ["flaky.md"], timeout=60)
    assert swaps(ws) == []
    assert engine.state.active_account == "primary"
    kinds = [e["type"] for e in ws.events()]
    assert kinds.count("api_error") == 3 and "quota_hit" not in kinds
    reasons = [str(e["reason"]) for e in ws.events() if e["type"] == "api_error"]
    assert any("529" in r for r in reasons) and any("500" in r for r in reasons)
    assert any("not your usage limit" in r for r in reasons)


def test_an_api_keys_429_after_the_agents_retries_swaps_and_the_task_finishes_on_the_next_account(
    ws: Workspace,
) -> None:
    ws.data["pool"]["autonomous"].update(min=1, max=1)
    ran = ws.root / "ran.log"
    ws.add_task("web", "t", f"Rate limited\nsim: error 429\nsim: append {ran} A")
    engine = new_engine(ws)
    run_engine(engine, lambda: ws.done("web") == ["t.md"], timeout=60)
    [swap] = swaps(ws)
    assert swap["account"] == "secondary"
    assert ran.read_text().split() == ["A"]  # not taken as done at the error
    assert footer_account(ws, "web", "t.md") == "secondary"


def test_a_529_already_answered_does_not_block_a_fresh_limit_hit(ws: Workspace) -> None:
    ws.data["pool"]["autonomous"].update(min=1, max=1)
    body = 'Overloaded, then limited\nsim: error 529\nsim: quota "You\'ve hit your limit · resets 3am"'
    ws.add_task("web", "t", body + "\nsim: work 200ms")
    engine = new_engine(ws)
    run_engine(engine, lambda: ws.done("web") == ["t.md"], timeout=60)
    kinds = [e["type"] for e in ws.events()]
    assert kinds.index("api_error") < kinds.index("quota_hit") < kinds.index("swap")
    [swap] = swaps(ws)
    assert (swap["from_account"], swap["account"]) == ("primary", "secondary")
    assert footer_account(ws, "web", "t.md") == "secondary"


def test_quota_words_in_a_task_and_its_answers_never_swap(ws: Workspace) -> None:
    body = (
        "Handle 'Claude AI usage limit reached|1700000000' and \"You've hit your limit · resets 2am\"\n"
        'sim: say "Detected: 5-hour limit reached ∙ resets 3am (rate_limit_error)"\n'
        "sim: work 300ms"
    )
    ws.add_task("web", "quota-code", body)
    engine = new_engine(ws)
    run_engine(engine, lambda: ws.done("web") == ["quota-code.md"], timeout=60)
    assert swaps(ws) == []
    assert not [e for e in ws.events() if e["type"] == "quota_hit"]


def test_a_server_error_quoted_as_a_result_line_in_a_task_does_not_veto_its_limit_hit(ws: Workspace) -> None:
    ws.data["pool"]["autonomous"].update(min=1, max=1)
    body = (
        "Parse the agent's error lines, such as:\n"
        '⎿  API Error: 529 {"type":"error","error":{"type":"overloaded_error"}}\n'
        "and count them per session.\n"
        'sim: quota "You\'ve hit your limit · resets 3am"\nsim: work 200ms'
    )
    ws.add_task("web", "t", body)
    engine = new_engine(ws)
    run_engine(engine, lambda: ws.done("web") == ["t.md"], timeout=60)
    [swap] = swaps(ws)
    assert swap["account"] == "secondary" and swap["pattern"] == "hit_your_limit"
    assert "api_error" not in [e["type"] for e in ws.events()]


def test_operator_requested_swap_moves_an_idle_pool(ws: Workspace) -> None:
    engine = new_engine(ws)
    answers: list[str | None] = []

    def ask_once() -> None:
        if not answers and engine.state.sessions.get("ccl-auto-12") is not None:
            answers.append(engine.request_swap("operator"))

    run_engine(engine, lambda: bool(swaps(ws)), timeout=60, during=ask_once)
    assert answers == ["secondary"]
    assert engine.state.active_account == "secondary"
    assert (
        engine.state.accounts.get("primary") is None
        or engine.state.accounts["primary"].usable_again_at is None
    )


def test_a_run_finishing_during_a_swap_is_left_to_finish(
    ws: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    import threading

    from engine import moves

    ws.data["pool"]["autonomous"].update(min=1, max=1)
    ws.add_task("web", "t", "Quick\nsim: work 200ms")
    engine = new_engine(ws)
    finishing, swapped = threading.Event(), threading.Event()
    complete = moves.complete

    def held_complete(*args: object, **kwargs: object) -> object:
        finishing.set()
        swapped.wait(timeout=20)  # the file is still on its way to done/ while the swap runs
        return complete(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(moves, "complete", held_complete)
    asked: list[str | None] = []

    def swap_while_finishing() -> None:
        if finishing.is_set() and not asked:
            asked.append(engine.request_swap("operator"))
        if swaps(ws):
            swapped.set()

    run_engine(
        engine,
        lambda: bool(swaps(ws)) and ws.done("web") == ["t.md"] and not engine.running,
        timeout=30,
        during=swap_while_finishing,
    )
    assert asked == ["secondary"]
    [swap] = swaps(ws)
    assert swap["resumed"] == []
    kinds = [e["type"] for e in ws.events()]
    assert kinds.count("completed") == 1 and "requeued" not in kinds
    assert ws.inbox("web") == []


def test_a_second_hit_inside_the_cooldown_does_not_swap_back(
    ws: Workspace, caplog: pytest.LogCaptureFixture
) -> None:
    for account in ("primary", "secondary"):
        (ws.root / "accounts" / account / "sim-quota").write_text("You've hit your limit · resets 3am")
    ws.add_task("web", "t", "Task\nsim: work 200ms")
    engine = new_engine(ws)

    def ignored() -> bool:
        return any("within the cooldown" in r.getMessage() for r in caplog.records)

    run_engine(engine, ignored, timeout=60)
    assert len(swaps(ws)) == 1
    assert engine.state.active_account == "secondary"


def test_auth_failure_restarts_once_then_takes_the_session_out_of_the_pool(ws: Workspace) -> None:
    ws.data["pool"]["autonomous"].update(min=1, max=1)
    ws.add_task("web", "login", "Needs a login\nsim: auth")
    engine = new_engine(ws)
    run_engine(engine, lambda: ws.failed("web") == ["login.md"], timeout=60)
    kinds = [e["type"] for e in ws.events()]
    assert kinds.count("auth_failed") == 2 and kinds.count("requeued") == 1
    assert "session_disabled" in kinds
    assert swaps(ws) == []  # an auth failure is not a quota hit
    assert engine.state.sessions["ccl-auto-11"].state == "out of pool"
    assert "auth failure twice" in (ws.project("web") / ".agent-queue" / "failed" / "login.md").read_text()

    # Logged in again and restarted: the session is back, with a fresh count of failures.
    ws.add_task("web", "after", "Fine now\nsim: work 100ms")
    again = new_engine(ws)
    run_engine(again, lambda: ws.done("web") == ["after.md"], timeout=60)
    assert "session: ccl-auto-11" in (ws.project("web") / ".agent-queue" / "done" / "after.md").read_text()
    assert "auth_failures:ccl-auto-11" not in again.state.counters


def test_a_task_failing_auth_is_requeued_once_however_many_sessions_the_pool_has(ws: Workspace) -> None:
    ws.add_task("web", "login", "Needs a login\nsim: auth")
    engine = new_engine(ws)
    run_engine(engine, lambda: ws.failed("web") == ["login.md"], timeout=60)
    events = ws.events()
    kinds = [e["type"] for e in events]
    assert kinds.count("auth_failed") == 2 and kinds.count("requeued") == 1
    assert swaps(ws) == []
    failed_in = {e["session"] for e in events if e["type"] == "auth_failed"}
    # A session that failed only once stays in the pool.
    assert ("session_disabled" in kinds) == (len(failed_in) == 1)
    assert "auth failure twice" in (ws.project("web") / ".agent-queue" / "failed" / "login.md").read_text()


def test_dedicated_session_is_resumed_and_its_limit_menu_closed_with_esc(ws: Workspace) -> None:
    from engine.launch import command_line
    from engine.symlinks import ensure_links
    from engine.workspace import agent_command
    from tests.helpers import wait_until

    vault = ws.project("vault")
    ws.data["pool"]["dedicated"] = [{"name": "ccl-1-vault", "project": str(vault)}]
    ws.data["pool"]["autonomous"].update(min=1, max=1)
    ensure_links(ws.config())
    primary = ws.root / "accounts" / "primary"
    command, args = agent_command()
    ws.tmux.new_session("ccl-1-vault", vault, command=["/bin/sh"])
    ws.tmux.type_line("ccl-1-vault", command_line(vault, primary, command, args, "sonnet"))
    wait_until(lambda: "bypass permissions" in ws.tmux.capture("ccl-1-vault"), what="dedicated agent up")
    ws.tmux.type_line("ccl-1-vault", "hello there")
    wait_until(lambda: "Done: hello there" in ws.tmux.capture("ccl-1-vault"), what="first answer")
    (primary / "sim-quota").write_text("You've hit your limit · resets 3am")
    (primary / "sim-limit-menu").touch()
    ws.tmux.type_line("ccl-1-vault", "and another")
    wait_until(lambda: "What do you want to do?" in ws.tmux.capture("ccl-1-vault"), what="limit menu")

    ws.add_task("web", "t", "Pool task\nsim: work 300ms")
    engine = new_engine(ws)
    run_engine(
        engine,
        lambda: ws.done("web") == ["t.md"] and "--resume" in ws.tmux.capture("ccl-1-vault", 200),
        timeout=90,
    )
    [swap] = swaps(ws)
    assert "ccl-1-vault" in swap["resumed"]  # type: ignore[operator]
    pane = ws.tmux.capture("ccl-1-vault", 300)
    # Enter on the menu would have picked an option (the default one waits for the reset); Esc closed it.
    assert "Upgrade your plan at" not in pane and "Waiting for the limit to reset." not in pane
    assert str(ws.root / "accounts" / "secondary") in pane
    wait_until(lambda: "bypass permissions" in ws.tmux.capture("ccl-1-vault", 20), what="resumed agent up")
    folder = conversation_dir(ws.root / "shared", vault)
    assert len([p for p in os.listdir(folder) if p.endswith(".jsonl")]) == 1


def test_every_account_exhausted_pauses_dispatch_until_the_reset(ws: Workspace) -> None:
    from engine.clock import FakeClock

    ws.data["pool"]["autonomous"].update(min=1, max=1)
    ws.data["quota"] = {"reactivate_cooldown": "0s"}
    homes = [ws.root / "accounts" / a for a in ("primary", "secondary")]
    for home in homes:
        (home / "sim-quota").write_text("You've hit your limit · resets 3am")
    ran = ws.root / "ran.log"
    ws.add_task("web", "t", f"Task\nsim: work 200ms\nsim: append {ran} done")
    clock = FakeClock()
    engine = new_engine(ws, clock=clock)
    reset_seen: list[float] = []

    def after_exhaustion() -> None:
        until = engine.state.paused_until
        if until is not None and not reset_seen:
            reset_seen.append(until)
            for home in homes:
                (home / "sim-quota").unlink()
            clock.advance(until - clock.now() + 1)

    run_engine(engine, lambda: ws.done("web") == ["t.md"], timeout=90, during=after_exhaustion)
    kinds = [e["type"] for e in ws.events()]
    assert "all_exhausted" in kinds
    exhausted = next(e for e in ws.events() if e["type"] == "all_exhausted")
    assert exhausted["until"] == reset_seen[0]
    assert kinds.index("all_exhausted") < kinds.index("resumed")
    assert engine.state.dispatch == "running" and engine.state.paused_until is None
    assert ran.read_text().split() == ["done"]


def start_dedicated(ws: Workspace, name: str, project: Path, prompt: str = "hello there") -> None:
    """A dedicated session with an agent under the first account that has answered one prompt."""
    from engine.launch import command_line
    from engine.symlinks import ensure_links
    from engine.workspace import agent_command
    from tests.helpers import wait_until

    ws.data["pool"]["dedicated"] = [{"name": name, "project": str(project)}]
    ensure_links(ws.config())
    command, args = agent_command()
    ws.tmux.new_session(name, project, command=["/bin/sh"])
    ws.tmux.type_line(name, command_line(project, ws.root / "accounts" / "primary", command, args, "sonnet"))
    wait_until(lambda: "bypass permissions" in ws.tmux.capture(name), what="dedicated agent up")
    ws.tmux.type_line(name, prompt)
    wait_until(lambda: f"Done: {prompt}" in ws.tmux.capture(name), what="first answer")


def test_a_limit_shown_in_a_dedicated_session_swaps_the_accounts(
    ws: Workspace, caplog: pytest.LogCaptureFixture
) -> None:
    # "Done: hi" is too short to tell conversations apart: the session's transcript is not known.
    start_dedicated(ws, "ccl-1-vault", ws.project("vault"), prompt="hi")
    engine = new_engine(ws)
    asked: list[bool] = []

    def hit_the_limit_once_watched() -> None:
        if not asked and engine.quota.has_looked("ccl-1-vault"):  # after the engine's first look
            asked.append(True)
            (ws.root / "accounts" / "primary" / "sim-quota").write_text("Claude usage limit reached.")
            ws.tmux.type_line("ccl-1-vault", "one more thing")

    run_engine(engine, lambda: bool(swaps(ws)), timeout=60, during=hit_the_limit_once_watched)
    [swap] = swaps(ws)
    assert swap["session"] == "ccl-1-vault" and swap["account"] == "secondary"
    assert "ccl-1-vault" in swap["resumed"]  # type: ignore[operator]
    # Shown on screen only, with no reset time: the first look waits, a look 2 s later swaps.
    looks = [r for r in caplog.records if r.getMessage().startswith("quota: session=ccl-1-vault")]
    decisions = [r.getMessage().split("decision=")[1] for r in looks]
    assert decisions[0] == "first look: confirm on a second look" and decisions[-1] == "swap: seen twice"
    assert looks[-1].created - looks[0].created >= 2.0


def test_an_old_limit_already_in_a_dedicated_pane_at_start_does_not_swap(
    ws: Workspace, caplog: pytest.LogCaptureFixture
) -> None:
    from tests.helpers import wait_until

    start_dedicated(ws, "ccl-1-vault", ws.project("vault"))
    (ws.root / "accounts" / "primary" / "sim-quota").write_text("You've hit your limit · resets 3am")
    ws.tmux.type_line("ccl-1-vault", "one more thing")
    wait_until(lambda: "hit your limit" in ws.tmux.capture("ccl-1-vault"), what="the old limit on screen")
    ws.add_task("web", "t", "Pool task\nsim: work 300ms")
    (ws.root / "accounts" / "primary" / "sim-quota").unlink()  # the limit has since reset
    engine = new_engine(ws)
    run_engine(engine, lambda: ws.done("web") == ["t.md"], timeout=60)
    assert swaps(ws) == []
    assert not [r for r in caplog.records if "quota:" in r.getMessage()]


def test_prefer_first_returns_to_the_first_account_when_no_task_would_move(ws: Workspace) -> None:
    from engine.state import AccountState

    ws.data["quota"] = {"prefer_first": True}
    engine = new_engine(ws)
    engine.state.active_account = "secondary"
    engine.state.accounts["primary"] = AccountState("primary", usable_again_at=engine.clock.now() - 1)
    run_engine(engine, lambda: bool(swaps(ws)), timeout=30)
    [swap] = swaps(ws)
    assert (swap["from_account"], swap["account"]) == ("secondary", "primary")
    assert engine.state.active_account == "primary"
    back = engine.state.accounts["primary"]
    assert back.usable_again_at is None and back.last_reset is not None  # its limit is history now


def test_prefer_first_returns_when_the_limit_resets_not_at_the_next_rescan(ws: Workspace) -> None:
    from engine.state import AccountState

    ws.data["quota"] = {"prefer_first": True}
    engine = new_engine(ws)
    engine.full_scan = 60.0  # the safety-net rescan comes far too late to explain a return in time
    engine.state.active_account = "secondary"
    reset = engine.clock.now() + 3
    engine.state.accounts["primary"] = AccountState("primary", usable_again_at=reset)
    run_engine(engine, lambda: bool(swaps(ws)), timeout=30)
    [swap] = swaps(ws)
    assert swap["account"] == "primary"
    late = datetime.fromisoformat(str(swap["ts"]).replace("Z", "+00:00")).timestamp() - reset
    assert 0 <= late < 1.5, late


def test_a_task_requeued_with_its_conversation_resumes_it_on_its_next_run(ws: Workspace) -> None:
    ws.data["pool"]["autonomous"].update(min=1, max=1)
    ran = ws.root / "ran.log"
    ws.add_task("web", "t", f"Task\nsim: work 200ms\nsim: append {ran} T")
    first = new_engine(ws)
    run_engine(first, lambda: ws.done("web") == ["t.md"], timeout=60)
    folder = conversation_dir(ws.root / "shared", ws.project("web"))
    [conversation] = [p for p in os.listdir(folder) if p.endswith(".jsonl")]
    (ws.project("web") / ".agent-queue" / "done" / "t.md").unlink()
    ws.add_task("web", "t", f"Task\nsim: work 200ms\nsim: append {ran} T")  # as a swap leaves it requeued
    second = new_engine(ws)
    second.state.conversations["web:t"] = conversation.removesuffix(".jsonl")
    run_engine(second, lambda: ws.done("web") == ["t.md"] and not second.running, timeout=60)
    assert [p for p in os.listdir(folder) if p.endswith(".jsonl")] == [conversation]  # no fresh one
    prompts = [line for line in (folder / conversation).read_text().splitlines() if '"type": "user"' in line]
    assert "continue" in prompts[-1]
    assert "web:t" not in second.state.conversations  # done: forgotten
