"""Queue moves of a task file: claim (locally or for delegation), requeue, complete, fail, reconcile."""

from __future__ import annotations

import contextlib
import logging
import os
import stat
import threading
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Literal

from engine.atomic import atomic_write, create_exclusive, fsync_dir, rename_noreplace, write_new
from engine.footers import FooterValue, append_footer, footer_yaml, read_footer
from engine.sidecars import clear_all_sidecars, clear_sidecar, sidecar_path
from engine.tasks import (
    CLAIM_SUFFIX,
    DEFAULT_MAX_BYTES,
    TASK_SUFFIX,
    VANISHED,
    Fingerprint,
    Task,
    TaskError,
    is_within,
    reported,
    task_id_of,
)

log = logging.getLogger(__name__)

_MAX_NAME_TRIES = 1000


# A local claim and a delegation claim of the same task must not interleave (both are check-then-act).
_claims = threading.Lock()


def claim(task: Task) -> Path:
    """Rename `inbox/<id>.md` to `inbox/<id>.md.dispatched` and drop its `.blocked` sidecar.

    Raises TaskError if the file vanished (someone else claimed it), if a claim of the same name
    exists, or if the file changed since `task` was read (it is put back and read again once settled).
    """
    src = task.path
    dst = src.with_name(task.filename + ".dispatched")
    with _claims, reported(src, "claim it"):
        if os.path.lexists(sidecar_path(task, "delegated")):
            raise TaskError(src, "delegated to a job service; not claimed")
        try:
            rename_noreplace(src, dst)
        except FileNotFoundError:
            raise TaskError(src, VANISHED) from None
        except FileExistsError:
            raise TaskError(src, f"{dst.name} exists: a task with this id is already running") from None
        fsync_dir(src.parent)
        if _fingerprint(dst) != task.fingerprint:
            requeue(dst)
            raise TaskError(src, "changed since it was read; it will be read again")
        clear_sidecar(task, "blocked")
    return dst


def claim_delegation(task: Task, placeholder: str) -> bool:
    """Create the `.delegated` sidecar with `placeholder` before a job is submitted; True if created.

    False if the task is already delegated, or if its file is gone or changed since `task` was read
    (then no sidecar is left): whoever created the sidecar first owns the task.
    """
    path = sidecar_path(task, "delegated")
    with _claims, reported(path, "mark it delegated"):
        if not create_exclusive(path, placeholder.strip() + "\n"):
            return False
        if _fingerprint(task.path) != task.fingerprint:
            _remove(path)
            return False
    return True


def requeue(claimed: Path) -> Path:
    """Put a claimed task back as `inbox/<id>.md` (the undo of `claim`); returns where it went.

    If a new `<id>.md` arrived meanwhile, the task comes back as `<id>-2.md` (and so on) rather
    than overwrite it.
    """
    task_id = _claimed_id(claimed)
    with reported(claimed, "requeue it"):
        try:
            target = _move_unique(claimed, claimed.parent, task_id)
        except FileNotFoundError:
            raise TaskError(claimed, VANISHED) from None
    if target.name != task_id + TASK_SUFFIX:
        log.warning("%s: %s%s exists; requeued as %s", claimed, task_id, TASK_SUFFIX, target.name)
    return target


def complete(claimed: Path, footer: Mapping[str, FooterValue], section: str = "") -> Path:
    """Finish a claimed task: write `done/<id>.md` (content, `section`, footer), then remove the claim.

    The done file appears whole (temp file, fsync, rename). A crash before the claim is removed
    leaves both; `reconcile_claim` recognises that pair through the footer's `claim` field.
    `section` is text added after the task (a delegated job's result).
    """
    with reported(claimed, "complete it"):
        try:
            return _finish(claimed, "done", "completed", dict(footer), section)
        except _NotRegular:
            raise TaskError(claimed, "not a regular file; fail() moves it as it is") from None


def fail(
    path: Path,
    reason: str,
    footer: Mapping[str, FooterValue] | None = None,
    max_copy: int = DEFAULT_MAX_BYTES,
) -> Path:
    """Move a pending or claimed task to `failed/` with `reason`; returns the new path.

    A regular file up to `max_copy` bytes is copied with the reason in its footer and then removed.
    Anything else (a symlink, a FIFO, an oversized file) is renamed as it is, never opened, and the
    reason goes to a `failed/<name>.reason` sidecar.
    """
    fields: dict[str, FooterValue] = {"reason": reason, **(footer or {})}
    with reported(path, "move it to failed/"):
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            raise TaskError(path, VANISHED) from None
        if stat.S_ISREG(st.st_mode) and st.st_size <= max_copy:
            with contextlib.suppress(_NotRegular):
                return _finish(path, "failed", "failed", fields)
        task_id = task_id_of(path.name) or path.name
        failed = _checked_queue_dir(path, "failed")
        try:
            target = _move_unique(path, failed, task_id)
        except FileNotFoundError:
            raise TaskError(path, VANISHED) from None
        fsync_dir(path.parent)
        sidecar = {"status": "failed", **fields, "original": path.name}
        atomic_write(target.with_name(target.name + ".reason"), footer_yaml(sidecar))
        clear_all_sidecars(path, task_id)
    return target


