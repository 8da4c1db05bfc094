"""Reading a Claude Code JSONL transcript: API-error records, the error that ended a turn, session ids."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

StopKind = Literal["quota", "server_error", "auth"]

# Values of the record's `error` field, as the agent writes them.
_QUOTA_ERRORS = frozenset({"rate_limit"})
_AUTH_ERRORS = frozenset({"authentication_failed"})
_SERVER_ERRORS = frozenset({"api_error", "overloaded", "server_error"})
# Local slash commands (`/status`) are stored as user records but are not a new prompt to the model.
_LOCAL_COMMAND_PREFIXES = ("<command-name>", "<local-command-", "<command-message>")


@dataclass(frozen=True)
class ApiError:
    """A record the agent wrote in the model's place when a request failed (`isApiErrorMessage`)."""

    status: int | None
    error: str | None
    text: str
    timestamp: datetime | None
    session_id: str | None

    @property
    def kind(self) -> StopKind | None:
        """From the typed fields alone; a server error outranks the rest, as on screen."""
        if self.error in _SERVER_ERRORS or (self.status is not None and self.status >= 500):
            return "server_error"
        if self.error in _AUTH_ERRORS or self.status in (401, 403):
            return "auth"
        if self.error in _QUOTA_ERRORS or self.status == 429:
            return "quota"
        return None


def _records(lines: Iterable[str]) -> Iterator[dict[str, Any]]:
    for line in lines:
        # A line being written while we read is torn: skip it, the next read gets it whole.
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict):
            yield record


def _text(record: dict[str, Any]) -> str:
    message = record.get("message")
    content = message.get("content") if isinstance(message, dict) else None
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = (c.get("text") for c in content if isinstance(c, dict) and c.get("type") == "text")
        return "\n".join(p for p in parts if isinstance(p, str))
    return ""


def _uuid(value: Any) -> str | None:
    if not isinstance(value, str):
        return None
    try:
        return str(uuid.UUID(value))
    except ValueError:
        return None


def _timestamp(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def _api_error(record: dict[str, Any]) -> ApiError | None:
    if record.get("type") != "assistant" or record.get("isApiErrorMessage") is not True:
        return None
    status = record.get("apiErrorStatus")
    error = record.get("error")
    return ApiError(
        status=status if isinstance(status, int) and not isinstance(status, bool) else None,
        error=error if isinstance(error, str) else None,
        text=_text(record),
        timestamp=_timestamp(record.get("timestamp")),
        session_id=_uuid(record.get("sessionId")),
    )


def _in_conversation(record: dict[str, Any]) -> bool:
    """A prompt or an answer of the main conversation (not a subagent's, not bookkeeping)."""
    if record.get("type") not in ("user", "assistant") or record.get("isSidechain") or record.get("isMeta"):
        return False
    text = _text(record).lstrip()
    return not (record.get("type") == "user" and text.startswith(_LOCAL_COMMAND_PREFIXES))


def _order(record: dict[str, Any], index: int) -> tuple[datetime, int]:
    stamp = _timestamp(record.get("timestamp"))
    if stamp is not None and stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=UTC)
    return stamp or datetime.min.replace(tzinfo=UTC), index


def latest(records: Sequence[dict[str, Any]]) -> dict[str, Any] | None:
    """The conversation's latest record: not the last in the file, which is not always the turn's last
    event (an API-error record can be written before the prompt it answers), but the newest by timestamp
    among those no other record names as its parent (`parentUuid`); file order breaks ties."""
    if not records:
        return None
    parents = {r.get("parentUuid") for r in records} - {None}
    leaves = [(i, r) for i, r in enumerate(records) if r.get("uuid") not in parents] or list(
        enumerate(records)
    )
    return max(leaves, key=lambda item: _order(item[1], item[0]))[1]


def last_api_error(lines: Iterable[str]) -> ApiError | None:
    """The last API-error record of the main conversation, however old."""
    found: ApiError | None = None
    for record in _records(lines):
        if _in_conversation(record):
            found = _api_error(record) or found
    return found


def turn_stop(lines: Iterable[str]) -> ApiError | None:
    """The API error that ended the latest turn; None if the conversation went on after it, or had none."""
    last = latest([r for r in _records(lines) if _in_conversation(r)])
    return _api_error(last) if last is not None else None


def last_session_id(lines: Iterable[str]) -> str | None:
    """The `sessionId` of the last record that has a valid one."""
    found: str | None = None
    for record in _records(lines):
        found = _uuid(record.get("sessionId")) or found
    return found


def read_lines(path: Path) -> list[str]:
    """Every line of a transcript file (undecodable bytes replaced, so one bad record costs only itself)."""
    return path.read_text(encoding="utf-8", errors="replace").splitlines()


def read_new(path: Path, offset: int) -> tuple[list[str], int]:
    """The complete lines appended since byte `offset`, and the offset to pass next time.

    A last line without its newline is left for the next call; a file shorter than `offset` was replaced or
    truncated, so it is read again from the start.
    """
    with path.open("rb") as f:
        size = f.seek(0, 2)
        start = offset if 0 <= offset <= size else 0
        f.seek(start)
        data = f.read()
    cut = data.rfind(b"\n") + 1
    return data[:cut].decode("utf-8", errors="replace").splitlines(), start + cut


def opened_at(path: Path) -> datetime | None:
    """When the conversation began: the timestamp of its first record (None if unreadable or absent)."""
    try:
        with path.open("rb") as f:
            first = f.readline(65536).decode("utf-8", errors="replace")
    except OSError:
        return None
    record = next(_records([first]), None)
    return _timestamp(record.get("timestamp")) if record is not None else None


# A conversation met for the first time is read from this far before its end: enough for its latest turn.
FOLLOW_TAIL = 65536


@dataclass
class Follower:
    """One conversation file, read a little at each look: only the bytes appended since the last one.

    `stop` is the API error that ended the latest turn (None once the conversation went on after it); it
    carries over between looks that bring no new record.
    """

    path: Path
    offset: int | None = None
    stop: ApiError | None = None
    newest: dict[str, Any] | None = None
    """The latest record read so far: one read later that is older (its parent, say) changes nothing."""

    @property
    def uuid(self) -> str:
        """The conversation's id: its file's name without `.jsonl`."""
        return self.path.name[: -len(".jsonl")].lower()

    def poll(self) -> ApiError | None:
        """Read what was appended; the API-error record that ended the turn if it arrived in this read."""
        try:
            if self.offset is None:
                size = self.path.stat().st_size
                start = max(0, size - FOLLOW_TAIL)
                lines, self.offset = read_new(self.path, start)
                if start > 0:
                    lines = lines[1:]  # the tail began inside a record
            else:
                lines, self.offset = read_new(self.path, self.offset)
        except OSError:
            return None
        records = [r for r in _records(lines) if _in_conversation(r)]
        if not records:
            return None
        newest = latest(([self.newest] if self.newest is not None else []) + records)
        if newest is None or newest is self.newest:
            return None
        self.newest = newest
        self.stop = _api_error(newest)
        return self.stop
