"""`cfo status` beside a real engine and after it stopped: which it is, and only the sessions tmux has."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from engine.status import render_status, status_dict
from engine.tmux import LibtmuxClient
from tests.integration.pipeline_support import Workspace, make_workspace, new_engine, run_engine

pytestmark = pytest.mark.integration


@pytest.fixture
def ws(tmp_path: Path, tmux: LibtmuxClient) -> Workspace:
    return make_workspace(tmp_path / "ws", tmux, agents=2)


def test_status_tells_a_running_engine_from_a_stopped_one(ws: Workspace) -> None:
    config = ws.config()
    pool = set(config.pool_names)
    seen: dict[str, Any] = {}

    def pool_up() -> bool:
        data = status_dict(config)
        if {s["name"] for s in data["sessions"]} >= pool:
            seen.update(data)
            return True
        return False

    run_engine(new_engine(ws), pool_up, timeout=30)
    assert seen["engine"]["running"] is True and isinstance(seen["engine"]["pid"], int)
    assert render_status(seen).splitlines()[0].endswith("dispatch: running")

    live = set(ws.tmux.list_sessions()) & pool
    assert live, "the pool's sessions outlive the engine"
    stopped = status_dict(config)
    assert stopped["engine"]["running"] is False
    assert {s["name"] for s in stopped["sessions"]} == live
    text = render_status(stopped)
    assert text.startswith(f"no engine is running (last state from {stopped['engine']['state_saved_at']})\n")
    assert "dispatch: running" not in text

    gone = sorted(live)[0]
    ws.tmux.kill_session(gone)
    after = status_dict(config)
    assert {s["name"] for s in after["sessions"]} == live - {gone}
    assert gone not in render_status(after)
