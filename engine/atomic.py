"""Crash-safe file operations: atomic replace, create-never-overwrite, rename-never-overwrite."""

from __future__ import annotations

import contextlib
import ctypes
import errno
import logging
import os
import secrets
from pathlib import Path

log = logging.getLogger(__name__)

_AT_FDCWD = -100
_RENAME_NOREPLACE = 1
_libc = ctypes.CDLL(None, use_errno=True)
_renameat2 = getattr(_libc, "renameat2", None)
if _renameat2 is not None:
    _renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    _renameat2.restype = ctypes.c_int

_WRITE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


def fsync_dir(directory: Path) -> None:
    """Make a rename or unlink inside `directory` durable."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _temp_path(target: Path) -> Path:
    """A hidden, unique name next to `target`: scanners skip it and a crash leaves nothing that looks real."""
    return target.with_name(f".{target.name}.{secrets.token_hex(4)}.tmp")


def _write_temp(target: Path, data: bytes, mode: int) -> Path:
    tmp = _temp_path(target)
    # O_EXCL | O_NOFOLLOW: a planted file or link at the temp name is never written through.
    fd = os.open(tmp, _WRITE_FLAGS, mode)
    try:
        _write_all(fd, data)
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        _unlink_quietly(tmp)
        raise
    os.close(fd)
    return tmp


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _unlink_quietly(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


def atomic_write(target: Path, data: bytes | str, mode: int = 0o644) -> None:
    """Replace `target` with `data` so that readers see the old or the new content, never a mix.

    The rename replaces the directory entry itself, so a symlink planted at `target` is replaced,
    not written through.
    """
    payload = data.encode("utf-8") if isinstance(data, str) else data
    tmp = _write_temp(target, payload, mode)
    try:
        os.replace(tmp, target)
    except BaseException:
        _unlink_quietly(tmp)
        raise
    fsync_dir(target.parent)


def write_new(target: Path, data: bytes | str, mode: int = 0o644) -> None:
    """Like `atomic_write`, but raise FileExistsError instead of replacing an existing `target`."""
    payload = data.encode("utf-8") if isinstance(data, str) else data
    tmp = _write_temp(target, payload, mode)
    try:
        rename_noreplace(tmp, target)
    except BaseException:
        _unlink_quietly(tmp)
        raise
    fsync_dir(target.parent)


def create_exclusive(target: Path, data: bytes | str, mode: int = 0o644) -> bool:
    """Create `target` with `data` unless something (a link included) is already there; True if created."""
    payload = data.encode("utf-8") if isinstance(data, str) else data
    try:
        fd = os.open(target, _WRITE_FLAGS, mode)
    except FileExistsError:
        return False
    try:
        _write_all(fd, payload)
        os.fsync(fd)
    finally:
        os.close(fd)
    fsync_dir(target.parent)
    return True


def rename_noreplace(src: Path, dst: Path) -> None:
    """Rename `src` to `dst` atomically; FileExistsError if `dst` exists. Links are moved, not followed.

    Uses renameat2(RENAME_NOREPLACE); where the kernel or filesystem lacks it, falls back to a
    check-then-rename whose window only matters against another writer choosing the same name.
    """
    if _renameat2 is not None:
        if _renameat2(_AT_FDCWD, os.fsencode(src), _AT_FDCWD, os.fsencode(dst), _RENAME_NOREPLACE) == 0:
            return
        err = ctypes.get_errno()
        if err not in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
            raise OSError(err, os.strerror(err), str(src), None, str(dst))
        log.debug("renameat2 unsupported for %s (%s); using check-then-rename", dst, os.strerror(err))
    if os.path.lexists(dst):
        raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), str(src), None, str(dst))
    os.rename(src, dst)
