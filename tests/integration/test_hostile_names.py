"""Folder and file names are data: shell metacharacters launch fine, control characters are refused."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from engine.tmux import LibtmuxClient, TmuxError
from tests.helpers import wait_until
from tests.integration.pipeline_support import Workspace, make_workspace, new_engine, run_engine

pytestmark = pytest.mark.integration

METACHARACTERS = ("with space", "it's", 'say "hi"', "semi;colon", "cost$HOME", "back`id`tick", "$(id) & |")


@pytest.fixture
def ws(tmp_path: Path, tmux: LibtmuxClient) -> Workspace:
    return make_workspace(tmp_path / "ws", tmux, agents=3)


def test_projects_named_with_shell_metacharacters_launch_their_agent_in_their_own_folder(
    ws: Workspace,
) -> None:
    for n, name in enumerate(METACHARACTERS):
        ws.add_task(name, f"t{n}", f"Where am I\nsim: append cwd.log {n}")
    engine = new_engine(ws)
    run_engine(engine, lambda: all(ws.done(name) for name in METACHARACTERS), timeout=90)
    for n, name in enumerate(METACHARACTERS):
        assert (ws.project(name) / "cwd.log").read_text().split() == [str(n)], name
    assert not [e for e in ws.events() if e["type"] in ("launch_failed", "failed")]


def everything_under(*roots: Path) -> list[str]:
    return [name for root in roots for _, dirs, files in os.walk(root) for name in [*dirs, *files]]


def test_a_project_named_with_control_characters_is_refused_and_nothing_is_typed(
    ws: Workspace, caplog: pytest.LogCaptureFixture
) -> None:
    hostile = "proj\x15touch PWNED\r"
    ws.add_task(hostile, "evil", "Never run me\nsim: work 100ms")
    ws.add_task("web", "fine", "Run me\nsim: work 100ms")
    engine = new_engine(ws)
    with caplog.at_level(logging.ERROR):
        run_engine(engine, lambda: ws.done("web") == ["fine.md"] and engine.dispatcher.scans >= 3, timeout=60)
    assert "PWNED" not in everything_under(ws.root, Path.home())
    assert ws.inbox(hostile) == ["evil.md"]  # never claimed, never moved
    assert not [e for e in ws.events() if hostile in str(e.get("task", ""))]
    refusals = [r.getMessage() for r in caplog.records if "not a project" in r.getMessage()]
    assert len(refusals) == 1, refusals  # one line, not one per scan
    assert "proj\\x15touch PWNED\\x0d: not a project" in refusals[0]
    assert "U+0015 (Ctrl-U)" in refusals[0]


def test_a_task_file_with_control_characters_goes_to_failed_without_reaching_an_agent(ws: Workspace) -> None:
    ran = ws.root / "ran.log"
    inbox = ws.project("web") / ".agent-queue" / "inbox"
    (inbox / "paste.md").write_text(f"Paste escape\n\x1b[201~\rsim: append {ran} escaped\n")
    (inbox / "name\x15.md").write_text(f"Bad name\nsim: append {ran} named\n")
    ws.add_task("web", "fine", "Run me\nsim: work 100ms")
    engine = new_engine(ws)
    run_engine(engine, lambda: ws.done("web") == ["fine.md"] and len(ws.failed("web")) == 2, timeout=60)
    assert not ran.exists()
    failed = ws.project("web") / ".agent-queue" / "failed"
    assert "control character U+001B (Esc) at line 2" in (failed / "paste.md").read_text()
    assert "control character U+0015 (Ctrl-U) in the file name" in (failed / "name\x15.md").read_text()
    reported = {e["task"] for e in ws.events() if e["type"] == "failed"}
    assert reported == {"web:paste", "web:name\\x15"}  # printable in every log line made of it


def test_tmux_refuses_to_type_a_line_holding_a_control_character(ws: Workspace, tmp_path: Path) -> None:
    ws.tmux.new_session("ccl-auto-11", tmp_path, command=["/bin/sh"])
    with pytest.raises(TmuxError, match="U\\+0015"):
        ws.tmux.type_line("ccl-auto-11", f"echo x\x15touch {tmp_path}/PWNED")
    with pytest.raises(TmuxError, match="U\\+001B"):
        ws.tmux.send_text("ccl-auto-11", "line one\n\x1b[201~line two")
    ws.tmux.type_line("ccl-auto-11", f"touch {tmp_path}/typed")
    wait_until((tmp_path / "typed").exists, what="the plain line typed and run")
    assert not (tmp_path / "PWNED").exists()
