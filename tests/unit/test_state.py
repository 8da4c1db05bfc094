"""Engine state: round trip, atomic save, and recovery from a corrupt or truncated state file."""

from __future__ import annotations

import json
import logging
import os
import stat
from pathlib import Path

import pytest

from engine import atomic
from engine.state import (
    MAX_SWAPS,
    STATE_VERSION,
    AccountState,
    Failure,
    SessionState,
    State,
    StateError,
    StateStore,
    SwapRecord,
    state_from_dict,
    state_to_dict,
)

NOW = 1_800_000_000.0


def full_state() -> State:
    state = State(
        active_account="secondary",
        dispatch="paused",
        paused_until=NOW + 300,
        counters={"dispatched": 12, "completed": 10},
        requeues={"web:a": 1},
    )
    state.sessions["ccl-auto-11"] = SessionState(
        name="ccl-auto-11",
        state="working",
        task="web:001-login",
        task_path="/src/web/.agent-queue/inbox/001-login.md.dispatched",
        assigned_at=NOW - 60,
        last_fail=Failure(at=NOW - 3600, reason="agent never reached its prompt"),
        account="secondary",
        model="sonnet",
        launch_failed_at=NOW - 3600,
    )
    state.sessions["ccl-1-conformvault"] = SessionState(name="ccl-1-conformvault", kind="dedicated")
    state.accounts["primary"] = AccountState(name="primary", usable_again_at=NOW + 7200)
    state.accounts["secondary"] = AccountState(name="secondary")
    state.add_swap(
        SwapRecord(
            at=NOW - 10,
            from_account="primary",
            to_account="secondary",
            trigger_session="ccl-auto-11",
            pattern="usage limit",
            snippet="⎿  Claude usage limit reached · resets 3am",
            sessions_resumed=["ccl-auto-11", "ccl-1-conformvault"],
            duration=4.2,
            sessions_not_resumed={"ccl-2-notes": "none matches its screen and /status showed no session id"},
        )
    )
    return state


def stray_files(directory: Path) -> list[str]:
    return sorted(n for n in os.listdir(directory) if n != "state.json")


def test_state_round_trips_through_json() -> None:
    state = full_state()
    data = json.loads(json.dumps(state_to_dict(state)))
    assert data["version"] == STATE_VERSION
    assert state_from_dict(data) == state


def test_save_then_load_gives_the_same_state_and_leaves_no_temp_files(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "state", now=lambda: NOW)
    state = full_state()
    store.save(state)
    assert state.saved_at == NOW
    loaded = store.load()
    assert loaded == state and not loaded.recovered
    assert stray_files(tmp_path / "state") == []
    assert stat.S_IMODE(os.stat(store.path).st_mode) == 0o600


def test_a_missing_file_gives_a_fresh_state(tmp_path: Path) -> None:
    state = StateStore(tmp_path).load()
    assert state == State() and not state.recovered
    assert (state.dispatch, state.active_account, state.sessions) == ("running", None, {})


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        pytest.param(b"", "not valid JSON", id="empty"),
        pytest.param(b'{"version": 1, "sessions": [{"name": "a"', "not valid JSON", id="truncated"),
        pytest.param(b"\xff\xfe{}", "not valid JSON", id="not-utf8"),
        pytest.param(b"[" * 100_000, "not valid JSON", id="deeply-nested"),
        pytest.param(b"[]", "state: expected an object, got a list", id="list"),
        pytest.param(b"{}", "state.version: expected an integer, got null", id="no-version"),
        pytest.param(b'{"version": 99}', "state.version: 99 is not supported", id="newer-version"),
        pytest.param(
            b'{"version": 1, "sessions": [{"name": "a", "assigned_at": "soon"}]}',
            "state.sessions[0].assigned_at: expected a number, got text",
            id="wrong-type",
        ),
        pytest.param(
            b'{"version": 1, "sessions": [{"name": "a"}, {"name": "a"}]}',
            "state.sessions[1].name: duplicate session 'a'",
            id="duplicate",
        ),
        pytest.param(
            b'{"version": 1, "dispatch": "stopped"}', 'state.dispatch: expected "running"', id="bad-enum"
        ),
        pytest.param(b'{"version": 1, "swaps": [{"at": 1}]}', "state.swaps[0].to_account", id="missing-key"),
        pytest.param(b'{"version": 1, "counters": {"a": true}}', "state.counters.a", id="bool-counter"),
    ],
)
def test_a_corrupt_file_is_kept_aside_reported_and_replaced_by_a_fresh_state(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, content: bytes, problem: str
) -> None:
    store = StateStore(tmp_path, now=lambda: NOW)
    store.path.write_bytes(content)
    with caplog.at_level(logging.ERROR, logger="engine.state"):
        state = store.load()
    assert state.recovered and state == State()
    assert stray_files(tmp_path) == ["state.json.corrupt-20270115T080000Z"]
    assert (tmp_path / "state.json.corrupt-20270115T080000Z").read_bytes() == content
    assert len(caplog.records) == 1
    assert str(store.path) in caplog.text and problem in caplog.text
    saved = full_state()
    store.save(saved)
    assert store.load() == saved


