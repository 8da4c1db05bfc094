"""Where an agent keeps a project's conversations, and which one a session is in (its resume UUID)."""

from __future__ import annotations

import json
import logging
import os
import re
from pathlib import Path

from engine.agentpaths import project_folder_name

log = logging.getLogger(__name__)

_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", re.IGNORECASE)
MIN_ANSWER_MATCH = 12  # shorter answers ("Done.") say too little about whose conversation it is


def conversation_dir(account_home: Path, cwd: Path) -> Path:
    """`<home>/projects/<the real path's folder name>`, the agent's folder for the project's sessions."""
    return account_home / "projects" / project_folder_name(os.path.realpath(cwd))


def conversation_file(account_home: Path, cwd: Path, uuid: str) -> Path:
    """The file of conversation `uuid` in the project's folder."""
    return conversation_dir(account_home, cwd) / f"{uuid}.jsonl"


def _first_prompt_has(path: Path, marker: str, limit: int = 65536) -> bool:
    try:
        with path.open("rb") as handle:
            head = handle.read(limit).decode("utf-8", errors="replace")
    except OSError:
        return False
    return marker in head


def _conversations(account_home: Path, cwd: Path) -> list[tuple[str, os.DirEntry[str]]]:
    """(UUID, entry) of every `<uuid>.jsonl` of the project; none if its folder cannot be read."""
    try:
        entries = list(os.scandir(conversation_dir(account_home, cwd)))
    except OSError:
        return []
    out = []
    for entry in entries:
        stem = entry.name[: -len(".jsonl")] if entry.name.endswith(".jsonl") else ""
        if _UUID.match(stem):
            out.append((stem.lower(), entry))
    return out


def conversation_for(account_home: Path, cwd: Path, marker: str, since: float = 0.0) -> str | None:
    """The UUID of the conversation, written since `since`, whose opening prompt carries `marker`.

    Several pool sessions may work in one project at once, so the newest file is not enough: the
    `[<id>.md]` prefix of the task's message tells them apart.
    """
    try:
        found = sorted(_conversations(account_home, cwd), key=lambda c: c[1].stat().st_mtime, reverse=True)
    except OSError:
        return None
    for uuid, entry in found:
        try:
            if entry.stat().st_mtime < since:
                break
        except OSError:
            continue
        if _first_prompt_has(Path(entry.path), marker):
            return uuid
    return None


def recent_answers(path: Path, limit: int = 262144) -> list[str]:
    """The text of the assistant records in the last `limit` bytes of a transcript, oldest first (the
    records standing in for a failed request are left out: the screen shows them as errors, not answers)."""
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
        if record.get("isApiErrorMessage") is True:
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


def answers_match(shown: str, said: list[str]) -> bool:
    """Whether an answer's first line on screen is one of `said`: long enough to tell conversations apart."""
    return len(shown) >= MIN_ANSWER_MATCH and any(shown in answer for answer in said)


def _common_tail(shown: list[str], said: list[str]) -> int:
    """How many of the screen's last answers are, in order, the conversation's last answers."""
    n = 0
    while n < min(len(shown), len(said)) and shown[-1 - n] in said[-1 - n]:
        n += 1
    return n


def conversation_on_screen(
    account_home: Path, cwd: Path, shown: list[str], exclude: frozenset[str] = frozenset()
) -> tuple[str | None, int]:
    """(the UUID of the project's one conversation whose latest answer is the last answer on screen, the
    number of conversations that matched); None when none or several match equally well.

    Pool tasks and other agents may work in the same project, so the newest file is not enough. Of several
    matches, the one sharing the longest run of latest answers with the screen wins; a tie is no answer, as
    resuming someone else's conversation is worse than not resuming. `exclude` holds UUIDs known to be
    another session's.
    """
    if not shown or len(shown[-1]) < MIN_ANSWER_MATCH:
        return None, 0
    scored: list[tuple[int, str]] = []
    for uuid, entry in _conversations(account_home, cwd):
        if uuid in exclude:
            continue
        said = recent_answers(Path(entry.path))
        if said and shown[-1] in said[-1]:
            scored.append((_common_tail(shown, said), uuid))
    if not scored:
        return None, 0
    scored.sort(reverse=True)
    if len(scored) > 1 and scored[0][0] == scored[1][0]:
        return None, len(scored)
    return scored[0][1], len(scored)
