"""Dedicated sessions on a swap: resumed in their own conversation, or left at the shell, never another's."""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from engine import screen
from engine.conversations import conversation_dir
from engine.core import Engine
from engine.launch import agent_running, command_line
from engine.symlinks import ensure_links
from engine.tmux import LibtmuxClient
from engine.workspace import agent_command
from tests.helpers import wait_until
from tests.integration.pipeline_support import Workspace, make_workspace, new_engine, run_engine

pytestmark = pytest.mark.integration
RESUMED = re.compile(r"secondary \S+ .*?--resume ([0-9a-f-]{36})")


@pytest.fixture
def ws(tmp_path: Path, tmux: LibtmuxClient) -> Workspace:
    ws = make_workspace(tmp_path / "ws", tmux, agents=1)
    ws.data["pool"]["autonomous"].update(min=1, max=1)
    return ws


def start_dedicated(ws: Workspace, sessions: dict[str, Path], prompts: dict[str, list[str]]) -> None:
    """Dedicated sessions with an agent under the first account, each having answered its prompts."""
    ws.data["pool"]["dedicated"] = [{"name": n, "project": str(p)} for n, p in sessions.items()]
    ensure_links(ws.config())
    command, args = agent_command()
    primary = ws.root / "accounts" / "primary"
    for name, project in sessions.items():
        ws.tmux.new_session(name, project, command=["/bin/sh"])
        ws.tmux.type_line(name, command_line(project, primary, command, args, "sonnet"))
    for name in sessions:
        wait_until(lambda: "bypass permissions" in ws.tmux.capture(name), what=f"{name} up")  # noqa: B023
        for prompt in prompts.get(name, []):
            ws.tmux.type_line(name, prompt)
            answer = f"Done: {prompt}"
            wait_until(lambda: answer in ws.tmux.capture(name), what=f"{name}: {prompt}")  # noqa: B023


def conversations(ws: Workspace, project: Path) -> set[str]:
    folder = conversation_dir(ws.root / "shared", project)
    return {p.name[: -len(".jsonl")] for p in folder.glob("*.jsonl")} if folder.is_dir() else set()


def swap_when(engine: Engine, ready: Callable[[], bool]) -> Callable[[], None]:
    """A `during` hook that requests one operator swap once `ready()` holds."""
    asked: list[str | None] = []

    def hook() -> None:
        if not asked and engine.state.sessions.get("ccl-auto-11") is not None and ready():
            asked.append(engine.request_swap("operator"))

    return hook


def swaps(ws: Workspace) -> list[dict[str, object]]:
    return [e for e in ws.events() if e["type"] == "swap"]


def resumed_with(ws: Workspace, name: str) -> str | None:
    """The id the dedicated session's agent was relaunched with, once it shows (the line may wrap)."""
    found = RESUMED.search(ws.tmux.capture(name, 300).replace("\n", ""))
    return found[1] if found else None


def grows_after_resume(ws: Workspace, name: str, project: Path, uuid: str) -> None:
    """The relaunched agent answers a new prompt in that very conversation file."""
    wait_until(lambda: "bypass permissions" in ws.tmux.capture(name, 20), what=f"{name} resumed")
    ws.tmux.type_line(name, f"after the swap in {name}")
    path = conversation_dir(ws.root / "shared", project) / f"{uuid}.jsonl"
    wait_until(lambda: f"Done: after the swap in {name}" in path.read_text(), what=f"{uuid} grows")


