"""One tmux socket, one engine: a second engine on the same socket, with a state_dir of its own, refuses to
start with one clear line and touches none of the first one's sessions."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from engine.core import Engine
from engine.lock import EngineBusy, SocketLock, _still_at, socket_lock_path
from tests.integration.pipeline_support import Workspace, new_engine

pytestmark = pytest.mark.integration


def test_a_second_engine_on_the_same_tmux_socket_is_refused(ws: Workspace) -> None:
    first = new_engine(ws)
    second = new_engine(ws, state_dir=str(ws.root / "other-state"))
    assert first.config.state_dir != second.config.state_dir
    assert first.config.tmux.socket_name == second.config.tmux.socket_name

    async def main() -> None:
        stop = asyncio.Event()
        runner = asyncio.create_task(first.run(stop))
        try:
            while not any(e["type"] == "started" for e in ws.events()):
                assert not runner.done(), "the first engine stopped"
                await asyncio.sleep(0.05)
            sessions = ws.tmux.list_sessions()
            with pytest.raises(EngineBusy) as refused:
                await asyncio.wait_for(second.run(asyncio.Event()), timeout=30)
            line = str(refused.value)
            assert "\n" not in line
            assert f"another cfo (pid {os.getpid()}) is running on this tmux socket" in line
            assert ws.tmux.socket_name is not None and ws.tmux.socket_name in line
            assert ws.tmux.list_sessions() == sessions
        finally:
            stop.set()
            await runner

    asyncio.run(main())
    lock = socket_lock_path(ws.tmux.socket_name)
    assert not lock.exists()  # a lock per socket in tmux's shared folder is removed with its engine
    # Once the first has stopped, the socket is free for the second.
    asyncio.run(_start_and_stop(second))
    assert not lock.exists()


def test_a_socket_lock_removed_by_its_holder_between_open_and_lock_is_not_taken_for_held(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TMUX_TMPDIR", str(tmp_path))
    first, second = SocketLock("s"), SocketLock("s")
    first.acquire()
    stale = os.open(first.path, os.O_RDWR)  # as if `second` had opened it just before `first` let go
    first.release()
    assert not _still_at(stale, second.path)
    os.close(stale)
    second.acquire()  # locks a file that is at the path, so a third engine would see it held
    try:
        with pytest.raises(EngineBusy):
            SocketLock("s").acquire()
    finally:
        second.release()


async def _start_and_stop(engine: Engine) -> None:
    stop = asyncio.Event()
    stop.set()
    await asyncio.wait_for(engine.run(stop), timeout=30)
