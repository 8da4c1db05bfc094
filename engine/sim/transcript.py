"""Conversation transcripts: JSONL records shaped like the real agent's, and reading one back for --resume."""

from __future__ import annotations

import os
import time

from engine.agentpaths import project_folder_name
from engine.sim.render import VERSION

# The directives a turn still owes, carried on every record written during a turn: the last one
# read back tells --resume what the interrupted task had left.
PENDING_KEY = "simPending"
INTERRUPTED = "[Request interrupted by user]"


def project_dir(config_dir: str, cwd: str) -> str:
    """`<config>/projects/<cwd's folder name>`, where the real agent keeps a project's sessions."""
    return os.path.join(config_dir, "projects", project_folder_name(cwd))


def new_uuid() -> str:
    """A random (version 4) UUID, without importing the uuid module."""
    raw = bytearray(os.urandom(16))
    raw[6] = (raw[6] & 0x0F) | 0x40
    raw[8] = (raw[8] & 0x3F) | 0x80
    h = raw.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def is_uuid(text: str) -> bool:
    """`8-4-4-4-12` hexadecimal digits."""
    parts = text.split("-")
    return [len(p) for p in parts] == [8, 4, 4, 4, 12] and all(
        c in "0123456789abcdefABCDEF" for c in "".join(parts)
    )


def timestamp() -> str:
    now = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now % 1 * 1000):03d}Z"


class Entry:
    """One record read back: `kind` is user, answer, error or interrupt."""

    __slots__ = ("kind", "text")

    def __init__(self, kind: str, text: str) -> None:
        self.kind = kind
        self.text = text


class History:
    """What a transcript file holds for a resumed session."""

    __slots__ = ("entries", "last_uuid", "pending")

    def __init__(self, entries: list[Entry], pending: list[str], last_uuid: str | None) -> None:
        self.entries = entries
        self.pending = pending
        self.last_uuid = last_uuid


def _text_of(content: object) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(
            str(part.get("text", ""))
            for part in content
            if isinstance(part, dict) and part.get("type") == "text"
        )
    return ""


def load(path: str) -> History:
    """The entries, the owed directives and the last record's uuid of the transcript at `path`."""
    import json

    entries: list[Entry] = []
    pending: list[str] = []
    last_uuid: str | None = None
    with open(path, encoding="utf-8", errors="replace") as handle:
        for line in handle:
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if not isinstance(record, dict):
                continue
            message = record.get("message")
            text = _text_of(message.get("content")) if isinstance(message, dict) else ""
            if record.get("type") == "user":
                entries.append(Entry("interrupt" if text == INTERRUPTED else "user", text))
            elif record.get("type") == "assistant":
                entries.append(Entry("error" if record.get("isApiErrorMessage") else "answer", text))
            owed = record.get(PENDING_KEY)
            if isinstance(owed, list):
                pending = [str(item) for item in owed]
            if isinstance(record.get("uuid"), str):
                last_uuid = record["uuid"]
    return History(entries, pending, last_uuid)


class Transcript:
    """Appends one session's records to `<project dir>/<session id>.jsonl`."""

    def __init__(self, path: str, session_id: str, cwd: str, model: str, parent: str | None = None) -> None:
        self.path = path
        self.session_id = session_id
        self._cwd = cwd
        self._model = model
        self._parent = parent

    def user(self, text: str, pending: list[str]) -> None:
        self._append("user", {"role": "user", "content": text}, pending)

    def interrupted(self, pending: list[str]) -> None:
        self._append("user", {"role": "user", "content": [{"type": "text", "text": INTERRUPTED}]}, pending)

    def answer(self, text: str, pending: list[str]) -> None:
        self._append("assistant", self._assistant(text, self._model, "end_turn"), pending)

    def api_error(self, text: str, status: int, error: str, pending: list[str]) -> None:
        """A stop as the real agent records it: a synthetic assistant message flagged as an API error."""
        message = self._assistant(text, "<synthetic>", "stop_sequence")
        extra = {"isApiErrorMessage": True, "apiErrorStatus": status, "error": error}
        self._append("assistant", message, pending, extra)

    @staticmethod
    def _assistant(text: str, model: str, stop_reason: str) -> dict[str, object]:
        return {
            "id": "msg_" + os.urandom(12).hex(),
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": [{"type": "text", "text": text}],
            "stop_reason": stop_reason,
            "stop_sequence": None,
            "usage": {"input_tokens": 0, "output_tokens": 0}
            if model == "<synthetic>"
            else {"input_tokens": 120, "output_tokens": max(len(text) // 4, 1)},
        }

    def _append(
        self,
        kind: str,
        message: dict[str, object],
        pending: list[str],
        extra: dict[str, object] | None = None,
    ) -> None:
        import json

        record_uuid = new_uuid()
        record: dict[str, object] = {
            "parentUuid": self._parent,
            "isSidechain": False,
            "userType": "external",
            "cwd": self._cwd,
            "sessionId": self.session_id,
            "version": VERSION,
            "gitBranch": "",
            "type": kind,
            "message": message,
            "uuid": record_uuid,
            "timestamp": timestamp(),
            **(extra or {}),
            PENDING_KEY: pending,
        }
        if kind == "assistant":
            record["requestId"] = "req_" + os.urandom(12).hex()
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
        self._parent = record_uuid
