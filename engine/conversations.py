"""Where an agent keeps a project's conversations, and which one a session is in (its resume UUID)."""

from __future__ import annotations

import json
import logging
import os
import re
from pathlib import Path

log = logging.getLogger(__name__)

_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", re.IGNORECASE)


def conversation_dir(account_home: Path, cwd: Path) -> Path:
    """`<home>/projects/<cwd with every / and . as ->`, the agent's folder for the project's sessions."""
    real = os.path.realpath(cwd)
    return account_home / "projects" / real.replace("/", "-").replace(".", "-")


def latest_conversation(account_home: Path, cwd: Path, since: float = 0.0) -> Path | None:
    """The most recently written `<uuid>.jsonl` of that project, if written at or after `since`."""
    folder = conversation_dir(account_home, cwd)
    best: tuple[float, Path] | None = None
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return None
    for entry in entries:
        name = entry.name
        if not name.endswith(".jsonl") or not _UUID.match(name[: -len(".jsonl")]):
            continue
        try:
            mtime = entry.stat().st_mtime
        except OSError:
            continue
        if mtime >= since and (best is None or mtime > best[0]):
            best = (mtime, Path(entry.path))
    return best[1] if best else None


def resume_id(account_home: Path, cwd: Path, since: float = 0.0) -> str | None:
    """The UUID of the project's latest conversation written since `since`, validated; else None."""
    path = latest_conversation(account_home, cwd, since)
    return path.name[: -len(".jsonl")].lower() if path else None


def _first_prompt_has(path: Path, marker: str, limit: int = 65536) -> bool:
    try:
        with path.open("rb") as handle:
            head = handle.read(limit).decode("utf-8", errors="replace")
    except OSError:
        return False
    return marker in head


def conversation_for(account_home: Path, cwd: Path, marker: str, since: float = 0.0) -> str | None:
    """The UUID of the conversation, written since `since`, whose opening prompt carries `marker`.

    Several pool sessions may work in one project at once, so the newest file is not enough: the
    `[<id>.md]` prefix of the task's message tells them apart.
    """
    folder = conversation_dir(account_home, cwd)
    try:
        entries = sorted(os.scandir(folder), key=lambda e: e.stat().st_mtime, reverse=True)
    except OSError:
        return None
    for entry in entries:
        stem = entry.name[: -len(".jsonl")] if entry.name.endswith(".jsonl") else ""
        if not _UUID.match(stem):
            continue
        try:
            if entry.stat().st_mtime < since:
                break
        except OSError:
            continue
        if _first_prompt_has(Path(entry.path), marker):
            return stem.lower()
    return None


def recent_answers(path: Path, limit: int = 262144) -> list[str]:
    """The text of the assistant records in the last `limit` bytes of a transcript, oldest first."""
    try:
        with path.open("rb") as handle:
            size = handle.seek(0, 2)
            handle.seek(max(0, size - limit))
            data = handle.read()
    except OSError:
        return []
    answers: list[str] = []
    for line in data.decode("utf-8", errors="replace").splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue  # the torn first line of the window, or one being written
        message = record.get("message") if isinstance(record, dict) else None
        if record.get("type") != "assistant" or not isinstance(message, dict):
            continue
        content = message.get("content")
        if isinstance(content, str):
            answers.append(content)
        elif isinstance(content, list):
            answers += [
                str(part.get("text", ""))
                for part in content
                if isinstance(part, dict) and part.get("type") == "text"
            ]
    return answers
