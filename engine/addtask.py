"""`cfo add`: a new task file, checked by the engine's own reader and renamed into a project's inbox."""

from __future__ import annotations

import os
import re
import secrets
import shutil
import time
import unicodedata
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path

import yaml

from engine.atomic import fsync_dir, rename_noreplace
from engine.safetext import control_in, describe_control, visible
from engine.tasks import (
    PRIORITIES,
    QUEUE_DIR,
    TASK_SUFFIX,
    Dependency,
    DoneListing,
    Priority,
    Task,
    TaskError,
    is_within,
    parse_dependency,
    queue_dir,
    read_task,
    resolve_dependencies,
)

SLUG_MAX = 48
"""Characters of the title kept in the id: enough to tell tasks apart in a listing."""
_NOT_SLUG = re.compile(r"[^a-z0-9]+")


class AddError(Exception):
    """The task cannot be added; the message is the one line to print."""


@dataclass(frozen=True)
class Added:
    """A task written into an inbox: the engine's own reading of it, and the dependencies that no queue
    holds yet (worth a warning: the task waits for them until they appear)."""

    task: Task
    nowhere: tuple[str, ...] = ()


def find_project(spec: str, projects: Mapping[str, Path], projects_dir: Path | None) -> tuple[str, Path]:
    """(name, folder) of the project `spec` names: a project's folder name (as `cfo` finds projects:
    children of `projects_dir` with `.agent-queue/inbox`, and the dedicated sessions' projects), or a
    path to one of those folders. A folder the engine does not watch is refused: its tasks would never run.
    """
    if not spec.strip():
        raise AddError("no project given")
    if spec in projects and "/" not in spec:
        return spec, projects[spec]
    path = Path(spec).expanduser()
    looks_like_path = "/" in spec or spec in (".", "..") or spec.startswith("~")
    if not looks_like_path:
        where = (
            f"under projects_dir ({projects_dir})"
            if projects_dir is not None
            else "(projects_dir is not set)"
        )
        names = ", ".join(sorted(projects)) or "none"
        raise AddError(
            f"unknown project {visible(spec)!r}: no folder of that name with {QUEUE_DIR}/inbox {where}; "
            f"projects: {names}"
        )
    if not path.is_dir():
        raise AddError(f"{visible(path)}: no such folder")
    real = os.path.realpath(path)
    for name, directory in projects.items():
        if os.path.realpath(directory) == real:
            return name, directory
    if not queue_dir(path, "inbox").is_dir():
        raise AddError(
            f"{visible(path)}: not a project (no {QUEUE_DIR}/inbox); make it one with: "
            f"mkdir -p {visible(queue_dir(path, 'inbox'))}"
        )
    where = (
        f"under projects_dir ({projects_dir})" if projects_dir is not None else "(projects_dir is not set)"
    )
    raise AddError(
        f"{visible(path)}: cfo does not watch this folder: it is not {where} nor a dedicated project"
    )


def check_priority(value: str) -> Priority:
    for priority in PRIORITIES:
        if value.strip().lower() == priority:
            return priority
    raise AddError(f"unknown priority {visible(value)!r} (use critical, high, default or low)")


def check_dependencies(entries: Iterable[str], project: str) -> tuple[Dependency, ...]:
    """Each entry as `project:task_id` (a bare task id is this project's); an unsafe one is refused."""
    out: list[Dependency] = []
    for entry in entries:
        dep = parse_dependency(entry.strip(), project)
        if dep is None:
            raise AddError(
                f"unsafe depends_on {visible(entry)!r}: give project:task_id (or a task id of this project), "
                "each made of letters, digits, '.', '_' and '-'"
            )
        if dep not in out:
            out.append(dep)
    return tuple(out)


def check_title(title: str) -> str:
    title = title.strip()
    if not title:
        raise AddError("the title is empty")
    bad = control_in(title)
    if bad is not None:
        raise AddError(f"the title holds the control character {describe_control(bad[0])}")
    return title


def slug(title: str, limit: int = SLUG_MAX) -> str:
    """The title in lower-case ASCII letters and digits joined by `-` (accents dropped), at most `limit`
    characters, cut at a word; `task` when nothing is left (a title in another script)."""
    ascii_title = unicodedata.normalize("NFKD", title).encode("ascii", "ignore").decode("ascii")
    words = _NOT_SLUG.sub("-", ascii_title.lower()).strip("-")
    if len(words) > limit:
        cut = words[: limit + 1]
        words = cut[: cut.rfind("-")] if "-" in cut[1:] else words[:limit]
    return words.strip("-") or "task"


