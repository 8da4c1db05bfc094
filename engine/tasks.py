"""Task files: the Task record, frontmatter parsing and checks, dispatch order and depends_on resolution."""

# Over ~400 lines on purpose: a task's frontmatter, its checks and depends_on resolution read one record
# (Task) and share its validation; the queue moves and sidecars live in moves.py and sidecars.py.

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import os
import re
import stat
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, TypeGuard

import yaml

from engine.bounded import LIST_SHOWN
from engine.safetext import control_in, describe_control, visible

log = logging.getLogger(__name__)

Priority = Literal["critical", "high", "default", "low"]
PRIORITIES: tuple[Priority, ...] = ("critical", "high", "default", "low")
_RANK: dict[str, int] = {p: i for i, p in enumerate(PRIORITIES)}

DEFAULT_MAX_BYTES = 1024 * 1024
QUEUE_DIR = ".agent-queue"
TASK_SUFFIX = ".md"
CLAIM_SUFFIX = ".md.dispatched"
PUBLISHED_SUFFIX = ".md.published"  # with a fleet: the origin's task file while the fleet runs it
VANISHED = "vanished"

KNOWN_KEYS = frozenset(
    {
        "title",
        "priority",
        "tags",
        "needs_claude_code",
        "depends_on",
        "preferred_ai",
        "allow_delegation",
        "complexity_hint",
    }
)

_SEGMENT = re.compile(r"[A-Za-z0-9._-]+")
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
Fingerprint = tuple[int, int, int]


class TaskError(Exception):
    """A task file cannot be used or moved; `reason` names the problem, `path` the file."""

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(f"{visible(path)}: {reason}")
        self.path = path
        self.reason = reason


@contextlib.contextmanager
def reported(path: Path, action: str) -> Iterator[None]:
    """Report an OSError of a queue operation as the TaskError of this boundary, naming the file."""
    try:
        yield
    except OSError as exc:
        raise TaskError(path, f"cannot {action}: {exc.strerror or exc}") from exc


@dataclass(frozen=True)
class Dependency:
    """One `depends_on` entry that passed the safety checks."""

    project: str
    task_id: str

    def __str__(self) -> str:
        return f"{self.project}:{self.task_id}"


@dataclass(frozen=True)
class Task:
    """A parsed pending task; `created` (the file's mtime) is its age for ordering."""

    project: str
    project_dir: Path
    id: str
    path: Path
    title: str
    priority: Priority = "default"
    tags: tuple[str, ...] = ()
    depends_on: tuple[Dependency, ...] = ()
    unsafe_depends: tuple[str, ...] = ()
    needs_claude_code: bool | None = None
    preferred_ai: str | None = None
    allow_delegation: bool | None = None
    complexity_hint: str | None = None
    body: str = ""
    created: float = 0.0
    size: int = 0
    # (inode, mtime_ns, size) as read: tells whether the file on disk is still this version.
    fingerprint: Fingerprint = field(default=(0, 0, 0), compare=False, repr=False)

    @property
    def key(self) -> str:
        return f"{self.project}:{self.id}"

    @property
    def filename(self) -> str:
        """`<id>.md`, the name the agent's message is prefixed with."""
        return self.id + TASK_SUFFIX

    @property
    def order(self) -> tuple[int, float, str]:
        return (_RANK[self.priority], self.created, str(self.path))


def dispatch_order(tasks: Iterable[Task]) -> list[Task]:
    """Priority (critical first), then oldest first, then path so that equal ages keep a stable order."""
    return sorted(tasks, key=lambda t: t.order)


def queue_dir(project_dir: Path, name: Literal["inbox", "done", "failed"]) -> Path:
    return project_dir / QUEUE_DIR / name


def task_id_of(name: str) -> str | None:
    """The task id in an inbox file name (`<id>.md` or `<id>.md.dispatched`), None for anything else."""
    for suffix in (TASK_SUFFIX, CLAIM_SUFFIX):
        if name.endswith(suffix) and not name.startswith("."):
            return name[: -len(suffix)] or None
    return None