def claim_token(claimed: Path) -> str | None:
    """The token the footer of `claimed`'s done/ or failed/ file will carry; None if it is gone."""
    try:
        return _claim_token(os.lstat(claimed))
    except OSError:
        return None


def landed_with(claimed: Path, token: str) -> Path | None:
    """The done/ or failed/ file that `claimed` became, found by its footer's claim token."""
    task_id = _claimed_id(claimed)
    for kind in ("done", "failed"):
        directory = claimed.parent.parent / kind
        try:
            names = sorted(os.listdir(directory))
        except OSError:
            continue
        for name in names:
            if name != task_id + TASK_SUFFIX and not (
                name.startswith(task_id + "-") and name.endswith(TASK_SUFFIX)
            ):
                continue
            found = read_footer(directory / name)
            if found is not None and str(found.get("claim")) == token:
                return directory / name
    return None


def reconcile_claim(claimed: Path) -> Path | None:
    """If `claimed` was already finished (a crash hit between writing done/failed and removing the
    claim), remove the claim and return the finished file; otherwise None and nothing changes."""
    task_id = _claimed_id(claimed)
    with reported(claimed, "reconcile the claim"):
        try:
            token = _claim_token(os.lstat(claimed))
        except FileNotFoundError:
            return None
        candidate = landed_with(claimed, token)
        if candidate is not None:
            _remove(claimed)
            clear_all_sidecars(claimed, task_id)
            log.info("%s: already finished as %s; leftover claim removed", claimed, candidate)
            return candidate
    return None


class _NotRegular(Exception):
    pass


def _finish(
    path: Path,
    kind: Literal["done", "failed"],
    status: str,
    footer: dict[str, FooterValue],
    section: str = "",
) -> Path:
    task_id = task_id_of(path.name) or path.name
    directory = _checked_queue_dir(path, kind)
    data, st = _read_regular(path)
    fields: dict[str, FooterValue] = {"status": status}
    fields.update(footer)
    fields["status"] = status
    fields["claim"] = _claim_token(st)
    if section:
        data = data + (b"" if not data or data.endswith(b"\n") else b"\n") + b"\n" + section.encode()
    content = append_footer(data, fields)
    for candidate in _unique_names(directory, task_id):
        try:
            # Keep the task's permissions: a private task file must not become world-readable in done/.
            write_new(candidate, content, mode=stat.S_IMODE(st.st_mode))
        except FileExistsError:
            continue
        _remove(path)
        clear_all_sidecars(path, task_id)
        return candidate
    raise TaskError(path, f"no free name for {task_id} in {directory}")


def _read_regular(path: Path) -> tuple[bytes, os.stat_result]:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise TaskError(path, VANISHED) from None
    except OSError:
        raise _NotRegular from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise _NotRegular
        chunks: list[bytes] = []
        while chunk := os.read(fd, 1 << 20):
            chunks.append(chunk)
    finally:
        os.close(fd)
    return b"".join(chunks), st


def _checked_queue_dir(path: Path, kind: Literal["done", "failed"]) -> Path:
    """`<queue>/done` or `<queue>/failed` beside the inbox holding `path`, created if missing and
    refused if it resolves outside the project."""
    inbox = path.parent
    project_dir = inbox.parent.parent
    directory = inbox.parent / kind
    directory.mkdir(exist_ok=True)
    if not is_within(os.path.realpath(directory), os.path.realpath(project_dir)):
        raise TaskError(path, f"{directory} resolves outside the project")
    return directory


def _unique_names(directory: Path, task_id: str) -> Iterable[Path]:
    yield directory / (task_id + TASK_SUFFIX)
    for n in range(2, _MAX_NAME_TRIES):
        yield directory / f"{task_id}-{n}{TASK_SUFFIX}"


def _move_unique(src: Path, directory: Path, task_id: str) -> Path:
    for candidate in _unique_names(directory, task_id):
        try:
            rename_noreplace(src, candidate)
        except FileExistsError:
            continue
        fsync_dir(directory)
        return candidate
    raise TaskError(src, f"no free name for {task_id} in {directory}")


def _remove(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
    fsync_dir(path.parent)


def _claimed_id(claimed: Path) -> str:
    if not claimed.name.endswith(CLAIM_SUFFIX):
        raise TaskError(claimed, f"not a claimed task (<id>{CLAIM_SUFFIX})")
    return claimed.name[: -len(CLAIM_SUFFIX)]


def _fingerprint(path: Path) -> Fingerprint | None:
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return None
    return (st.st_ino, st.st_mtime_ns, st.st_size)


def _claim_token(st: os.stat_result) -> str:
    # Inode and mtime survive the claim/requeue renames and tell this claim from earlier runs of the id.
    return f"{st.st_ino}-{st.st_mtime_ns}"


# --- sidecars --------------------------------------------------------------------------------------
