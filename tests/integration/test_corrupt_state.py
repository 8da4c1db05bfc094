"""`cfo --no-ui` started on a corrupt state.json: one error line naming it, the file kept aside, and the
running task and the queue rebuilt from tmux and the queue files."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

import pytest

from engine.tmux import LibtmuxClient
from tests.helpers import wait_until
from tests.integration.pipeline_support import Workspace, make_workspace, start_headless

pytestmark = pytest.mark.integration


@pytest.fixture
def ws(tmp_path: Path, tmux: LibtmuxClient) -> Workspace:
    ws = make_workspace(tmp_path / "ws", tmux, agents=2)
    ws.data["pool"]["autonomous"].update(min=2, max=2)
    return ws


def stop(proc: subprocess.Popen[bytes], sig: signal.Signals) -> int:
    if proc.poll() is None:
        os.killpg(proc.pid, sig)
    return proc.wait(timeout=30)


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param(lambda raw: b"\x00\xff\xfe garbage \x9c\x00", id="garbage"),
        pytest.param(lambda raw: raw[: len(raw) // 2], id="truncated"),
    ],
)
def test_a_corrupt_state_file_is_reported_kept_aside_and_rebuilt(ws: Workspace, damage: object) -> None:
    ran = ws.root / "ran.log"
    ws.add_task("web", "long", f"Long one\nsim: work 4s\nsim: append {ran} long", age=5)
    first = start_headless(ws, ws.root / "first.log")
    try:
        wait_until(
            lambda: any(e["type"] == "submitted" for e in ws.events()), timeout=30, what="long submitted"
        )
        assert stop(first, signal.SIGTERM) == 0
    finally:
        stop(first, signal.SIGKILL)
    state = ws.root / "state" / "state.json"
    raw = state.read_bytes()
    assert callable(damage)
    bad = damage(raw)
    state.write_bytes(bad)
    ws.add_task("web", "next", f"Next one\nsim: work 100ms\nsim: append {ran} next")
    log = ws.root / "second.log"
    second = start_headless(ws, log)
    try:
        wait_until(lambda: ws.done("web") == ["long.md", "next.md"], timeout=60, what="both done")
        assert stop(second, signal.SIGTERM) == 0
    finally:
        stop(second, signal.SIGKILL)
    errors = [line for line in log.read_text().splitlines() if "state.json" in line]
    assert len(errors) == 1, errors
    assert f"{state} is corrupt (" in errors[0] and "rebuilding from tmux and the queue files" in errors[0]
    kept = sorted(state.parent.glob("state.json.corrupt-*"))
    assert len(kept) == 1 and kept[0].read_bytes() == bad and kept[0].name in errors[0]
    assert json.loads(state.read_text())["active_account"] == "primary"  # a sound file again
    recovered = [e["task"] for e in ws.events() if e["type"] == "recovered"]
    assert recovered == ["web:long"]  # found by its echo in the pane, not by the lost state
    assert sorted(ran.read_text().split()) == ["long", "next"]
    assert "Traceback" not in log.read_text()