def human_bytes(n: int) -> str:
    for unit, size in (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if n >= size:
            value = n / size
            return f"{value:.0f} {unit}" if n % size == 0 else f"{value:.1f} {unit}"
    return f"{n} bytes"


def is_within(path: str, root: str) -> bool:
    """Whether real path `path` is `root` or below it (both already resolved)."""
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def parse_task(
    path: Path, project: str, max_bytes: int = DEFAULT_MAX_BYTES, project_dir: Path | None = None
) -> Task:
    """Read and check one task file, never through a link; raises TaskError naming the problem.

    `project_dir` defaults to the directory holding `.agent-queue/inbox/`; the file's directory must
    resolve inside it.
    """
    project_dir = project_dir if project_dir is not None else path.parent.parent.parent
    if not is_within(os.path.realpath(path.parent), os.path.realpath(project_dir)):
        raise TaskError(path, "resolves outside the project")
    return read_task(path, project, project_dir, max_bytes)


def read_task(path: Path, project: str, project_dir: Path, max_bytes: int) -> Task:
    """`parse_task` without the directory check, for callers that checked the inbox once."""
    task_id = task_id_of(path.name)
    if task_id is None:
        raise TaskError(path, "not a task file name (<id>.md)")
    bad = control_in(path.name)
    if bad is not None:
        # The name is pasted to the agent (`[<id>.md]`), where a control character acts as a key.
        raise TaskError(path, f"control character {describe_control(bad[0])} in the file name")
    data, st = _read_bytes(path, project_dir, max_bytes)
    nul = data.find(b"\0")
    if nul >= 0:
        raise TaskError(path, f"binary content (NUL byte at offset {nul})")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise TaskError(path, f"not UTF-8 (byte 0x{data[exc.start]:02x} at offset {exc.start})") from None
    bad = control_in(text, multiline=True)
    if bad is not None:
        line = text.count("\n", 0, bad.start()) + 1
        raise TaskError(path, f"control character {describe_control(bad[0])} at line {line}")
    header, body, first_line = _split_frontmatter(text, path)
    fields = _load_header(header, first_line, path)
    try:
        return _build(fields, path, project, project_dir, task_id, body, st)
    except _FieldError as exc:
        raise TaskError(path, str(exc)) from None


def _read_bytes(path: Path, project_dir: Path, max_bytes: int) -> tuple[bytes, os.stat_result]:
    try:
        # O_NONBLOCK: a FIFO swapped in after the listing must not hang the scan on open.
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise TaskError(path, VANISHED) from None
    except OSError as exc:
        if os.path.islink(path):
            raise TaskError(path, symlink_reason(path, project_dir)) from None
        raise TaskError(path, f"cannot be read: {exc.strerror}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise TaskError(path, f"not a regular file ({file_kind(st.st_mode)})")
        if st.st_size > max_bytes:
            raise TaskError(path, f"over {human_bytes(max_bytes)} ({st.st_size:,} bytes)")
        chunks: list[bytes] = []
        remaining = max_bytes + 1
        while remaining > 0:
            chunk = os.read(fd, min(remaining, 1 << 20))
            if not chunk:
                break
            chunks.append(chunk)
            remaining -= len(chunk)
    finally:
        os.close(fd)
    data = b"".join(chunks)
    if len(data) > max_bytes:
        raise TaskError(path, f"over {human_bytes(max_bytes)} (grew while being read)")
    return data, st


def file_kind(mode: int) -> str:
    if stat.S_ISLNK(mode):
        return "symlink"
    if stat.S_ISDIR(mode):
        return "directory"
    if stat.S_ISFIFO(mode):
        return "FIFO"
    if stat.S_ISSOCK(mode):
        return "socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "device"
    return "special file"


def symlink_reason(path: Path, project_dir: Path) -> str:
    # realpath walks link names only; the target's content is never opened.
    target = os.path.realpath(path)
    if not is_within(target, os.path.realpath(project_dir)):
        return "not a regular file (symlink resolving outside the project)"
    return "not a regular file (symlink)"


def _split_frontmatter(text: str, path: Path) -> tuple[str | None, str, int]:
    """(frontmatter or None, body, file line number where the frontmatter starts)."""
    text = text.removeprefix("\ufeff")
    lines = text.splitlines(keepends=True)
    if not lines or lines[0].rstrip() != "---":
        return None, text, 0
    for i, line in enumerate(lines[1:], start=1):
        if line.rstrip() in ("---", "..."):
            return "".join(lines[1:i]), "".join(lines[i + 1 :]), 2
    raise TaskError(path, "invalid YAML frontmatter: no closing --- line")


def _load_header(header: str | None, first_line: int, path: Path) -> dict[str, object]:
    if header is None:
        return {}
    try:
        loaded: object = yaml.load(header, Loader=_Loader)
    except yaml.MarkedYAMLError as exc:
        where = ""
        if exc.problem_mark is not None:
            where = f" (line {exc.problem_mark.line + first_line}, column {exc.problem_mark.column + 1})"
        problem = exc.problem or exc.context or "syntax error"
        raise TaskError(path, f"invalid YAML frontmatter: {problem}{where}") from None
    except yaml.YAMLError as exc:
        raise TaskError(path, f"invalid YAML frontmatter: {exc}") from None
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise TaskError(path, f"frontmatter is not a mapping (it is {describe(loaded)})")
    if not all(isinstance(k, str) for k in loaded):
        raise TaskError(path, "frontmatter keys must be text")
    unknown = sorted(set(loaded) - KNOWN_KEYS)
    if unknown:
        log.warning("%s: ignoring unknown frontmatter keys: %s", path, ", ".join(unknown))
    return loaded


class _FieldError(Exception):
    pass


def describe(value: object) -> str:
    """A short, bounded description of a YAML value for error messages (aliases can nest hugely)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, str):
        return '"' + (value if len(value) <= 60 else value[:57] + "...") + '"'
    if isinstance(value, int | float | dt.date):
        return str(value)
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__


def _is_scalar_text(value: object) -> TypeGuard[str | int | float | dt.date]:
    return isinstance(value, str | int | float | dt.date) and not isinstance(value, bool)


def _text(fields: Mapping[str, object], key: str) -> str | None:
    value = fields.get(key)
    if value is None:
        return None
    if not _is_scalar_text(value):
        raise _FieldError(f"{key} must be text, not {describe(value)}")
    return str(value).strip() or None


def _flag(fields: Mapping[str, object], key: str) -> bool | None:
    value = fields.get(key)
    if value is None or isinstance(value, bool):
        return value
    raise _FieldError(f"{key} must be true or false, not {describe(value)}")


def _priority(fields: Mapping[str, object]) -> Priority:
    value = fields.get("priority")
    if value is None:
        return "default"
    if not isinstance(value, str):
        raise _FieldError(f"priority must be text, not {describe(value)}")
    for p in PRIORITIES:
        if value.strip().lower() == p:
            return p
    raise _FieldError(f"unknown priority {describe(value)} (use critical, high, default or low)")


def _tags(fields: Mapping[str, object]) -> tuple[str, ...]:
    value = fields.get("tags")
    if value is None:
        return ()
    if isinstance(value, str):
        return tuple(t.strip() for t in value.split(",") if t.strip())
    if not isinstance(value, list):
        raise _FieldError(f"tags must be a list, not {describe(value)}")
    tags: list[str] = []
    for item in value:
        if not _is_scalar_text(item):
            raise _FieldError(f"tags must be a list of words, not contain {describe(item)}")
        tags.append(str(item))
    return tuple(tags)


def _depends(fields: Mapping[str, object], project: str) -> tuple[tuple[Dependency, ...], tuple[str, ...]]:
    value = fields.get("depends_on")
    if value is None:
        return (), ()
    if isinstance(value, dict):
        raise _FieldError("depends_on must be a list of project:task_id, not a mapping")
    entries = value if isinstance(value, list) else [value]
    safe: list[Dependency] = []
    unsafe: list[str] = []
    for entry in entries:
        dep = parse_dependency(entry, project)
        if dep is None:
            unsafe.append(entry if isinstance(entry, str) else describe(entry))
        else:
            safe.append(dep)
    return tuple(safe), tuple(unsafe)


def is_safe_segment(segment: str) -> bool:
    return _SEGMENT.fullmatch(segment) is not None and segment not in (".", "..")


def parse_dependency(entry: object, own_project: str) -> Dependency | None:
    """`project:task_id`, or a bare `task_id` meaning the task's own project; None if unsafe.

    A trailing `.md` on the task id is dropped, since ids are file names without it.
    """
    if not isinstance(entry, str):
        return None
    parts = entry.split(":")
    if len(parts) == 1:
        project, task_id = own_project, parts[0]
    elif len(parts) == 2 and is_safe_segment(parts[0]):
        project, task_id = parts
    else:
        return None
    task_id = task_id.removesuffix(TASK_SUFFIX)
    return Dependency(project, task_id) if is_safe_segment(task_id) else None


def _build(
    fields: Mapping[str, object],
    path: Path,
    project: str,
    project_dir: Path,
    task_id: str,
    body: str,
    st: os.stat_result,
) -> Task:
    depends_on, unsafe = _depends(fields, project)
    title = _text(fields, "title") or _first_line(body) or task_id
    return Task(
        project=project,
        project_dir=project_dir,
        id=task_id,
        path=path,
        title=title,
        priority=_priority(fields),
        tags=_tags(fields),
        depends_on=depends_on,
        unsafe_depends=unsafe,
        needs_claude_code=_flag(fields, "needs_claude_code"),
        preferred_ai=_text(fields, "preferred_ai"),
        allow_delegation=_flag(fields, "allow_delegation"),
        complexity_hint=_text(fields, "complexity_hint"),
        body=body,
        created=st.st_mtime,
        size=st.st_size,
        fingerprint=(st.st_ino, st.st_mtime_ns, st.st_size),
    )


def _first_line(body: str) -> str | None:
    for line in body.splitlines():
        stripped = line.strip().lstrip("#").strip()
        if stripped:
            return stripped
    return None


NOWHERE = "exists nowhere (not queued, running, done or failed)"


@dataclass(frozen=True)
class DepStatus:
    """Whether a task's dependencies are met: `missing` as `project:task_id`, `unsafe` exactly as written,
    and `nowhere`, the missing ones that no queue holds in any state (a typo, or a task not written yet)."""

    met: bool
    missing: tuple[str, ...] = ()
    unsafe: tuple[str, ...] = ()
    nowhere: tuple[str, ...] = ()

    def waiting(self) -> list[str]:
        """One reason per unmet entry: `unsafe depends_on entry '…'`, `waiting for p:t` (with a hint if
        p:t exists nowhere)."""
        unsafe = [f"unsafe depends_on entry {u!r}" for u in self.unsafe]
        return unsafe + [f"waiting for {waits_for(m, self.nowhere)}" for m in self.missing]


def waits_for(dependency: str, nowhere: Iterable[str]) -> str:
    """`p:t`, or `p:t, which exists nowhere (…)` when no queue holds it."""
    return f"{dependency}, which {NOWHERE}" if dependency in nowhere else dependency


class DoneListing:
    """Looks up finished tasks; each directory is listed at most once per instance (one per round).

    The exact name is checked on disk every time; only the timestamped-name search uses the listing.
    A task archived by the janitor (`archive/<month>/done/`) still counts as done.
    """

    def __init__(self) -> None:
        self._names: dict[Path, frozenset[str]] = {}

    def _listing(self, directory: Path) -> frozenset[str]:
        names = self._names.get(directory)
        if names is None:
            try:
                names = frozenset(os.listdir(directory))
            except OSError:
                names = frozenset()
            self._names[directory] = names
        return names

    def _in(self, directory: Path, task_id: str) -> bool:
        if os.path.lexists(directory / (task_id + TASK_SUFFIX)):
            return True
        return any(n.startswith(task_id) and n.endswith(TASK_SUFFIX) for n in self._listing(directory))

    def has(self, done_dir: Path, task_id: str) -> bool:
        """Met by `done/<id>.md`, or `done/<id>*.md` as timestamped queues name finished tasks."""
        return self._in_box(done_dir, task_id)

    def _in_box(self, box: Path, task_id: str) -> bool:
        """In `done/` or `failed/` (`box`), or in the janitor's archive of it."""
        if self._in(box, task_id):
            return True
        archive = box.parent / "archive"
        months = sorted(self._listing(archive), reverse=True)
        return any(self._in(archive / month / box.name, task_id) for month in months)

    def exists(self, project_dir: Path, task_id: str, besides: Path | None = None) -> bool:
        """Whether the project holds the task in any state: queued or running in its inbox (the file
        `besides`, the task asking, aside), done or failed; by the same `<id>*` rule as `has`."""
        inbox = queue_dir(project_dir, "inbox")
        mine = besides.name if besides is not None else None
        if any(
            n.startswith(task_id) and n.endswith((TASK_SUFFIX, CLAIM_SUFFIX)) and n != mine
            for n in self._listing(inbox)
        ):
            return True
        return self._in_box(queue_dir(project_dir, "done"), task_id) or self._in_box(
            queue_dir(project_dir, "failed"), task_id
        )


def resolve_dependencies(
    task: Task,
    projects_dir: Path | None,
    projects: Mapping[str, Path] | None = None,
    listing: DoneListing | None = None,
) -> DepStatus:
    """Check `task.depends_on` against the done queues, and the unmet ones against every queue.

    A dependency's project is looked up in `projects` (name -> dir, dedicated projects included),
    then as `projects_dir/<name>`; the task's own project is always its own directory. An unknown
    project counts as missing: it may be created later.
    """
    listing = listing if listing is not None else DoneListing()
    missing: list[str] = []
    nowhere: list[str] = []
    for dep in task.depends_on:
        if dep.project == task.project:
            project_dir: Path | None = task.project_dir
        elif projects is not None and dep.project in projects:
            project_dir = projects[dep.project]
        elif projects_dir is not None:
            project_dir = projects_dir / dep.project
        else:
            project_dir = None
        if project_dir is None or not listing.has(queue_dir(project_dir, "done"), dep.task_id):
            missing.append(str(dep))
            # Only the entries a person is shown get the hint: 10,000 of them would cost a round dearly.
            if len(missing) <= LIST_SHOWN and (
                project_dir is None or not listing.exists(project_dir, dep.task_id, besides=task.path)
            ):
                nowhere.append(str(dep))
    unsafe = task.unsafe_depends
    return DepStatus(
        met=not missing and not unsafe, missing=tuple(missing), unsafe=unsafe, nowhere=tuple(nowhere)
    )
