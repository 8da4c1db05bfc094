"""Storage faults are survived, not hidden: with the state_dir's disk full (ENOSPC injected at every
write into it) no claim lives only in memory, the engine says it is degraded and goes on by itself once
space returns; a claim it can neither save nor undo stops it with one line, and a restart recovers it."""

from __future__ import annotations

import errno
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from engine import moves
from engine.core import Engine
from engine.lock import EngineError
from engine.status import render_status, status_dict
from tests.integration.pipeline_support import Workspace, new_engine, run_engine

pytestmark = pytest.mark.integration


class FullDisk:
    """`os.write` fails with ENOSPC on every file under `root` while `full` is set."""

    def __init__(self, root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.root = str(root.resolve())
        self.full = False
        real = os.write

        def write(fd: int, data: bytes | memoryview) -> int:
            if self.full and self._under_root(fd):
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            return real(fd, data)

        monkeypatch.setattr(os, "write", write)

    def _under_root(self, fd: int) -> bool:
        try:
            return os.readlink(f"/proc/self/fd/{fd}").startswith(self.root + os.sep)
        except OSError:
            return False


def started(ws: Workspace) -> bool:
    return any(e["type"] == "started" for e in ws.events())


def claims(ws: Workspace) -> list[Path]:
    return sorted((ws.project("web") / ".agent-queue" / "inbox").glob("*.dispatched"))


def in_queue_or_running(ws: Workspace, engine: Engine) -> None:
    """Every task is pending in the inbox or claimed by a live run: none is claimed by nobody."""
    held = {run.claimed for run in engine.running.values()}
    orphans = [path.name for path in claims(ws) if path not in held]
    assert not orphans, f"claimed by no run: {orphans}"


def phases(engine: Engine, steps: list[tuple[Callable[[], bool], Callable[[], None]]]) -> None:
    """Run the engine through `steps`: each waits for its condition, then acts."""
    pending = list(steps)

    def until() -> bool:
        while pending and pending[0][0]():
            pending.pop(0)[1]()
        return not pending

    run_engine(engine, until, timeout=60)


def test_a_full_state_disk_degrades_the_engine_which_keeps_every_task_and_resumes_by_itself(
    ws: Workspace, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    disk = FullDisk(ws.root / "state", monkeypatch)
    engine = new_engine(ws)
    config = engine.config
    seen: dict[str, object] = {}
    full_since = [0.0]

    def fill() -> None:
        disk.full = True
        full_since[0] = time.monotonic()
        for n in (1, 2):
            ws.add_task("web", f"t{n}", f"Task {n}\nsim: work 200ms")

    def checked_while_full() -> bool:
        in_queue_or_running(ws, engine)
        return time.monotonic() - full_since[0] > 3.0

    def free() -> None:
        seen["snapshot"] = engine.snapshot().degraded
        seen["status"] = status_dict(config)
        seen["inbox"] = ws.inbox("web")
        disk.full = False

    def both_done() -> bool:
        in_queue_or_running(ws, engine)
        return ws.done("web") == ["t1.md", "t2.md"] and not engine.running

    with caplog.at_level(logging.INFO):
        phases(
            engine,
            [
                (lambda: started(ws), fill),
                (checked_while_full, free),
                (both_done, lambda: None),
            ],
        )
    reason = "cannot write state — No space left on device"
    assert seen["snapshot"] == reason
    status = seen["status"]
    assert isinstance(status, dict) and status["degraded"] == reason
    assert render_status(status).splitlines()[0] == f"degraded: {reason}"
    assert seen["inbox"] == ["t1.md", "t2.md"], "no task was held back in a claim while degraded"
    said = [r.getMessage() for r in caplog.records if r.getMessage().startswith("degraded:")]
    assert len(said) == 1, said
    assert engine.snapshot().degraded is None
    assert status_dict(config)["degraded"] is None


def test_a_claim_that_can_be_neither_saved_nor_undone_stops_the_engine_and_a_restart_recovers_it(
    ws: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    disk = FullDisk(ws.root / "state", monkeypatch)
    real_move = moves._move_unique
    stuck = [False]

    def move(src: Path, directory: Path, task_id: str) -> Path:
        if stuck[0]:
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(src))
        return real_move(src, directory, task_id)

    monkeypatch.setattr(moves, "_move_unique", move)
    engine = new_engine(ws)

    def fill() -> None:
        disk.full, stuck[0] = True, True
        ws.add_task("web", "t1", "Task 1\nsim: work 200ms")

    with pytest.raises(EngineError) as stopped:
        phases(engine, [(lambda: started(ws), fill), (lambda: False, lambda: None)])
    line = str(stopped.value)
    assert "\n" not in line and "cannot requeue it: Permission denied" in line and "restart cfo" in line
    assert [p.name for p in claims(ws)] == ["t1.md.dispatched"]

    disk.full, stuck[0] = False, False
    again = new_engine(ws)
    run_engine(again, lambda: ws.done("web") == ["t1.md"] and not again.running, timeout=60)
    assert not claims(ws)
