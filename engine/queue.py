"""The queue on disk: project discovery, inbox scanning (settle rule, header cache) and the queue moves."""

from __future__ import annotations

import contextlib
import logging
import os
import stat
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from engine.atomic import atomic_write, create_exclusive, fsync_dir, rename_noreplace, write_new
from engine.footers import FooterValue, append_footer, footer_yaml, read_footer
from engine.safetext import control_in, describe_control, visible
from engine.sidecars import SIDECARS, Sidecar, clear_all_sidecars, clear_sidecar, sidecar_path
from engine.tasks import (
    CLAIM_SUFFIX,
    DEFAULT_MAX_BYTES,
    TASK_SUFFIX,
    VANISHED,
    Fingerprint,
    Task,
    TaskError,
    dispatch_order,
    file_kind,
    is_within,
    queue_dir,
    read_task,
    reported,
    symlink_reason,
    task_id_of,
)

log = logging.getLogger(__name__)

_MAX_NAME_TRIES = 1000


def discover_projects(
    projects_dir: Path | None,
    dedicated: Mapping[str, Path] | None = None,
    refused: set[str] | None = None,
) -> dict[str, Path]:
    """Project name -> directory: each child of `projects_dir` with `.agent-queue/inbox`, plus `dedicated`.

    A folder whose name holds a control character is refused, with one error line naming it (once per
    folder when the caller keeps `refused` across calls): its path is typed into a shell at launch,
    where such a character acts as a key.
    """
    found: dict[str, Path] = {}
    if projects_dir is not None:
        try:
            entries = sorted(os.scandir(projects_dir), key=lambda e: e.name)
        except OSError as exc:
            log.warning("%s: cannot list projects: %s", projects_dir, exc.strerror)
            entries = []
        for entry in entries:
            if entry.name.startswith(".") or not os.path.isdir(
                os.path.join(entry.path, ".agent-queue", "inbox")
            ):
                continue
            bad = control_in(entry.path)
            if bad is not None:
                if refused is None or entry.path not in refused:
                    log.error(
                        "%s: not a project: its path holds the control character %s, which would act "
                        "as a key when typed into a shell; rename the folder",
                        visible(entry.path),
                        describe_control(bad[0]),
                    )
                if refused is not None:
                    refused.add(entry.path)
                continue
            found[entry.name] = Path(entry.path)
    for name, directory in (dedicated or {}).items():
        if name in found and os.path.realpath(found[name]) != os.path.realpath(directory):
            log.warning("project %s: dedicated %s shadows %s", name, directory, found[name])
        found[name] = directory
    return found


@dataclass(frozen=True)
class ScanResult:
    """One look at the inboxes: what can run, what must go to `failed/`, what is claimed or marked."""

    tasks: tuple[Task, ...] = ()
    """Settled, well-formed pending tasks, in dispatch order."""
    errors: tuple[TaskError, ...] = ()
    """Bad files: pass each to `fail(error.path, error.reason)`."""
    claimed: tuple[Path, ...] = ()
    """`<id>.md.dispatched` files: running, or left over for recovery."""
    marks: Mapping[str, frozenset[Sidecar]] = field(default_factory=dict)
    """Task key -> the sidecars present next to it."""
    unsettled: int = 0
    """Files not read yet because they may still be being written."""
    next_settle: float | None = None
    """When (on the queue's clock) the earliest unsettled file will be readable: rescan then."""
    problems: tuple[str, ...] = ()
    """Inboxes that could not be scanned, each naming the directory."""

    def marked(self, key: str, kind: Sidecar) -> bool:
        return kind in self.marks.get(key, frozenset())


@dataclass
class _Seen:
    fingerprint: Fingerprint
    since: float


_Entry = tuple[Fingerprint, Task | TaskError]


@dataclass
class _Collector:
    tasks: list[Task] = field(default_factory=list)
    errors: list[TaskError] = field(default_factory=list)
    claimed: list[Path] = field(default_factory=list)
    marks: dict[str, set[Sidecar]] = field(default_factory=dict)
    unsettled: int = 0
    next_settle: float | None = None
    problems: list[str] = field(default_factory=list)

    def result(self) -> ScanResult:
        return ScanResult(
            tasks=tuple(dispatch_order(self.tasks)),
            errors=tuple(sorted(self.errors, key=lambda e: str(e.path))),
            claimed=tuple(sorted(self.claimed)),
            marks={k: frozenset(v) for k, v in self.marks.items()},
            unsettled=self.unsettled,
            next_settle=self.next_settle,
            problems=tuple(self.problems),
        )