def new_id(title: str, now: float, taken: Callable[[str], bool]) -> str:
    """`YYYYMMDD-HHMMSS-<slug>` in UTC: sorts by creation, is a safe file name and `depends_on` segment.
    A second task with the same title in the same second gets `-2`, `-3`, … before its slug."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime(now))
    words = slug(title)
    candidate = f"{stamp}-{words}"
    n = 1
    while taken(candidate):
        n += 1
        candidate = f"{stamp}-{n}-{words}"
    return candidate


def render(title: str, priority: Priority, depends_on: tuple[Dependency, ...], body: str) -> str:
    """The task file: YAML frontmatter (title, priority, depends_on when any), then the body."""
    front: dict[str, object] = {"title": title, "priority": priority}
    if depends_on:
        front["depends_on"] = [str(d) for d in depends_on]
    header = yaml.safe_dump(front, sort_keys=False, allow_unicode=True, width=10_000)
    text = body.removeprefix("\ufeff").strip("\n")
    return f"---\n{header}---\n{text}\n" if text else f"---\n{header}---\n"


def add_task(
    project: str,
    project_dir: Path,
    title: str,
    priority: str = "default",
    depends_on: Iterable[str] = (),
    body: str = "",
    projects_dir: Path | None = None,
    projects: Mapping[str, Path] | None = None,
    max_bytes: int = 1024 * 1024,
    now: float | None = None,
) -> Added:
    """Write the task into `project_dir`'s inbox and return the engine's reading of it.

    The file is written and fsynced in a hidden folder of `.agent-queue/` (outside the inbox, so nothing
    ever sees it half written), read back with the engine's own reader, then renamed into the inbox
    without replacing anything; the inbox is fsynced so the rename survives a crash.
    """
    title = check_title(title)
    chosen = check_priority(priority)
    deps = check_dependencies(depends_on, project)
    inbox = queue_dir(project_dir, "inbox")
    if not is_within(os.path.realpath(inbox), os.path.realpath(project_dir)):
        raise AddError(f"{visible(inbox)}: resolves outside the project; cfo does not read it")
    text = render(title, chosen, deps, body)
    lost: set[str] = set()

    def taken(candidate: str) -> bool:
        return candidate in lost or DoneListing().exists(project_dir, candidate)

    work = _work_dir(project_dir)
    try:
        for _ in range(100):
            task_id = new_id(title, time.time() if now is None else now, taken)
            draft = work / (task_id + TASK_SUFFIX)
            _write_synced(draft, text)
            try:
                task = read_task(draft, project, project_dir, max_bytes)
            except TaskError as exc:
                raise AddError(f"the task would not be accepted: {exc.reason}") from None
            try:
                rename_noreplace(draft, inbox / draft.name)
            except FileExistsError:  # another writer took the name meanwhile: the next one
                draft.unlink()
                lost.add(task_id)
                continue
            except OSError as exc:
                raise AddError(f"{visible(inbox)}: cannot add the task: {exc.strerror or exc}") from None
            fsync_dir(inbox)
            task = replace(task, path=inbox / draft.name)
            return Added(task, resolve_dependencies(task, projects_dir, projects).nowhere)
        raise AddError(f"{visible(inbox)}: no free task id for this title")
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _work_dir(project_dir: Path) -> Path:
    queue = project_dir / QUEUE_DIR
    work = queue / f".add-{secrets.token_hex(4)}"
    try:
        work.mkdir(mode=0o700)
    except OSError as exc:
        raise AddError(f"{visible(queue)}: cannot write there: {exc.strerror or exc}") from None
    return work


def _write_synced(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
    try:
        data = memoryview(text.encode("utf-8"))
        while data:
            data = data[os.write(fd, data) :]
        os.fsync(fd)
    finally:
        os.close(fd)


def read_body(source: str | None, stdin: Callable[[], str]) -> str:
    """The body from a file, from standard input (`-`), or empty (`None`)."""
    if source is None:
        return ""
    if source == "-":
        try:
            return stdin()
        except UnicodeDecodeError as exc:
            raise AddError(f"standard input is not UTF-8 (byte {exc.start})") from None
    path = Path(source).expanduser()
    try:
        return path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise AddError(f"{visible(path)}: not UTF-8 (byte {exc.start})") from None
    except FileNotFoundError:
        raise AddError(f"{visible(path)}: no such file") from None
    except IsADirectoryError:
        raise AddError(f"{visible(path)}: is a folder, not a file") from None
    except OSError as exc:
        raise AddError(f"{visible(path)}: cannot read it: {exc.strerror or exc}") from None
