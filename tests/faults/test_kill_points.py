"""SIGKILL of `cfo --no-ui` at each step of a task's hand-over and recycle, then a restart: every task ends
in done/ exactly once and none runs twice."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from engine.launch import echoed
from engine.patterns import load_patterns
from engine.screen import paste_pending
from engine.tmux import LibtmuxClient
from tests.helpers import wait_until
from tests.integration.pipeline_support import (
    SIM_STYLES,
    Workspace,
    make_workspace,
    start_headless,
    use_sim_style,
)

pytestmark = pytest.mark.integration

SESSION = "ccl-auto-11"
PATTERNS = load_patterns()


@pytest.fixture
def ws(tmp_path: Path, tmux: LibtmuxClient) -> Workspace:
    ws = make_workspace(tmp_path / "ws", tmux, agents=1)
    ws.data["pool"]["autonomous"].update(min=1, max=1)  # one agent: a session left unusable stalls it all
    ws.tmux.new_session(SESSION, ws.projects_dir, command=["/bin/sh"])  # readable by the test from the start
    return ws


def stop(proc: subprocess.Popen[bytes], sig: signal.Signals) -> int:
    if proc.poll() is None:
        os.killpg(proc.pid, sig)
    return proc.wait(timeout=30)


def saved_state(ws: Workspace) -> str | None:
    """The session's state as last saved (what a restart reads)."""
    try:
        data = json.loads((ws.root / "state" / "state.json").read_text())
    except (OSError, ValueError):
        return None
    return next((s["state"] for s in data["sessions"] if s["name"] == SESSION), None)


@dataclass
class Killed:
    state: str | None  # the session's saved state when the engine died
    pane: str  # what the agent showed just after


def kill_when(ws: Workspace, point: Callable[[], bool], what: str) -> Killed:
    """Run the engine, SIGKILL its process group the moment `point()` holds (polled every few ms)."""
    proc = start_headless(ws)
    try:
        deadline = time.monotonic() + 30
        while not point():
            assert proc.poll() is None, "the engine stopped by itself"
            assert time.monotonic() < deadline, f"timed out waiting for {what}"
            time.sleep(0.003)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        stop(proc, signal.SIGKILL)
    return Killed(saved_state(ws), ws.tmux.capture(SESSION))


def add_tasks(ws: Workspace, keys: list[str], ran: Path) -> None:
    for n, key in enumerate(keys):
        ws.add_task("proj", key, f"Task {key}\nsim: work 300ms\nsim: append {ran} {key}", age=10 - n)


def restart_and_finish(ws: Workspace, keys: list[str], ran: Path) -> None:
    proc = start_headless(ws)
    try:
        wait_until(
            lambda: ws.done("proj") == sorted(f"{k}.md" for k in keys),
            timeout=60,
            what=f"all done ({(ws.root / 'engine.log').read_text()[-2000:]})",
        )
        assert stop(proc, signal.SIGTERM) == 0
    finally:
        stop(proc, signal.SIGKILL)
    assert ws.done("proj") == sorted(f"{k}.md" for k in keys)  # one done/ file each, no -2 copies
    assert sorted(ran.read_text().split()) == sorted(keys)  # every task ran exactly once
    assert ws.inbox("proj") == []
    assert "Traceback" not in (ws.root / "engine.log").read_text()


def inbox_file(ws: Workspace, name: str) -> Path:
    return ws.project("proj") / ".agent-queue" / "inbox" / name


def test_killed_right_after_the_claim_before_anything_is_pasted(ws: Workspace) -> None:
    ran, keys = ws.root / "ran.log", ["t0", "t1"]
    add_tasks(ws, keys, ran)
    killed = kill_when(ws, lambda: inbox_file(ws, "t0.md.dispatched").exists(), "the claim of t0")
    assert "[t0.md]" not in killed.pane and "Pasted text" not in killed.pane  # nothing reached the agent
    restart_and_finish(ws, keys, ran)