def test_a_truncated_save_is_recovered_and_earlier_corrupt_copies_are_kept(tmp_path: Path) -> None:
    store = StateStore(tmp_path, now=lambda: NOW)
    store.save(full_state())
    raw = store.path.read_bytes()
    for cut in (len(raw) // 2, len(raw) // 3):
        store.path.write_bytes(raw[:cut])
        assert store.load().recovered
    assert stray_files(tmp_path) == [
        "state.json.corrupt-20270115T080000Z",
        "state.json.corrupt-20270115T080000Z-2",
    ]


def test_a_failed_save_keeps_the_previous_file_and_leaves_no_temp_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = StateStore(tmp_path)
    store.save(full_state())
    before = store.path.read_bytes()

    def broken(src: object, dst: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", broken)
    with pytest.raises(OSError, match="No space left"):
        store.save(State())
    assert store.path.read_bytes() == before
    assert stray_files(tmp_path) == []


def test_swap_history_keeps_the_last_records() -> None:
    state = State()
    for i in range(MAX_SWAPS + 5):
        state.add_swap(SwapRecord(at=float(i), from_account="a", to_account="b"))
    assert len(state.swaps) == MAX_SWAPS and state.swaps[0].at == 5.0
    data = state_to_dict(state)
    swaps = data["swaps"]
    assert isinstance(swaps, list)
    assert len(state_from_dict({**data, "swaps": swaps * 2}).swaps) == MAX_SWAPS


def test_counters_count() -> None:
    state = State()
    state.count("completed")
    state.count("completed", 2)
    assert state.counters == {"completed": 3}


def test_state_errors_name_the_key_path() -> None:
    with pytest.raises(StateError, match=r"^state\.accounts\[0\]\.name: expected text, got a number$"):
        state_from_dict({"version": 1, "accounts": [{"name": 3}]})


# --- the atomic helpers the store relies on ---------------------------------------------------------


def test_atomic_write_replaces_a_planted_link_instead_of_writing_through_it(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("keep")
    target = tmp_path / "state.json"
    target.symlink_to(victim)
    atomic.atomic_write(target, "new")
    assert not target.is_symlink() and target.read_text() == "new"
    assert victim.read_text() == "keep"
    assert sorted(os.listdir(tmp_path)) == ["state.json", "victim"]


def test_write_new_and_rename_noreplace_never_overwrite(tmp_path: Path) -> None:
    existing = tmp_path / "a"
    existing.write_text("old")
    with pytest.raises(FileExistsError):
        atomic.write_new(existing, b"new")
    src = tmp_path / "b"
    src.write_text("b")
    with pytest.raises(FileExistsError):
        atomic.rename_noreplace(src, existing)
    (tmp_path / "link").symlink_to(tmp_path / "nowhere")
    with pytest.raises(FileExistsError):
        atomic.rename_noreplace(src, tmp_path / "link")
    atomic.rename_noreplace(src, tmp_path / "c")
    assert existing.read_text() == "old" and (tmp_path / "c").read_text() == "b"
    assert sorted(os.listdir(tmp_path)) == ["a", "c", "link"]


def test_rename_noreplace_falls_back_where_renameat2_is_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(atomic, "_renameat2", None)
    (tmp_path / "a").write_text("a")
    (tmp_path / "b").write_text("b")
    with pytest.raises(FileExistsError):
        atomic.rename_noreplace(tmp_path / "a", tmp_path / "b")
    atomic.rename_noreplace(tmp_path / "a", tmp_path / "c")
    assert (tmp_path / "c").read_text() == "a"


def test_create_exclusive_creates_once(tmp_path: Path) -> None:
    target = tmp_path / "x"
    assert atomic.create_exclusive(target, "first")
    assert not atomic.create_exclusive(target, "second")
    assert target.read_text() == "first"
