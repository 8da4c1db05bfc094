"""`cfo demo` in a real 80×24 tmux window: the console fills and drains, q quits cleanly, nothing leaks."""

from __future__ import annotations

import os
import re
import shlex
import sys
from pathlib import Path

import pytest

from engine.tmux import LibtmuxClient
from tests.helpers import wait_until

pytestmark = pytest.mark.integration


def done_count(screen: str) -> int:
    found = re.search(r"(\d+) done", screen)
    return int(found.group(1)) if found else -1


def live_demo_servers() -> set[str]:
    folder = Path(f"/tmp/tmux-{os.getuid()}")
    names = {p.name for p in folder.glob("cfo-demo-*")} if folder.exists() else set()
    return {n for n in names if LibtmuxClient(socket_name=n).list_sessions()}


def test_demo_console_fills_and_drains_in_an_80x24_window_and_quits_cleanly(
    tmux: LibtmuxClient, tmp_path: Path
) -> None:
    before = live_demo_servers()
    rc = tmp_path / "rc"
    demo = f"{shlex.quote(sys.executable)} -m cfo_tui.cli demo --agents 2 --tasks 6"
    command = f"{demo}; echo $? > {shlex.quote(str(rc))}"
    tmux.new_session("console", Path.cwd(), command=["sh", "-c", command + "; sleep 60"], width=80, height=24)
    screen = wait_until(
        lambda: (text := tmux.capture("console", 24)) and re.search(r"ccl-auto-1\d +working", text) and text,
        timeout=30,
        what="the sessions pane with a working agent",
    )
    assert "ccl-auto-11" in screen and "ccl-auto-12" in screen and "Sessions" in screen
    assert "q Quit" in screen  # the footer shows the keys
    wait_until(
        lambda: done_count(tmux.capture("console", 24)) >= 6, timeout=90, what="the demo queue drained"
    )
    final = tmux.capture("console", 24)
    assert "0 queued" in final and "0 failed" in final
    assert all(len(line) <= 80 for line in final.splitlines())
    tmux.send_keys("console", "q")
    wait_until(lambda: rc.exists() and rc.read_text().strip(), timeout=30, what="the console to exit")
    assert rc.read_text().strip() == "0"
    assert live_demo_servers() <= before  # the demo's own tmux server is gone