class Queue:
    """Scans inboxes of many projects, parsing each file version once.

    Settle rule: a regular file is read once its mtime is at least `settle` seconds old, or once this
    queue has seen it unchanged (inode, mtime, size) for `settle` seconds. A rename keeps the mtime of
    the write, so a file written elsewhere and renamed in is read at once if it was written `settle`
    ago, and otherwise within `settle`; a file written in place is read only after it stops changing.
    `now` must be on the same scale as file mtimes (wall time). Thread-safe: one scan at a time.
    """

    def __init__(
        self, max_bytes: int = DEFAULT_MAX_BYTES, settle: float = 0.1, now: Callable[[], float] = time.time
    ) -> None:
        self.max_bytes = max_bytes
        self.settle = settle
        self.parses = 0
        self._now = now
        self._lock = threading.Lock()
        self._cache: dict[tuple[str, Path], dict[str, _Entry]] = {}
        self._seen: dict[tuple[str, Path], dict[str, _Seen]] = {}

    def scan(self, projects: Mapping[str, Path]) -> ScanResult:
        """Scan the inboxes of `projects` (name -> directory); caches of projects not named are kept."""
        out = _Collector()
        with self._lock:
            now = self._now()
            for name, project_dir in projects.items():
                self._scan_project(name, project_dir, now, out)
        return out.result()

    def _scan_project(self, project: str, project_dir: Path, now: float, out: _Collector) -> None:
        inbox = queue_dir(project_dir, "inbox")
        slot = (project, project_dir)
        try:
            if not is_within(os.path.realpath(inbox), os.path.realpath(project_dir)):
                out.problems.append(f"{inbox}: resolves outside the project; not scanned")
                return
            with os.scandir(inbox) as it:
                entries = list(it)
        except FileNotFoundError:
            self._cache.pop(slot, None)
            self._seen.pop(slot, None)
            return
        except OSError as exc:
            out.problems.append(f"{inbox}: cannot be listed: {exc.strerror}")
            return
        scan = _ProjectScan(
            project=project,
            project_dir=project_dir,
            now=now,
            settle=self.settle,
            max_bytes=self.max_bytes,
            old_cache=self._cache.get(slot, {}),
            old_seen=self._seen.get(slot, {}),
            out=out,
        )
        for entry in entries:
            scan.add(entry)
        self._cache[slot] = scan.cache
        self._seen[slot] = scan.seen
        self.parses += scan.parses


@dataclass
class _ProjectScan:
    """One project's part of a scan: reuses cached outcomes and remembers files still settling."""

    project: str
    project_dir: Path
    now: float
    settle: float
    max_bytes: int
    old_cache: dict[str, _Entry]
    old_seen: dict[str, _Seen]
    out: _Collector
    cache: dict[str, _Entry] = field(default_factory=dict)
    seen: dict[str, _Seen] = field(default_factory=dict)
    parses: int = 0

    def add(self, entry: os.DirEntry[str]) -> None:
        name = entry.name
        if name.startswith("."):
            return
        if name.endswith(TASK_SUFFIX):
            outcome = self._candidate(entry)
            if isinstance(outcome, Task):
                self.out.tasks.append(outcome)
            elif outcome is not None:
                self.out.errors.append(outcome)
        elif name.endswith(CLAIM_SUFFIX):
            self.out.claimed.append(Path(entry.path))
        else:
            for kind in SIDECARS:
                suffix = f"{TASK_SUFFIX}.{kind}"
                if name.endswith(suffix):
                    key = f"{self.project}:{name[: -len(suffix)]}"
                    self.out.marks.setdefault(key, set()).add(kind)

    def _candidate(self, entry: os.DirEntry[str]) -> Task | TaskError | None:
        try:
            st = entry.stat(follow_symlinks=False)
        except FileNotFoundError:
            return None
        fp = (st.st_ino, st.st_mtime_ns, st.st_size)
        hit = self.old_cache.get(entry.path)
        if hit is not None and hit[0] == fp:
            self.cache[entry.path] = hit
            return hit[1]
        path = Path(entry.path)
        outcome: Task | TaskError
        if stat.S_ISLNK(st.st_mode):
            outcome = TaskError(path, symlink_reason(path, self.project_dir))
        elif not stat.S_ISREG(st.st_mode):
            outcome = TaskError(path, f"not a regular file ({file_kind(st.st_mode)})")
        elif not self._settled(entry.path, fp, st.st_mtime_ns):
            return None
        else:
            self.parses += 1
            try:
                outcome = read_task(path, self.project, self.project_dir, self.max_bytes)
            except TaskError as exc:
                if exc.reason == VANISHED:
                    return None
                outcome = exc
            if isinstance(outcome, Task) and outcome.fingerprint != fp:
                # Changed between the listing and the read: still being written.
                self._wait(entry.path, _Seen(outcome.fingerprint, self.now), outcome.created)
                return None
        self.cache[entry.path] = (fp, outcome)
        return outcome

    def _settled(self, key: str, fp: Fingerprint, mtime_ns: int) -> bool:
        mtime = mtime_ns / 1e9
        if self.now - mtime >= self.settle:
            return True
        prev = self.old_seen.get(key)
        if prev is None or prev.fingerprint != fp:
            prev = _Seen(fp, self.now)
        if self.now - prev.since >= self.settle:
            return True
        self._wait(key, prev, mtime)
        return False

    def _wait(self, key: str, seen: _Seen, mtime: float) -> None:
        self.seen[key] = seen
        self.out.unsettled += 1
        due = min(mtime, seen.since) + self.settle
        self.out.next_settle = due if self.out.next_settle is None else min(self.out.next_settle, due)


# --- queue moves -------------------------------------------------------------------------------------

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


def reconcile_claim(claimed: Path) -> Path | None:
    """If `claimed` was already finished (a crash hit between writing done/failed and removing the
    claim), remove the claim and return the finished file; otherwise None and nothing changes."""
    task_id = _claimed_id(claimed)
    with reported(claimed, "reconcile the claim"):
        try:
            token = _claim_token(os.lstat(claimed))
        except FileNotFoundError:
            return None
        for kind in ("done", "failed"):
            directory = claimed.parent.parent / kind
            try:
                names = sorted(os.listdir(directory))
            except FileNotFoundError:
                continue
            for name in names:
                if name != task_id + TASK_SUFFIX and not (
                    name.startswith(task_id + "-") and name.endswith(TASK_SUFFIX)
                ):
                    continue
                candidate = directory / name
                found = read_footer(candidate)
                if found is not None and str(found.get("claim")) == token:
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
