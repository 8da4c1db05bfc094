"""Housekeeping: archive old done/failed tasks, rotate events.jsonl, clear stale signals, report old inbox."""

from __future__ import annotations

import contextlib
import logging
import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

from engine.atomic import rename_noreplace
from engine.clock import Clock
from engine.config import Config, JanitorConfig
from engine.durations import format_duration
from engine.events import Emit, EventLog
from engine.tasks import QUEUE_DIR, TASK_SUFFIX

log = logging.getLogger(__name__)

ARCHIVED: Final = "archived"
ROTATED: Final = "rotated"
CLEANED: Final = "cleaned"
INBOX_STALE: Final = "inbox_stale"

SIGNAL_PREFIX = "agent-done-"
REASON_SUFFIX = ".reason"
DELEGATED_SUFFIX = ".delegated"
RESUME_SUFFIX = "-resume-id.txt"
EVENTS_NAME = "events.jsonl"
# Rotated logs are the only thing the janitor ever deletes: they are its own output, not the operator's.
KEEP_ROTATED = 3


@dataclass
class Report:
    """What one pass did; `inbox_stale` lists every stale task, also those reported by earlier passes."""

    archived: list[Path] = field(default_factory=list)
    rotated: Path | None = None
    cleaned: list[Path] = field(default_factory=list)
    inbox_stale: list[Path] = field(default_factory=list)


def _lstat(path: Path) -> os.stat_result | None:
    try:
        return os.lstat(path)
    except OSError:
        return None


def _is_real_dir(path: Path) -> bool:
    st = _lstat(path)
    return st is not None and stat.S_ISDIR(st.st_mode)


def _entries(directory: Path) -> list[os.DirEntry[str]]:
    """Visible entries of a real directory (a symlinked directory is not entered); none if it is missing."""
    if not _is_real_dir(directory):
        return []
    try:
        with os.scandir(directory) as it:
            return sorted((e for e in it if not e.name.startswith(".")), key=lambda e: e.name)
    except OSError as e:
        log.warning("janitor cannot list %s: %s", directory, e)
        return []


def _ensure_real_dirs(base: Path, *parts: str) -> Path | None:
    """mkdir -p below `base`; None if a component exists as something other than a real directory."""
    path = base
    for part in parts:
        path = path / part
        with contextlib.suppress(FileExistsError):
            path.mkdir(mode=0o755)
        if not _is_real_dir(path):
            log.warning("janitor: %s is not a directory; not archiving into it", path)
            return None
    return path


def _numbered(name: str, n: int) -> str:
    """`a.md` -> `a-1.md`, keeping every suffix so `x.md.reason` stays a `.md.reason` sidecar."""
    stem, dot, rest = name.partition(".")
    return f"{stem}-{n}{dot}{rest}"


def _rename_unique(src: Path, dst: Path) -> Path:
    """Rename `src` to `dst`, or to the first free numbered variant of it; never overwrites."""
    n = 0
    while True:
        candidate = dst if n == 0 else dst.with_name(_numbered(dst.name, n))
        try:
            rename_noreplace(src, candidate)
        except FileExistsError:
            n += 1
            continue
        return candidate


def rotate_event_log(
    path: Path, now: float, keep: int = KEEP_ROTATED, writer: EventLog | None = None
) -> Path:
    """Rename `path` to `events-<UTC time>.jsonl`, start an empty file, keep the newest `keep` rotated files.

    With `writer` (the EventLog that has `path` open) the swap happens under its lock and its descriptor
    is pointed at the fresh file, so no event is lost or written to the rotated one. Without it, no
    process may hold `path` open, e.g. run it before the engine opens its log.
    """
    stamp = datetime.fromtimestamp(now, UTC).strftime("%Y%m%dT%H%M%SZ")
    target = path.with_name(f"events-{stamp}.jsonl")
    if writer is None:
        target = _rename_unique(path, target)
        os.close(_fresh(path))
    else:
        target = writer.rotate(lambda: _rename_unique(path, target))
    _prune_rotated(path.parent, keep)
    return target


def _prune_rotated(directory: Path, keep: int) -> None:
    rotated: list[tuple[float, Path]] = []
    for p in directory.glob("events-*.jsonl"):
        st = _lstat(p)
        if st is not None and stat.S_ISREG(st.st_mode):
            rotated.append((st.st_mtime, p))
    for _, old in sorted(rotated)[: max(0, len(rotated) - keep)]:
        try:
            old.unlink(missing_ok=True)
        except OSError as e:
            log.warning("janitor cannot remove the old event log %s: %s", old, e)


def _fresh(path: Path) -> int:
    """Open a new, empty log file exactly as EventLog opens its own."""
    flags = os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
    return os.open(path, flags, 0o600)


