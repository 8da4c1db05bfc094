"""One engine per state_dir and per tmux socket: advisory locks held while an engine runs, naming the
holder's pid, and the note that tells `cfo status` the running engine cannot write its state."""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path

from engine.tmux import socket_folder

LOCK_NAME = "cfo.lock"
DEGRADED = "degraded: "  # the lock file's second line while the engine cannot write its state
_NOTE_ROOM = 512  # bytes the lock file keeps allocated, so a note fits even on a full disk


class EngineError(RuntimeError):
    """The engine cannot start or cannot go on safely; the message is the one line to print."""


class EngineBusy(EngineError):
    """Another engine runs on the same state_dir or tmux socket (the console and the service on one
    config, say)."""


def socket_lock_path(socket_name: str | None) -> Path:
    """The lock of a tmux socket: beside the socket, in tmux's private per-user folder."""
    return socket_folder() / f"{socket_name or 'default'}.cfo-lock"


class _FileLock:
    # A lock whose file is removed on release (one per tmux socket in a shared folder would otherwise pile
    # up): it is only held once the file locked is still the one at the path.
    REMOVED_ON_RELEASE = False

    def __init__(self, path: Path, what: str) -> None:
        self.path = path
        self.what = what
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock or raise EngineBusy; a lock left by a dead process is free (the kernel drops it).
        Raises EngineError if the lock file cannot be created."""
        while not self._try_acquire():
            pass  # the holder removed the file between our open and our lock: lock the new one
        self.note(None)

    def _try_acquire(self) -> bool:
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            raise EngineError(f"{self.path}: cannot be created: {exc.strerror or exc}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read(fd).partition("\n")[0].strip() or "?"
            os.close(fd)
            raise EngineBusy(
                f"{self.path}: another cfo (pid {holder}) is running on this {self.what}; "
                "stop it first (the service: systemctl --user stop cfo.service)"
            ) from None
        if self.REMOVED_ON_RELEASE and not _still_at(fd, self.path):
            os.close(fd)
            return False
        self._fd = fd
        return True

    def note(self, degraded: str | None) -> None:
        """Rewrite the file: the holder's pid, then `degraded: <reason>` while there is one. Best effort:
        the note is for people, the lock is the flock."""
        if self._fd is None:
            return
        text = f"{os.getpid()}\n" + (f"{DEGRADED}{degraded}\n" if degraded else "")
        data = text.encode("utf-8", "replace")[: _NOTE_ROOM - 1]
        with contextlib.suppress(OSError):
            # Padding with blanks keeps the blocks allocated: overwriting them needs no free space.
            os.pwrite(self._fd, data.ljust(_NOTE_ROOM, b" "), 0)

    def release(self) -> None:
        if self._fd is not None:
            if self.REMOVED_ON_RELEASE:
                with contextlib.suppress(OSError):
                    self.path.unlink()  # while still held: nobody can have locked this file meanwhile
            with contextlib.suppress(OSError):
                fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


class StateLock(_FileLock):
    def __init__(self, state_dir: Path) -> None:
        super().__init__(state_dir / LOCK_NAME, "state_dir")


class SocketLock(_FileLock):
    """Two engines driving one tmux server would kill each other's agents, whatever their state_dirs."""

    REMOVED_ON_RELEASE = True

    def __init__(self, socket_name: str | None) -> None:
        super().__init__(socket_lock_path(socket_name), f"tmux socket ({socket_name or 'default'})")

    def acquire(self) -> None:
        try:
            self.path.parent.mkdir(mode=0o700, exist_ok=True)  # tmux makes it so too, when it starts first
        except OSError as exc:
            raise EngineError(f"{self.path.parent}: cannot be created: {exc.strerror or exc}") from None
        super().acquire()


def degraded_note(state_dir: Path) -> str | None:
    """What the engine running on `state_dir` says it cannot do (`cannot write state — …`); None if
    no engine runs there or it writes fine."""
    lines = (_held(state_dir) or "").splitlines()
    notes = [line[len(DEGRADED) :].strip() for line in lines if line.startswith(DEGRADED)]
    return notes[0] if notes else None


def engine_pid(state_dir: Path) -> int | None:
    """The pid of the engine running on `state_dir` (0 if it holds the lock without saying), None if none
    runs there: a lock nobody holds is an engine that is gone."""
    held = _held(state_dir)
    if held is None:
        return None
    first = held.partition("\n")[0].strip()
    return int(first) if first.isdigit() else 0


def _held(state_dir: Path) -> str | None:
    """The lock file's text while an engine holds it, else None."""
    try:
        fd = os.open(state_dir / LOCK_NAME, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return _read(fd)
        return None  # nobody holds it: a note left there is from an engine that is gone
    finally:
        os.close(fd)


def _still_at(fd: int, path: Path) -> bool:
    """The file open as `fd` is the one `path` names now."""
    try:
        at = os.stat(path, follow_symlinks=False)
    except OSError:
        return False
    mine = os.fstat(fd)
    return (at.st_dev, at.st_ino) == (mine.st_dev, mine.st_ino)


def _read(fd: int) -> str:
    return os.pread(fd, _NOTE_ROOM, 0).decode("utf-8", "replace")
