"""Lifecycle on real tmux: the pool keeps `min` sessions alive; sessions it does not own stay untouched."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest

from engine.tmux import LibtmuxClient
from tests.integration.pipeline_support import Workspace, make_workspace, new_engine, run_engine

pytestmark = pytest.mark.integration


class CountingTmux(LibtmuxClient):
    """The real client, counting the sessions it creates and the tmux listings it makes."""

    def __init__(self, socket_name: str | None) -> None:
        super().__init__(socket_name)
        self.created: list[str] = []
        self.listings = 0

    def new_session(
        self,
        name: str,
        cwd: Path,
        command: Sequence[str] | None = None,
        env: Mapping[str, str] | None = None,
        width: int = 200,
        height: int = 50,
    ) -> None:
        self.created.append(name)
        super().new_session(name, cwd, command, env, width, height)

    def list_sessions(self) -> list[str]:
        self.listings += 1
        return super().list_sessions()


@pytest.fixture
def ws(tmp_path: Path, tmux: LibtmuxClient) -> Workspace:
    workspace = make_workspace(tmp_path / "ws", CountingTmux(tmux.socket_name), agents=2)
    workspace.data["watcher"]["interval"] = "100ms"
    return workspace


def test_a_killed_idle_pool_session_comes_back_and_foreign_sessions_are_never_touched(
    ws: Workspace, tmp_path: Path
) -> None:
    tmux = ws.tmux
    assert isinstance(tmux, CountingTmux)
    # A session of the user's, one with the pool's prefix below its range, and one just above it.
    foreign = ("notes", "ccl-auto-10", "ccl-auto-13")
    for name in foreign:
        tmux.new_session(name, tmp_path, command=["/bin/sh"])
        tmux.type_line(name, f"echo mine-{name}")
    engine = new_engine(ws)
    before: dict[str, str] = {}
    seen: dict[str, int] = {}

    def kill_once_started_then_count_rounds() -> None:
        if not seen:
            if any(e["type"] == "started" for e in ws.events()):
                before.update({name: tmux.capture(name) for name in foreign})
                seen["created"] = len(tmux.created)
                tmux.kill_session("ccl-auto-12")
        elif "back_at" not in seen and len(tmux.created) > seen["created"]:
            seen["back_at"] = tmux.listings

    run_engine(
        engine,
        lambda: "back_at" in seen and tmux.listings > seen["back_at"] + 10,
        timeout=30,
        during=kill_once_started_then_count_rounds,
    )
    created = seen["created"]
    assert tmux.created[created:] == ["ccl-auto-12"]  # only the vanished one, once, over many rounds
    assert "ccl-auto-12" in tmux.list_sessions()
    for name in foreign:
        assert name in tmux.list_sessions(), f"{name} was killed"
        assert tmux.capture(name) == before[name], f"something was typed into {name}"