class Janitor:
    """One `run_once` per pass (the engine runs it at start and hourly); every action is emitted as an event.

    It never deletes or rewrites a task file and never enters `inbox/` except to look at mtimes.
    """

    def __init__(
        self,
        config: JanitorConfig,
        clock: Clock,
        emit: Emit,
        *,
        state_dir: Path,
        done_signal_dir: Path,
        resume_dir: Path,
        event_log: EventLog | None = None,
    ) -> None:
        self.config = config
        self.clock = clock
        self.emit = emit
        self.events_path = event_log.path if event_log is not None else state_dir / EVENTS_NAME
        self.done_signal_dir = done_signal_dir
        self.resume_dir = resume_dir
        self.event_log = event_log
        # A stale inbox task is announced once, not on every hourly pass.
        self._announced: set[Path] = set()

    @classmethod
    def from_config(
        cls, config: Config, clock: Clock, emit: Emit, event_log: EventLog | None = None
    ) -> Janitor:
        return cls(
            config.janitor,
            clock,
            emit,
            state_dir=config.state_dir,
            done_signal_dir=config.watcher.done_signal_dir,
            resume_dir=config.agent.resume_dir,
            event_log=event_log,
        )

    def run_once(self, projects: Mapping[str, Path], live_sessions: set[str]) -> Report:
        """`projects` maps names to project folders (holding `.agent-queue`); `live_sessions` must include
        sessions being launched, whose signal and resume files are about to be used."""
        report = Report()
        for name, project_dir in sorted(projects.items()):
            queue = project_dir / QUEUE_DIR
            if not _is_real_dir(queue):
                continue
            for box in ("done", "failed"):
                report.archived += self._archive(name, queue, box)
            report.inbox_stale += self._stale_inbox(name, queue / "inbox")
        # Forget tasks that left the inbox, so the set stays small and a task that comes back is announced.
        self._announced.intersection_update(report.inbox_stale)
        report.rotated = self._rotate()
        report.cleaned = self._clean(live_sessions)
        return report

    def _archive(self, project: str, queue: Path, box: str) -> list[Path]:
        cutoff = self.clock.now() - self.config.keep_days * 86400.0
        entries = {e.name: e for e in _entries(queue / box)}
        moved: list[Path] = []
        for name, entry in entries.items():
            if name.endswith(REASON_SUFFIX) and name.removesuffix(REASON_SUFFIX) in entries:
                continue  # a sidecar moves with its task
            st = _lstat(Path(entry.path))
            # Failed tasks may be symlinks moved as they are; those are archived as links, never followed.
            if st is None or not (stat.S_ISREG(st.st_mode) or stat.S_ISLNK(st.st_mode)):
                continue
            sidecar = entries.get(name + REASON_SUFFIX)
            side_st = _lstat(Path(sidecar.path)) if sidecar is not None else None
            # The sidecar was written when the task failed; a moved link or file keeps its older mtime.
            when = max(st.st_mtime, side_st.st_mtime if side_st is not None else 0.0)
            if when >= cutoff:
                continue
            month = datetime.fromtimestamp(when, UTC).strftime("%Y-%m")
            folder = _ensure_real_dirs(queue, "archive", month, box)
            if folder is None:
                return moved
            try:
                dst = _rename_unique(Path(entry.path), folder / name)
                if sidecar is not None:
                    _rename_unique(Path(sidecar.path), dst.with_name(dst.name + REASON_SUFFIX))
            except OSError as e:
                log.warning("janitor cannot archive %s: %s", entry.path, e)
                continue
            moved.append(dst)
            self.emit(
                ARCHIVED,
                task=_task_key(project, name),
                path=str(dst),
                box=box,
                reason=f"older than {self.config.keep_days} days",
            )
        return moved

    def _stale_inbox(self, project: str, inbox: Path) -> list[Path]:
        now = self.clock.now()
        stale: list[Path] = []
        entries = _entries(inbox)
        names = {e.name for e in entries}
        for entry in entries:
            if not entry.name.endswith(TASK_SUFFIX):
                continue
            if entry.name + DELEGATED_SUFFIX in names:
                continue  # a job service is working on it: not waiting for anyone
            try:
                st = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            age = now - st.st_mtime
            if not stat.S_ISREG(st.st_mode) or age <= self.config.inbox_stale_after:
                continue
            path = Path(entry.path)
            stale.append(path)
            if path not in self._announced:
                self._announced.add(path)
                self.emit(
                    INBOX_STALE,
                    task=_task_key(project, entry.name),
                    path=str(path),
                    age=round(age),
                    reason=f"waiting in the inbox for {format_duration(round(age / 3600) * 3600.0)}",
                )
        return stale

    def _rotate(self) -> Path | None:
        st = _lstat(self.events_path)
        if st is None or not stat.S_ISREG(st.st_mode) or st.st_size <= self.config.events_max_bytes:
            return None
        try:
            rotated = rotate_event_log(self.events_path, self.clock.now(), writer=self.event_log)
        except OSError as e:
            log.warning("janitor cannot rotate %s: %s", self.events_path, e)
            return None
        self.emit(ROTATED, path=str(rotated), size=st.st_size)
        return rotated

    def _clean(self, live_sessions: set[str]) -> list[Path]:
        removed: list[Path] = []
        for directory, session_of in (
            (self.done_signal_dir, _signal_session),
            (self.resume_dir, _resume_session),
        ):
            for entry in _entries(directory):
                session = session_of(entry.name)
                if session is None or session in live_sessions:
                    continue
                try:
                    st = entry.stat(follow_symlinks=False)
                    # The signal folder defaults to /tmp: only our own regular files are ours to remove.
                    if not stat.S_ISREG(st.st_mode) or st.st_uid != os.getuid():
                        continue
                    os.unlink(entry.path)
                except OSError as e:
                    log.warning("janitor cannot remove %s: %s", entry.path, e)
                    continue
                removed.append(Path(entry.path))
                self.emit(CLEANED, session=session, path=entry.path, reason="session not live")
        return removed


def _task_key(project: str, name: str) -> str:
    """`<project>:<id>` as in every other event; names that are not task files are kept whole."""
    return f"{project}:{name.removesuffix(TASK_SUFFIX)}"


def _signal_session(name: str) -> str | None:
    if not name.startswith(SIGNAL_PREFIX):
        return None
    return name.removeprefix(SIGNAL_PREFIX) or None


def _resume_session(name: str) -> str | None:
    if not name.endswith(RESUME_SUFFIX):
        return None
    return name.removesuffix(RESUME_SUFFIX) or None
