"""Projects and their inboxes: discovery, and scanning with the settle rule and a header cache."""

from __future__ import annotations

import logging
import os
import stat
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from engine.safetext import control_in, describe_control, visible
from engine.sidecars import SIDECARS, Sidecar
from engine.tasks import (
    CLAIM_SUFFIX,
    DEFAULT_MAX_BYTES,
    PUBLISHED_SUFFIX,
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
    symlink_reason,
)

log = logging.getLogger(__name__)

PARSE_GRACE = 2.0  # a file that fails to parse goes to failed/ once unchanged this long (or `settle`)


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
    nowhere: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    """Blocked task key -> its `depends_on` entries that no queue holds (filled in by dependency checks)."""
    published: int = 0
    """With a fleet: this host's tasks the fleet runs now (`<id>.md.published`, back when they end)."""

    def marked(self, key: str, kind: Sidecar) -> bool:
        return kind in self.marks.get(key, frozenset())


_Change = tuple[int, int, int, int]  # inode, mtime, size, ctime: any write, rename or chmod moves it


@dataclass
class _Seen:
    change: _Change
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
    published: int = 0

    def result(self) -> ScanResult:
        return ScanResult(
            tasks=tuple(dispatch_order(self.tasks)),
            errors=tuple(sorted(self.errors, key=lambda e: str(e.path))),
            claimed=tuple(sorted(self.claimed)),
            marks={k: frozenset(v) for k, v in self.marks.items()},
            unsettled=self.unsettled,
            next_settle=self.next_settle,
            problems=tuple(self.problems),
            published=self.published,
        )


class Queue:
    """Scans inboxes of many projects, parsing each file version once.

    Settle rule: a regular file is read once its mtime is at least `settle` seconds old, or once this
    queue has seen it unchanged (inode, mtime, ctime, size) for `settle` seconds; a file that changed
    since it was last read is only read the second way. A rename keeps the mtime of the write, so a
    file written elsewhere and renamed in is read at once if it was written `settle` ago, and otherwise
    within `settle`; a file written in place is read only after it stops changing. A file that fails to
    parse may be a writer's pause mid-file: it is reported only once it has stayed unchanged (mtime and
    ctime) for PARSE_GRACE or `settle`, whichever is longer, and read again if it changes before.
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
        elif name.endswith(PUBLISHED_SUFFIX):
            self.out.published += 1
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
        change = (*fp, st.st_ctime_ns)
        hit = self.old_cache.get(entry.path)
        if hit is not None and hit[0] == fp:
            self.cache[entry.path] = hit
            return None if self._held(hit[1], st) else hit[1]
        path = Path(entry.path)
        outcome: Task | TaskError
        if stat.S_ISLNK(st.st_mode):
            outcome = TaskError(path, symlink_reason(path, self.project_dir))
        elif not stat.S_ISREG(st.st_mode):
            outcome = TaskError(path, f"not a regular file ({file_kind(st.st_mode)})")
        elif not self._settled(entry.path, change, st.st_mtime_ns, changed=hit is not None):
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
                self._wait(entry.path, _Seen(change, self.now), outcome.created)
                return None
        self.cache[entry.path] = (fp, outcome)
        return None if self._held(outcome, st) else outcome

    def _settled(self, key: str, change: _Change, mtime_ns: int, changed: bool) -> bool:
        mtime = mtime_ns / 1e9
        if not changed and self.now - mtime >= self.settle:
            return True
        prev = self.old_seen.get(key)
        if prev is None or prev.change != change:
            prev = _Seen(change, self.now)
        if self.now - prev.since >= self.settle:
            return True
        self._wait(key, prev, prev.since if changed else mtime)
        return False

    def _held(self, outcome: Task | TaskError, st: os.stat_result) -> bool:
        """A regular file that failed to parse and changed within the grace: not reported yet."""
        if not isinstance(outcome, TaskError) or not stat.S_ISREG(st.st_mode):
            return False
        due = max(st.st_mtime_ns, st.st_ctime_ns) / 1e9 + max(self.settle, PARSE_GRACE)
        if self.now >= due:
            return False
        self._due(due)
        return True

    def _wait(self, key: str, seen: _Seen, mtime: float) -> None:
        self.seen[key] = seen
        self._due(min(mtime, seen.since) + self.settle)

    def _due(self, due: float) -> None:
        self.out.unsettled += 1
        self.out.next_settle = due if self.out.next_settle is None else min(self.out.next_settle, due)
