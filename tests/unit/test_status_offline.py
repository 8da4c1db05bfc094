"""`cfo status` says plainly whether an engine runs; without one, it lists only the sessions tmux has."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from cfo_tui.cli import main
from engine.clock import iso
from engine.config import Config
from engine.config_reader import config_from_dict
from engine.lock import StateLock, engine_pid
from engine.state import SessionState, State, StateStore
from engine.status import render_status, status_dict

SAVED = 1_800_000_000.0


class Sessions:
    """A tmux server that has the sessions named: all `cfo status` asks of it."""

    socket_name = None

    def __init__(self, *names: str) -> None:
        self.names = list(names)

    def list_sessions(self) -> list[str]:
        return self.names


def setup(tmp_path: Path) -> Config:
    config = config_from_dict(
        {
            "accounts": [{"name": "primary", "home": str(tmp_path / "a")}],
            "state_dir": str(tmp_path / "state"),
            "pool": {"autonomous": {"prefix": "ccl-auto-", "start_index": 11, "min": 2, "max": 4}},
        }
    )
    state = State(active_account="primary")
    state.sessions["ccl-auto-11"] = SessionState("ccl-auto-11", state="working", task="web:001")
    state.sessions["ccl-auto-12"] = SessionState("ccl-auto-12", state="idle")
    StateStore(config.state_dir, now=lambda: SAVED).save(state)
    return config


def test_without_an_engine_it_says_so_and_lists_only_live_sessions(tmp_path: Path) -> None:
    config = setup(tmp_path)
    data = status_dict(config, Sessions("ccl-auto-12", "someone-elses"))
    assert data["engine"] == {"running": False, "pid": None, "state_saved_at": iso(SAVED)}
    assert [s["name"] for s in data["sessions"]] == ["ccl-auto-12"]
    text = render_status(data)
    assert text.splitlines()[0] == f"no engine is running (last state from {iso(SAVED)})"
    assert "dispatch: running" not in text and "ccl-auto-11" not in text
    assert "  ccl-auto-12" in text


def test_without_an_engine_or_tmux_sessions_it_says_none_is_left(tmp_path: Path) -> None:
    config = setup(tmp_path)
    text = render_status(status_dict(config, Sessions()))
    assert "(tmux has no cfo session)" in text and "ccl-auto" not in text


def test_a_state_never_saved_says_there_is_none(tmp_path: Path) -> None:
    config = config_from_dict(
        {"accounts": [{"name": "a", "home": str(tmp_path / "a")}], "state_dir": str(tmp_path / "state")}
    )
    assert render_status(status_dict(config, Sessions())).startswith("no engine is running (no state yet)\n")


def test_with_an_engine_running_the_state_is_shown_as_it_is(tmp_path: Path) -> None:
    config = setup(tmp_path)
    lock = StateLock(config.state_dir)  # what a running engine holds
    lock.acquire()
    try:
        assert engine_pid(config.state_dir) == os.getpid()
        data = status_dict(config, Sessions())
    finally:
        lock.release()
    assert data["engine"] == {"running": True, "pid": os.getpid(), "state_saved_at": iso(SAVED)}
    assert [s["name"] for s in data["sessions"]] == ["ccl-auto-11", "ccl-auto-12"]
    text = render_status(data)
    assert text.splitlines()[0] == "account: primary   dispatch: running"
    assert "no engine" not in text
    assert engine_pid(config.state_dir) is None  # released: a lock file nobody holds is no engine


def test_a_paused_dispatch_is_still_said_without_an_engine(tmp_path: Path) -> None:
    config = setup(tmp_path)
    store = StateStore(config.state_dir, now=lambda: SAVED)
    state = store.load()
    state.dispatch = "paused"
    store.save(state)
    assert render_status(status_dict(config, Sessions())).splitlines()[1] == (
        "account: primary   dispatch was paused"
    )


def test_cfo_status_json_reports_the_engine(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import json

    config = setup(tmp_path)
    path = tmp_path / "config.yaml"
    path.write_text(
        f"accounts: [{{name: primary, home: {tmp_path / 'a'}}}]\nstate_dir: {config.state_dir}\n"
        "tmux: {socket_name: cfo-test-no-server-here}\n",
        encoding="utf-8",
    )
    assert main(["status", "--json", "--config", str(path)]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["engine"]["running"] is False and data["sessions"] == []
    assert data["dispatch"] == "running"  # the contract's key is kept: the state as saved
