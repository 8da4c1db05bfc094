"""`cfo --no-ui` stops on SIGINT however it is sent, and `cfo demo --no-ui` works its queue and leaves."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from engine.tmux import LibtmuxClient
from tests.helpers import wait_until
from tests.integration.pipeline_support import Workspace, make_workspace, start_headless

pytestmark = pytest.mark.integration


@pytest.fixture
def ws(tmp_path: Path, tmux: LibtmuxClient) -> Workspace:
    return make_workspace(tmp_path / "ws", tmux, agents=2)


@pytest.mark.parametrize("target", ["process", "process group"])
def test_sigint_stops_it_with_status_0_and_the_running_task_saved(ws: Workspace, target: str) -> None:
    ws.add_task("proj", "long", "Long one\nsim: work 20s")
    log = ws.root / "engine.log"
    proc = start_headless(ws, log)
    try:
        wait_until(
            lambda: any(e["type"] == "submitted" for e in ws.events()), timeout=30, what="the task submitted"
        )
        if target == "process":
            os.kill(proc.pid, signal.SIGINT)
        else:  # as a terminal's Ctrl-C does: the engine and every child it has at that moment
            os.killpg(proc.pid, signal.SIGINT)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert ws.events()[-1]["type"] == "stopped"
    saved = json.loads((ws.root / "state" / "state.json").read_text())
    holders = [s for s in saved["sessions"] if s["task"] == "proj:long"]
    assert [s["state"] for s in holders] == ["working"]
    assert ws.inbox("proj") == ["long.md.dispatched"]  # the claim is left for the next run to adopt
    text = log.read_text()
    assert "Traceback" not in text and "KeyboardInterrupt" not in text


@dataclass
class PlainDemo:
    stderr: str
    root: Path  # its workspace
    socket: str  # its tmux server
    env: dict[str, str]


def run_plain_demo(tmp_path: Path, agents: int, tasks: int) -> PlainDemo:
    """`cfo demo --no-ui` with a plain queue of `tasks`, its temporary files and tmux sockets under
    `tmp_path`; it must end with status 0 and name its workspace and tmux server."""
    tmpdir, sockets = tmp_path / "tmp", tmp_path / "tmux"
    tmpdir.mkdir()
    sockets.mkdir()
    env = {**os.environ, "TMPDIR": str(tmpdir), "TMUX_TMPDIR": str(sockets), "HOME": str(tmp_path)}
    env.pop("TMUX", None)
    demo = subprocess.run(
        [
            sys.executable,
            "-m",
            "cfo_tui.cli",
            "demo",
            "--no-ui",
            "--agents",
            str(agents),
            "--tasks",
            str(tasks),
        ],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        env=env,
        timeout=90,
    )
    assert demo.returncode == 0, demo.stderr[-3000:]
    found = re.search(r"demo workspace: (\S+)\s+\(tmux -L (\S+) attach\)", demo.stderr)
    assert found, demo.stderr[-3000:]
    return PlainDemo(demo.stderr, Path(found.group(1)), found.group(2), env)


def test_demo_no_ui_works_its_queue_to_the_end_and_leaves_no_tmux_server(tmp_path: Path) -> None:
    demo = run_plain_demo(tmp_path, agents=2, tasks=3)
    root, socket_name, env = demo.root, demo.socket, demo.env
    completed = re.findall(r" completed .*task=(\S+)", demo.stderr)
    assert sorted(completed) == [
        "billing-api:001-fix-rounding",
        "webapp:001-login-form",
        "webapp:002-quota-banner",
    ]
    assert not re.search(r"^\S+ (failed|requeued) ", demo.stderr, re.MULTILINE)
    assert "queue drained: stopping" in demo.stderr
    assert " swap " not in demo.stderr  # the words "usage limit reached" in a task are not a limit
    assert "Traceback" not in demo.stderr
    assert not root.exists()  # the throw-away workspace is gone
    # tmux leaves its socket file behind; what must be gone is a server answering on it
    alive = subprocess.run(["tmux", "-L", socket_name, "list-sessions"], capture_output=True, env=env)
    assert alive.returncode != 0, alive.stdout
