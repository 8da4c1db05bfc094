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


def in_order(records: list[dict[str, object]]) -> list[dict[str, object]]:
    """The records in the conversation's order: each one after the record its `parentUuid` names.

    File order is not always that: an API-error record may be written before the prompt it answers. A
    record whose parent is not in the file (the first one, or bookkeeping without a uuid) starts a chain,
    in file order.
    """
    known = {r["uuid"] for r in records if isinstance(r.get("uuid"), str)}
    children: dict[object, list[dict[str, object]]] = {}
    roots: list[dict[str, object]] = []
    for record in records:
        parent = record.get("parentUuid")
        if parent in known and parent != record.get("uuid"):
            children.setdefault(parent, []).append(record)
        else:
            roots.append(record)
    ordered: list[dict[str, object]] = []
    stack = roots[::-1]
    while stack:
        record = stack.pop()
        ordered.append(record)
        stack.extend(children.pop(record.get("uuid"), [])[::-1])
    return ordered


def load(path: str) -> History:
    """The entries, the owed directives and the latest record's uuid of the transcript at `path`."""
    import json

    records: list[dict[str, object]] = []
    with open(path, encoding="utf-8", errors="replace") as handle:
        for line in handle:
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if isinstance(record, dict):
                records.append(record)
    entries: list[Entry] = []
    pending: list[str] = []
    last_uuid: str | None = None
    for record in in_order(records):
        message = record.get("message")
        text = _text_of(message.get("content")) if isinstance(message, dict) else ""
        if record.get("type") == "user":
            entries.append(Entry("interrupt" if text == INTERRUPTED else "user", text))
        elif record.get("type") == "assistant":
            entries.append(Entry("error" if record.get("isApiErrorMessage") else "answer", text))
        owed = record.get(PENDING_KEY)
        if isinstance(owed, list):
            pending = [str(item) for item in owed]
        record_uuid = record.get("uuid")
        if isinstance(record_uuid, str):
            last_uuid = record_uuid
    return History(entries, pending, last_uuid)


class Transcript:
    """Appends one session's records to `<project dir>/<session id>.jsonl`.

    Each record names the one before it in the conversation (`parentUuid`), as the real agent's do. A
    prompt may be held back (`user(..., hold=True)`) until the next record: an API error then goes to the
    file before it, other records after it.
    """

    def __init__(self, path: str, session_id: str, cwd: str, model: str, parent: str | None = None) -> None:
        self.path = path
        self.session_id = session_id
        self._cwd = cwd
        self._model = model
        self._parent = parent
        self._held: list[dict[str, object]] = []

    def user(self, text: str, pending: list[str], hold: bool = False) -> None:
        record = self._record("user", {"role": "user", "content": text}, pending)
        if hold:
            self._held = [record]
        else:
            self._write([record])

    def interrupted(self, pending: list[str]) -> None:
        self._append("user", {"role": "user", "content": [{"type": "text", "text": INTERRUPTED}]}, pending)

    def answer(self, text: str, pending: list[str]) -> None:
        self._append("assistant", self._assistant(text, self._model, "end_turn"), pending)

    def api_error(self, text: str, status: int, error: str, pending: list[str]) -> None:
        """A stop as the real agent records it: a synthetic assistant message flagged as an API error."""
        message = self._assistant(text, "<synthetic>", "stop_sequence")
        extra = {"isApiErrorMessage": True, "apiErrorStatus": status, "error": error}
        self._write([self._record("assistant", message, pending, extra), *self._release()])

    def turn_duration(self, seconds: float, pending: list[str]) -> None:
        """The bookkeeping record the real agent writes when a turn ends (not a message)."""
        record = self._record("system", None, pending, {"subtype": "turn_duration"})
        record["durationMs"] = round(seconds * 1000)
        record["isMeta"] = False
        self._write([*self._release(), record])

    def flush(self) -> None:
        """Write a held prompt now."""
        self._write(self._release())

    def _release(self) -> list[dict[str, object]]:
        held, self._held = self._held, []
        return held

    @staticmethod
    def _assistant(text: str, model: str, stop_reason: str) -> dict[str, object]:
        synthetic = model == "<synthetic>"
        return {
            "id": new_uuid() if synthetic else "msg_" + os.urandom(12).hex(),
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": [{"type": "text", "text": text}],
            "stop_reason": stop_reason,
            "stop_sequence": "" if synthetic else None,
            "usage": {"input_tokens": 0, "output_tokens": 0}
            if synthetic
            else {"input_tokens": 120, "output_tokens": max(len(text) // 4, 1)},
        }

    def _append(self, kind: str, message: dict[str, object], pending: list[str]) -> None:
        self._write([*self._release(), self._record(kind, message, pending)])

    def _record(
        self,
        kind: str,
        message: dict[str, object] | None,
        pending: list[str],
        extra: dict[str, object] | None = None,
    ) -> dict[str, object]:
        """A record that follows the last one made (written or held), stamped now."""
        record_uuid = new_uuid()
        record: dict[str, object] = {
            "parentUuid": self._parent,
            "isSidechain": False,
            "userType": "external",
            "entrypoint": "cli",
            "cwd": self._cwd,
            "sessionId": self.session_id,
            "version": VERSION,
            "gitBranch": "",
            "type": kind,
            "uuid": record_uuid,
            "timestamp": timestamp(),
            **(extra or {}),
            PENDING_KEY: pending,
        }
        if message is not None:
            record["message"] = message
        if kind == "assistant":
            record["requestId"] = "req_" + os.urandom(12).hex()
        self._parent = record_uuid
        return record

    def _write(self, records: list[dict[str, object]]) -> None:
        if not records:
            return
        import json

        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
