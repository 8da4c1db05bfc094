"""The fleet queue's files on a host: the ledger, an imported task written into an inbox (its `.fleet`
sidecar first), a finished fleet task found in done/ or failed/, and an outcome landed at its origin."""

from __future__ import annotations

import contextlib
import json
import logging
import os
from pathlib import Path

from engine.atomic import atomic_write, fsync_dir, rename_noreplace, write_new
from engine.fleet.queue import FLEET_SIDECAR, Imported, Ledger, Outcome, QueueError
from engine.footers import FooterValue, append_footer, read_footer
from engine.tasks import PUBLISHED_SUFFIX, TASK_SUFFIX, queue_dir

log = logging.getLogger(__name__)

LEDGER_FILE = "fleet-tasks.json"
STAGING = ".fleet-incoming"
_MAX_NAMES = 1000


def load_ledger(state_dir: Path) -> Ledger:
    path = state_dir / LEDGER_FILE
    try:
        return Ledger.decode(path.read_bytes())
    except FileNotFoundError:
        return Ledger()
    except (OSError, QueueError) as exc:
        log.error("%s: unreadable (%s); the fleet's tasks of this host start afresh", path, exc)
        return Ledger()


def save_ledger(state_dir: Path, data: bytes) -> None:
    atomic_write(state_dir / LEDGER_FILE, data, mode=0o600)


def inbox_paths(project_dir: Path, task_id: str) -> tuple[Path, Path, Path]:
    """(`<id>.md`, `<id>.md.fleet`, `<id>.md.dispatched`) in the project's inbox."""
    inbox = queue_dir(project_dir, "inbox")
    return (
        inbox / f"{task_id}{TASK_SUFFIX}",
        inbox / f"{task_id}{FLEET_SIDECAR}",
        inbox / f"{task_id}{TASK_SUFFIX}.dispatched",
    )


def published_path(project_dir: Path, task_id: str) -> Path:
    return queue_dir(project_dir, "inbox") / f"{task_id}{PUBLISHED_SUFFIX}"


def stage_import(project_dir: Path, task_id: str, text: bytes, created: float) -> tuple[Path, str] | None:
    """Write an imported task beside the inbox, not in it yet (`.agent-queue/.fleet-incoming/<id>.md`,
    which no scan reads), dated `created` so that it keeps its age; returns it and its claim token, or None
    if the id is taken here."""
    task, sidecar, claimed = inbox_paths(project_dir, task_id)
    if any(os.path.lexists(p) for p in (task, sidecar, claimed)):
        return None
    staging = task.parent.parent / STAGING
    staging.mkdir(exist_ok=True)
    tmp = staging / task.name
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
    try:
        os.write(fd, text)
        os.fsync(fd)
        os.utime(fd, (created, created))
        st = os.fstat(fd)
    finally:
        os.close(fd)
    return tmp, f"{st.st_ino}-{st.st_mtime_ns}"


def place_import(project_dir: Path, imported: Imported, staged: Path) -> bool:
    """The `.fleet` sidecar first, then the task renamed into the inbox; False (nothing left behind) if
    the id was taken meanwhile."""
    task, sidecar, _ = inbox_paths(project_dir, imported.task_id)
    note = json.dumps({"origin": imported.origin, "seq": imported.seq, "gen": imported.gen}) + "\n"
    try:
        write_new(sidecar, note)
    except FileExistsError:
        drop_staged(staged)
        return False
    try:
        rename_noreplace(staged, task)
    except FileExistsError:
        drop_staged(staged)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(sidecar)
        return False
    fsync_dir(task.parent)
    return True


def drop_staged(staged: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(staged)


def drop_import(project_dir: Path, task_id: str) -> bool:
    """Remove an imported task not started here (the fleet gave it to another host); True if removed."""
    task, sidecar, _ = inbox_paths(project_dir, task_id)
    removed = False
    with contextlib.suppress(FileNotFoundError):
        os.unlink(task)
        removed = True
    with contextlib.suppress(FileNotFoundError):
        os.unlink(sidecar)
    fsync_dir(task.parent)
    return removed


def drop_sidecar(project_dir: Path, task_id: str) -> None:
    """The `.fleet` sidecar of an import that ended here."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(inbox_paths(project_dir, task_id)[1])


def sidecar_ids(project_dir: Path) -> list[str]:
    """The ids of every `.fleet` sidecar in the project's inbox."""
    try:
        names = os.listdir(queue_dir(project_dir, "inbox"))
    except OSError:
        return []
    return sorted(
        n[: -len(FLEET_SIDECAR)] for n in names if n.endswith(FLEET_SIDECAR) and not n.startswith(".")
    )


def _candidates(directory: Path, task_id: str) -> list[Path]:
    try:
        names = os.listdir(directory)
    except OSError:
        return []
    mine = [
        n
        for n in names
        if n == task_id + TASK_SUFFIX or (n.startswith(task_id + "-") and n.endswith(TASK_SUFFIX))
    ]
    return [directory / n for n in sorted(mine)]


def find_finished(project_dir: Path, imported: Imported) -> tuple[str, Path, dict[str, object]] | None:
    """The done/ or failed/ file this host's run of `imported` ended in (found by its claim token), with
    its footer; None if there is none."""
    for kind in ("done", "failed"):
        for path in _candidates(queue_dir(project_dir, kind), imported.task_id):
            footer = read_footer(path)
            if footer is not None and str(footer.get("claim")) == imported.claim:
                return kind, path, footer
    return None


def outcome_content(outcome: Outcome, published: bytes) -> bytes:
    """What lands at the origin: the runner's done file as it was sent, or the task with the reason."""
    if outcome.state == "done" and outcome.text:
        return outcome.text.encode("utf-8")
    fields: dict[str, FooterValue] = {
        "status": "completed" if outcome.state == "done" else "failed",
        **outcome.footer,
        "host": outcome.runner,
    }
    if outcome.state == "failed":
        fields["reason"] = outcome.reason
    return append_footer(published, fields)


def land_outcome(project_dir: Path, outcome: Outcome) -> Path | None:
    """Move the origin's `<id>.md.published` to done/ or failed/ with the outcome; None when there is no
    such file (an outcome already landed, or a task this host no longer waits for). A crash between the
    write and the removal is recognised the next time: the same content is not written twice."""
    published = published_path(project_dir, outcome.task_id)
    try:
        data = published.read_bytes()
    except FileNotFoundError:
        return None
    content = outcome_content(outcome, data)
    directory = queue_dir(project_dir, "done" if outcome.state == "done" else "failed")
    directory.mkdir(exist_ok=True)
    target = next((p for p in _candidates(directory, outcome.task_id) if _same(p, content)), None)
    if target is None:
        for n in range(1, _MAX_NAMES):
            name = outcome.task_id + (f"-{n}" if n > 1 else "") + TASK_SUFFIX
            try:
                write_new(directory / name, content)
            except FileExistsError:
                continue
            target = directory / name
            break
    if target is None:
        raise OSError(f"no free name for {outcome.task_id} in {directory}")
    with contextlib.suppress(FileNotFoundError):
        os.unlink(published)
    fsync_dir(published.parent)
    return target


def _same(path: Path, content: bytes) -> bool:
    try:
        return path.stat().st_size == len(content) and path.read_bytes() == content
    except OSError:
        return False