@pytest.mark.parametrize("style", SIM_STYLES)
def test_killed_while_the_pasted_message_waits_for_its_enter(
    ws: Workspace, style: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_sim_style(style, monkeypatch)
    ran, keys = ws.root / "ran.log", ["t0", "t1"]
    add_tasks(ws, keys, ran)
    killed = kill_when(
        ws, lambda: paste_pending(ws.tmux.capture(SESSION), PATTERNS), "the message pasted, not submitted"
    )
    assert killed.state == "launching"  # the restart learns nothing from state: the pane must tell
    restart_and_finish(ws, keys, ran)


@pytest.mark.parametrize("style", SIM_STYLES)
def test_killed_after_the_agent_took_the_message_before_working_is_saved(
    ws: Workspace, style: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_sim_style(style, monkeypatch)
    hits: list[str | None] = []
    for n in range(4):  # the window is one poll of the engine wide: a few rounds hit it
        ran, keys = ws.root / f"ran-{n}.log", [f"r{n}a", f"r{n}b"]
        add_tasks(ws, keys, ran)
        marker = f"[r{n}a.md]"

        def echo_shown(m: str = marker) -> bool:
            return echoed(ws.tmux.capture(SESSION), m, PATTERNS)

        killed = kill_when(ws, echo_shown, f"the echo of {marker}")
        hits.append(killed.state)
        restart_and_finish(ws, keys, ran)
        for key in keys:  # next round's inbox starts empty
            (ws.project("proj") / ".agent-queue" / "done" / f"{key}.md").unlink()
        if "launching" in hits:
            break
    assert "launching" in hits, hits


def test_killed_during_the_recycle_after_done_was_written(ws: Workspace) -> None:
    ran, keys = ws.root / "ran.log", ["t0", "t1"]
    add_tasks(ws, keys, ran)
    done = ws.project("proj") / ".agent-queue" / "done" / "t0.md"
    killed = kill_when(ws, done.exists, "t0 in done/")
    assert killed.state in ("working", "recycling")  # not yet back to idle
    restart_and_finish(ws, keys, ran)


GATED = """import os, sys, time
gate = sys.argv[1]
while not os.path.exists(gate):  # an agent slow to start, as the real one on a loaded machine
    time.sleep(0.02)
os.execv(sys.argv[2], sys.argv[2:])
"""


def test_killed_while_the_agent_starts_and_restarted_before_it_reaches_its_prompt(ws: Workspace) -> None:
    ran, keys = ws.root / "ran.log", ["t0", "t1"]
    add_tasks(ws, keys, ran)
    wrapper, gate = ws.root / "slow_start.py", ws.root / "gate"
    wrapper.write_text(GATED, encoding="utf-8")
    agent = ws.data["agent"]
    agent["command"], agent["args"] = (
        sys.executable,
        [str(wrapper), str(gate), agent["command"], *agent["args"]],
    )
    killed = kill_when(
        ws,
        lambda: (
            any(e["type"] == "dispatched" for e in ws.events()) and "slow_start" in ws.tmux.capture(SESSION)
        ),
        "the agent of t0 starting",
    )
    assert killed.state == "launching"
    proc = start_headless(ws)
    try:
        # The new engine finds the claim before the agent is up; only then may the agent come up.
        wait_until(
            lambda: any(e["type"] == "requeued" and e["task"] == "proj:t0" for e in ws.events()),
            timeout=30,
            what="t0 requeued by the restart",
        )
        gate.touch()
        wait_until(lambda: ws.done("proj") == ["t0.md", "t1.md"], timeout=60, what="all done")
        assert stop(proc, signal.SIGTERM) == 0
    finally:
        stop(proc, signal.SIGKILL)
    assert sorted(ran.read_text().split()) == keys
    assert ws.inbox("proj") == []
    # The /exit typed while it started was lost; it is typed again at its prompt, not waited out.
    assert "did not exit" not in (ws.root / "engine.log").read_text()
