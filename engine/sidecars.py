"""Sidecars beside an inbox task: `.blocked`, `.stuck` and `.delegated` marks, made, read and removed."""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
from collections.abc import Iterable
from pathlib import Path
from typing import Literal

from engine.atomic import atomic_write, create_exclusive
from engine.bounded import listed
from engine.tasks import TASK_SUFFIX, Task, TaskError, reported, task_id_of

Sidecar = Literal["blocked", "delegated", "stuck"]
SIDECARS: tuple[Sidecar, ...] = ("blocked", "delegated", "stuck")


def sidecar_path(task: Task | Path, kind: Sidecar) -> Path:
    """`inbox/<id>.md.<kind>` for a task, its inbox file or its claimed file."""
    path = task.path if isinstance(task, Task) else task
    task_id = task_id_of(path.name)
    if task_id is None:
        raise TaskError(path, "not a task file name (<id>.md)")
    return path.with_name(f"{task_id}{TASK_SUFFIX}.{kind}")


def mark_blocked(task: Task | Path, missing: Iterable[str]) -> bool:
    """Create the `.blocked` sidecar once; its mtime is when blocking began. True if created now."""
    path = sidecar_path(task, "blocked")
    with reported(path, "mark it blocked"):
        return create_exclusive(path, blocked_text(missing))


def blocked_text(reasons: Iterable[str]) -> str:
    """What the `.blocked` sidecar says for `reasons`."""
    return "depends_on not met: " + listed(reasons) + "\n"


def update_blocked(task: Task | Path, reasons: Iterable[str]) -> bool:
    """Rewrite an existing `.blocked` sidecar whose reasons changed, keeping its mtime (when blocking
    began); True if rewritten. Anything but a regular file there is left alone."""
    path = sidecar_path(task, "blocked")
    text = blocked_text(reasons).encode("utf-8")
    with reported(path, "update it"):
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError:
            return False
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode) or os.read(fd, len(text) + 1) == text:
                return False
        finally:
            os.close(fd)
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
        try:
            os.write(fd, text)
            os.utime(fd, ns=(st.st_atime_ns, st.st_mtime_ns))  # the rename keeps it: readers never see now
        finally:
            os.close(fd)
        try:
            os.replace(tmp, path)
        except OSError:
            os.unlink(tmp)
            raise
    return True


def mark_stuck(task: Task | Path, reason: str) -> bool:
    """Create the `.stuck` sidecar once (its mtime is when it got stuck); True if created now."""
    path = sidecar_path(task, "stuck")
    with reported(path, "mark it stuck"):
        return create_exclusive(path, " ".join(reason.splitlines()) + "\n")


def mark_delegated(task: Task | Path, job_id: str) -> None:
    """Write (or replace) the `.delegated` sidecar holding the delegation job id."""
    path = sidecar_path(task, "delegated")
    with reported(path, "mark it delegated"):
        atomic_write(path, job_id.strip() + "\n")


def delegated_job(task: Task | Path) -> str | None:
    """The job id in the `.delegated` sidecar, or None if there is none (links are not followed)."""
    try:
        fd = os.open(
            sidecar_path(task, "delegated"), os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
        )
    except OSError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        job = os.read(fd, 4096).decode("utf-8", "replace").strip()
    finally:
        os.close(fd)
    return job or None


def sidecar_since(task: Task | Path, kind: Sidecar) -> float | None:
    """When the sidecar was created (its mtime), or None if absent."""
    path = sidecar_path(task, kind)
    with reported(path, "read it"):
        try:
            return os.lstat(path).st_mtime
        except FileNotFoundError:
            return None


def clear_sidecar(task: Task | Path, kind: Sidecar) -> bool:
    """Remove a sidecar; True if there was one."""
    path = sidecar_path(task, kind)
    with reported(path, "remove it"):
        try:
            os.unlink(path)
        except FileNotFoundError:
            return False
    return True


def clear_all_sidecars(path: Path, task_id: str) -> None:
    """Remove every sidecar of `task_id` beside `path`: a task leaving the inbox takes its marks along."""
    for kind in SIDECARS:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path.parent / f"{task_id}{TASK_SUFFIX}.{kind}")
