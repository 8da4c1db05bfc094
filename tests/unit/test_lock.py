"""One engine per state_dir: a second one is refused with the holder's pid; a dead holder frees the lock."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from engine.lock import EngineBusy, StateLock


def test_a_second_lock_on_the_same_state_dir_is_refused_naming_the_holder(tmp_path: Path) -> None:
    first = StateLock(tmp_path)
    first.acquire()
    with pytest.raises(EngineBusy, match=rf"another cfo \(pid {os.getpid()}\) is running"):
        StateLock(tmp_path).acquire()
    first.release()
    again = StateLock(tmp_path)
    again.acquire()
    again.release()


def test_the_lock_of_a_process_that_died_is_free(tmp_path: Path) -> None:
    code = f"import pathlib, engine.lock as m; m.StateLock(pathlib.Path({str(tmp_path)!r})).acquire()"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).resolve().parents[2])
    lock = StateLock(tmp_path)
    lock.acquire()  # the child exited holding it: the kernel dropped the lock
    assert (tmp_path / "cfo.lock").read_text().strip() == str(os.getpid())
    lock.release()
