"""`cfo demo` in a real 80×24 tmux window: the console fills and drains, q or Ctrl-C quits it cleanly."""

from __future__ import annotations

import json
import os
import re
import shlex
import sys
import time
from pathlib import Path

import pytest

from engine.tmux import LibtmuxClient
from tests.helpers import wait_until

pytestmark = pytest.mark.integration

WORKING = re.compile(r"ccl-auto-1\d +(?:pool +)?working")
"""A working pool session in the sessions table (80 columns leave the Kind column out)."""


def tmux_servers() -> set[str]:
    """Names of the live tmux servers of this user."""
    folder = Path(f"/tmp/tmux-{os.getuid()}")
    names = {p.name for p in folder.iterdir()} if folder.exists() else set()
    return {n for n in names if LibtmuxClient(socket_name=n).list_sessions()}


class Demo:
    """`cfo demo --keep` in the tmux window `console`, with its workspace under `folder` (its TMPDIR)."""

    def __init__(self, tmux: LibtmuxClient, folder: Path, tasks: int) -> None:
        self.tmux = tmux
        self.folder = folder
        self.rc = folder / "rc"
        demo = f"{shlex.quote(sys.executable)} -m cfo_tui.cli demo --agents 2 --tasks {tasks} --keep"
        command = f"TMPDIR={shlex.quote(str(folder))} {demo}; echo $? > {shlex.quote(str(self.rc))}"
        tmux.new_session(
            "console", Path.cwd(), command=["sh", "-c", command + "; sleep 60"], width=80, height=24
        )
        root = wait_until(
            lambda: next(folder.glob("cfo-demo-*"), None), timeout=15, what="the demo workspace"
        )
        assert root is not None
        self.root = root
        # The demo names its tmux server after its pid and the workspace folder's last six letters.
        self.server = wait_until(
            lambda: next((s for s in tmux_servers() if s.endswith("-" + self.root.name[-6:])), None),
            timeout=15,
            what="the demo's tmux server",
        )

    def screen(self) -> str:
        return self.tmux.capture("console", 24)

    def exit_status(self) -> str:
        wait_until(
            lambda: self.rc.exists() and self.rc.read_text().strip(), timeout=30, what="the console to exit"
        )
        return self.rc.read_text().strip()

    def events(self) -> list[str]:
        lines = (self.root / "state" / "events.jsonl").read_text(encoding="utf-8").splitlines()
        return [json.loads(line)["type"] for line in lines]

    def saved_at(self) -> float:
        state = json.loads((self.root / "state" / "state.json").read_text(encoding="utf-8"))
        return float(state["saved_at"])


def count(label: str, screen: str) -> int:
    """The number before (`3 queued`) or after (`Inbox 3`, a tab) `label`; -1 if it is not shown."""
    found = re.search(rf"\b(\d+) {label}\b", screen) or re.search(rf"\b{label} (\d+)\b", screen)
    return int(found.group(1)) if found else -1


def idle(session: str, screen: str) -> bool:
    return re.search(rf"{session} +(?:pool +)?idle\b", screen) is not None


def test_demo_console_fills_and_drains_in_an_80x24_window_and_quits_cleanly(
    tmux: LibtmuxClient, tmp_path: Path
) -> None:
    demo = Demo(tmux, tmp_path, tasks=6)
    screen = wait_until(
        lambda: text if WORKING.search(text := demo.screen()) else "",
        timeout=30,
        what="the sessions pane with a working agent",
    )
    assert "ccl-auto-11" in screen and "ccl-auto-12" in screen
    assert "q Quit" in screen  # the footer shows the keys
    queued = count("Inbox", screen)
    assert queued > 0 and count("queued", screen) == queued
    final = wait_until(
        lambda: text if count("done today", text := demo.screen()) >= 6 else "",
        timeout=90,
        what="the demo queue drained",
    )
    assert count("Inbox", final) == 0 and count("queued", final) == 0
    assert re.search(r"\b0 failed today\b", final)
    assert count("Recent", final) >= 6
    wait_until(
        lambda: (text := demo.screen()) and idle("ccl-auto-11", text) and idle("ccl-auto-12", text),
        timeout=30,
        what="both sessions idle again",
    )
    tmux.send_keys("console", "q")
    assert demo.exit_status() == "0"
    assert demo.server not in tmux_servers()


def test_demo_console_quits_cleanly_on_ctrl_c_while_agents_work(tmux: LibtmuxClient, tmp_path: Path) -> None:
    demo = Demo(tmux, tmp_path, tasks=6)
    wait_until(lambda: WORKING.search(demo.screen()), timeout=30, what="an agent working")
    pressed = time.time()
    tmux.send_keys("console", "C-c")
    assert demo.exit_status() == "0"
    assert demo.events()[-1] == "stopped"  # emitted once the engine has stopped and saved
    assert demo.saved_at() >= pressed
    assert demo.server not in tmux_servers()