def test_a_dedicated_session_resumes_its_own_conversation_not_a_newer_pool_task_one(
    ws: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    vault = ws.project("vault")  # a child of projects_dir with an inbox: pool tasks run there too
    start_dedicated(ws, {"ccl-1-vault": vault}, {"ccl-1-vault": ["hello there"]})
    [own] = conversations(ws, vault)
    ws.add_task("vault", "t", "Pool task in the vault\nsim: work 200ms")
    engine = new_engine(ws)
    resume_file = engine.config.agent.resume_dir / "ccl-1-vault-resume-id.txt"
    at_exit: list[str | None] = []
    type_line = ws.tmux.type_line

    def watching_exit(name: str, line: str, clear: bool = False) -> None:
        if name == "ccl-1-vault" and line == "/exit":
            at_exit.append(resume_file.read_text().strip() if resume_file.exists() else None)
        type_line(name, line, clear)

    monkeypatch.setattr(ws.tmux, "type_line", watching_exit)
    hook = swap_when(engine, lambda: ws.done("vault") == ["t.md"])
    run_engine(engine, lambda: resumed_with(ws, "ccl-1-vault") is not None, timeout=60, during=hook)

    assert len(conversations(ws, vault)) == 2  # the pool task's conversation is the newer file
    assert resumed_with(ws, "ccl-1-vault") == own
    assert at_exit == [own]  # saved before the agent was told to exit
    [swap] = swaps(ws)
    assert swap["resumed"] == ["ccl-1-vault"] and swap["not_resumed"] == {}
    grows_after_resume(ws, "ccl-1-vault", vault, own)


def test_two_dedicated_sessions_in_one_project_each_resume_their_own(
    ws: Workspace, caplog: pytest.LogCaptureFixture
) -> None:
    vault = ws.project("vault")
    sessions = {"ccl-1-vault": vault, "ccl-2-vault": vault}
    start_dedicated(ws, sessions, {"ccl-1-vault": ["first agent here"], "ccl-2-vault": ["second agent here"]})
    caplog.set_level(logging.INFO, logger="engine.switcher")
    before = conversations(ws, vault)
    engine = new_engine(ws)
    run_engine(
        engine,
        lambda: all(resumed_with(ws, n) for n in sessions),
        timeout=60,
        during=swap_when(engine, lambda: True),
    )
    ids = {n: resumed_with(ws, n) for n in sessions}
    assert set(ids.values()) == before and len(before) == 2
    found = [r.getMessage() for r in caplog.records if "is in conversation" in r.getMessage()]
    assert len(found) == 2 and all("(by its latest answer on screen)" in m for m in found)
    for name, uuid in ids.items():
        assert uuid is not None
        text = (conversation_dir(ws.root / "shared", vault) / f"{uuid}.jsonl").read_text()
        assert ("first agent here" in text) == (name == "ccl-1-vault")
        grows_after_resume(ws, name, vault, uuid)


def test_dedicated_sessions_with_the_same_answers_are_told_apart_by_status(
    ws: Workspace, caplog: pytest.LogCaptureFixture
) -> None:
    vault = ws.project("vault")
    sessions = {"ccl-1-vault": vault, "ccl-2-vault": vault}
    start_dedicated(ws, sessions, {n: ["the same question"] for n in sessions})
    caplog.set_level(logging.INFO, logger="engine.switcher")
    engine = new_engine(ws)
    run_engine(
        engine,
        lambda: all(resumed_with(ws, n) for n in sessions),
        timeout=60,
        during=swap_when(engine, lambda: True),
    )
    ids = {n: resumed_with(ws, n) for n in sessions}
    assert set(ids.values()) == conversations(ws, vault) and len(set(ids.values())) == 2
    found = [r.getMessage() for r in caplog.records if "is in conversation" in r.getMessage()]
    assert len(found) == 2 and all("(by /status)" in m for m in found)
    for name, uuid in ids.items():
        assert uuid is not None
        grows_after_resume(ws, name, vault, uuid)


def test_a_dedicated_session_whose_conversation_cannot_be_identified_is_left_at_its_shell(
    ws: Workspace, caplog: pytest.LogCaptureFixture
) -> None:
    vault = ws.project("vault")
    start_dedicated(ws, {"ccl-1-vault": vault}, {})  # never prompted: no conversation file to resume
    engine = new_engine(ws)
    stale = engine.config.agent.resume_dir / "ccl-1-vault-resume-id.txt"
    stale.parent.mkdir(parents=True, exist_ok=True)
    stale.write_text("605d46b9-cbaf-4d65-833b-3ba8b940c183\n")  # saved at an earlier swap
    run_engine(engine, lambda: bool(swaps(ws)), timeout=60, during=swap_when(engine, lambda: True))

    [swap] = swaps(ws)
    assert swap["resumed"] == []
    left = swap["not_resumed"]
    assert isinstance(left, dict) and left["ccl-1-vault"].startswith("left at its shell: /status shows ")
    assert "which has no conversation file" in left["ccl-1-vault"]
    assert engine.state.swaps[-1].sessions_not_resumed == left
    assert not agent_running(ws.tmux.current_command("ccl-1-vault"))
    assert "--resume" not in ws.tmux.capture("ccl-1-vault", 300)
    assert not stale.exists()
    assert any("ccl-1-vault left at its shell" in r.getMessage() for r in caplog.records)


def test_a_limit_in_new_wording_in_a_dedicated_session_swaps_on_its_transcript_record(
    ws: Workspace,
) -> None:
    vault = ws.project("vault")
    start_dedicated(ws, {"ccl-1-vault": vault}, {"ccl-1-vault": ["hello there"]})
    [own] = conversations(ws, vault)
    engine = new_engine(ws)
    asked: list[bool] = []

    def hit_the_limit_once_followed() -> None:
        if not asked and engine.quota.conversation("ccl-1-vault") is not None:  # its conversation is followed
            asked.append(True)
            home = ws.root / "accounts" / "primary"
            (home / "sim-quota").write_text("Your plan's allowance is used up for now")
            ws.tmux.type_line("ccl-1-vault", "one more thing")

    run_engine(engine, lambda: bool(swaps(ws)), timeout=60, during=hit_the_limit_once_followed)
    [swap] = swaps(ws)
    assert swap["session"] == "ccl-1-vault" and swap["pattern"] == "transcript:rate_limit"
    assert swap["resumed"] == ["ccl-1-vault"]
    wait_until(lambda: resumed_with(ws, "ccl-1-vault") == own, what="resumed in its conversation")


def test_a_server_throttle_429_in_a_dedicated_session_does_not_swap(ws: Workspace) -> None:
    vault = ws.project("vault")
    start_dedicated(ws, {"ccl-1-vault": vault}, {"ccl-1-vault": ["hello there"]})
    engine = new_engine(ws)
    typed: list[bool] = []

    def throttled_once_followed() -> None:
        if not typed and engine.quota.conversation("ccl-1-vault") is not None:
            typed.append(True)
            ws.tmux.type_line("ccl-1-vault", "sim: throttle")

    def judged() -> bool:
        followed = engine.quota.conversation("ccl-1-vault")
        record = followed.stop if followed is not None else None
        return record is not None and record.status == 429  # the monitor read the record

    run_engine(engine, judged, timeout=60, during=throttled_once_followed)
    assert swaps(ws) == []
    assert "quota_hit" not in [e["type"] for e in ws.events()]


def test_a_dedicated_session_at_work_finishes_its_turn_then_moves_in_its_own_conversation(
    ws: Workspace,
) -> None:
    vault = ws.project("vault")
    start_dedicated(ws, {"ccl-1-vault": vault}, {"ccl-1-vault": ["hello there"]})
    [own] = conversations(ws, vault)
    engine = new_engine(ws)
    asked: list[str | None] = []

    def drain_swap_while_it_works() -> None:
        if not asked and engine.state.sessions.get("ccl-auto-11") is not None:
            ws.tmux.type_line("ccl-1-vault", "sim: work 3s")
            wait_until(lambda: screen.read_state(ws.tmux.capture("ccl-1-vault")) == "working", what="at work")
            asked.append(engine.request_swap("operator", drain=True))

    run_engine(
        engine,
        lambda: any(e["type"] == "moved" for e in ws.events()),
        timeout=60,
        during=drain_swap_while_it_works,
    )
    [swap] = swaps(ws)
    assert swap["resumed"] == [] and swap["finishing"] == ["ccl-1-vault"]
    [moved] = [e for e in ws.events() if e["type"] == "moved"]
    assert (moved["session"], moved["from_account"], moved["account"]) == (
        "ccl-1-vault",
        "primary",
        "secondary",
    )
    assert "Interrupted" not in ws.tmux.capture("ccl-1-vault", 300)  # its turn was not cut off
    wait_until(lambda: resumed_with(ws, "ccl-1-vault") == own, what="resumed in its conversation")


@pytest.mark.parametrize("when", ["while its turn runs", "at its idle prompt before the swap"])
def test_a_dedicated_session_is_not_moved_while_its_operator_types_a_draft(ws: Workspace, when: str) -> None:
    vault = ws.project("vault")
    start_dedicated(ws, {"ccl-1-vault": vault}, {"ccl-1-vault": ["hello there"]})
    engine = new_engine(ws)
    asked: list[str | None] = []
    draft = "half a thought"
    typed_at: list[float] = []

    def swap_with_a_draft_in_the_box() -> None:
        if asked or engine.state.sessions.get("ccl-auto-11") is None:
            return
        if when == "while its turn runs":
            ws.tmux.type_line("ccl-1-vault", "sim: work 2s")
            wait_until(lambda: screen.read_state(ws.tmux.capture("ccl-1-vault")) == "working", what="at work")
            asked.append(engine.request_swap("operator", drain=True))
            ws.tmux.send_text("ccl-1-vault", draft)  # typed ahead while the turn still runs
        else:
            ws.tmux.send_text("ccl-1-vault", draft)
            wait_until(lambda: draft in ws.tmux.capture("ccl-1-vault", 20), what="the draft shown")
            asked.append(engine.request_swap("operator", drain=True))
        typed_at.append(time.monotonic())

    run_engine(
        engine,
        lambda: bool(typed_at) and time.monotonic() - typed_at[0] > 5,  # any turn ended seconds ago
        timeout=60,
        during=swap_with_a_draft_in_the_box,
    )
    [swap] = swaps(ws)
    assert swap["finishing"] == ["ccl-1-vault"]
    assert [e for e in ws.events() if e["type"] == "moved"] == []  # the draft was not typed over
    assert draft in ws.tmux.capture("ccl-1-vault", 20)
    assert agent_running(ws.tmux.current_command("ccl-1-vault"))

    ws.tmux.send_keys("ccl-1-vault", "C-u")  # the operator clears the box: now it moves
    run_engine(engine, lambda: any(e["type"] == "moved" for e in ws.events()), timeout=60)
    wait_until(lambda: resumed_with(ws, "ccl-1-vault") is not None, what="resumed in its conversation")
