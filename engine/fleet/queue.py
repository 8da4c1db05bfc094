"""The fleet's queue as data: NATS-safe tokens for project and task names, the task message's headers, the
claim record of a task, the outcome sent back to the host a task came from, and what a host does with a
task message it fetched. Pure: no NATS and no files here."""

from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import asdict, dataclass, field
from typing import Literal
from urllib.parse import quote, unquote

from engine.tasks import PRIORITIES, Priority

ClaimState = Literal["published", "running", "done", "failed"]
CLAIM_STATES: tuple[ClaimState, ...] = ("published", "running", "done", "failed")
FINISHED: frozenset[str] = frozenset({"done", "failed"})

FLEET_SIDECAR = ".md.fleet"  # beside a task imported from the fleet: never exported again

H_ORIGIN = "Cfo-Origin"
H_PROJECT = "Cfo-Project"
H_ID = "Cfo-Id"
H_PRIORITY = "Cfo-Priority"
H_CREATED = "Cfo-Created"
H_MSG_ID = "Nats-Msg-Id"

_UNSAFE = re.compile(r"[^a-z0-9_-]+")
_TOKEN_KEEP = 40


class QueueError(ValueError):
    """A fleet message or record is not what this version writes."""


def token(name: str) -> str:
    """A NATS-safe token for a project or task name (one subject token, one KV key part, a consumer name):
    lowercase letters, digits, `-` and `_` kept, runs of anything else one `_`, cut to 40 characters, and 8
    hex digits of a hash of the real name, so that names differing only in what was replaced stay apart."""
    kept = _UNSAFE.sub("_", name.lower()).strip("_")[:_TOKEN_KEEP] or "x"
    return f"{kept}-{hashlib.sha256(name.encode('utf-8', 'surrogateescape')).hexdigest()[:8]}"


def task_subject(prefix: str, project: str, priority: str) -> str:
    return f"{prefix}.task.{token(project)}.{priority}"


def outcome_subject(prefix: str, origin: str) -> str:
    return f"{prefix}.outcome.{origin}"


def claim_key(project: str, task_id: str) -> str:
    """The claim record's key in the tasks bucket."""
    return f"{token(project)}.{token(task_id)}"


def consumer_name(project: str, priority: str) -> str:
    """The durable pull consumer of one project and priority, shared by every host."""
    return f"{token(project)}-{priority}"


def digest(text: bytes) -> str:
    return hashlib.sha256(text).hexdigest()[:16]


def msg_id(origin: str, project: str, task_id: str, text: bytes) -> str:
    """The publish's deduplication id: the same file published again within the window is one message."""
    return f"{origin}/{quote(project, safe='')}/{quote(task_id, safe='')}/{digest(text)}"


@dataclass(frozen=True)
class TaskMessage:
    """What a task message carries besides the task file's whole text."""

    origin: str
    project: str
    task_id: str
    priority: Priority
    created: float

    def headers(self, text: bytes) -> dict[str, str]:
        return {
            H_ORIGIN: self.origin,
            H_PROJECT: quote(self.project, safe=""),
            H_ID: quote(self.task_id, safe=""),
            H_PRIORITY: self.priority,
            H_CREATED: repr(self.created),
            H_MSG_ID: msg_id(self.origin, self.project, self.task_id, text),
        }

    @property
    def key(self) -> str:
        return f"{self.project}:{self.task_id}"

    @classmethod
    def from_headers(cls, headers: dict[str, str] | None) -> TaskMessage:
        h = headers or {}
        try:
            priority = h[H_PRIORITY]
            created = float(h.get(H_CREATED, "0"))
            message = cls(
                origin=h[H_ORIGIN],
                project=unquote(h[H_PROJECT]),
                task_id=unquote(h[H_ID]),
                priority=priority,  # type: ignore[arg-type]  # checked below
                created=created if math.isfinite(created) else 0.0,
            )
        except (KeyError, ValueError) as exc:
            raise QueueError(f"not a task message: {exc}") from None
        if priority not in PRIORITIES or not message.origin or not message.project or not message.task_id:
            raise QueueError("not a task message: a header is missing or wrong")
        return message


@dataclass(frozen=True)
class Claim:
    """A task's claim record: who runs which generation of it, and how it ended. `seq` is the stream
    sequence of the task message this generation runs; `digest` tells the same file from a new one."""

    state: ClaimState
    origin: str
    runner: str = ""
    gen: int = 1
    at: float = 0.0
    reason: str = ""
    seq: int = 0
    digest: str = ""

    @property
    def finished(self) -> bool:
        return self.state in FINISHED

    def encode(self) -> bytes:
        return json.dumps(asdict(self), sort_keys=True).encode()

    @classmethod
    def decode(cls, raw: bytes) -> Claim:
        try:
            data = json.loads(raw)
        except ValueError as exc:
            raise QueueError(f"not JSON: {exc}") from None
        if not isinstance(data, dict) or data.get("state") not in CLAIM_STATES:
            raise QueueError("not a claim record")
        try:
            return cls(
                state=data["state"],
                origin=str(data.get("origin", "")),
                runner=str(data.get("runner", "")),
                gen=int(data.get("gen", 1)),
                at=float(data.get("at", 0.0)),
                reason=str(data.get("reason", "")),
                seq=int(data.get("seq", 0)),
                digest=str(data.get("digest", "")),
            )
        except (TypeError, ValueError) as exc:
            raise QueueError(f"not a claim record: {exc}") from None


# ----------------------------------------------------------------- the origin's side: export

ExportDecision = Literal["publish", "adopt", "wait"]


def export_decision(record: Claim | None, origin: str, text_digest: str) -> ExportDecision:
    """What the origin does with a ready task file, given its claim record:
    `publish` it (no record, or a finished earlier run of the id: a new generation), `adopt` the record
    (this host already published this very file and crashed before the rename: only the rename is left),
    or `wait` (another host's task of the same id is in flight: published again once it has finished)."""
    if record is None or record.finished:
        return "publish"
    if record.origin == origin and record.digest == text_digest:
        return "adopt"
    if record.origin == origin:
        return "publish"  # a changed file under the id this host has in flight: the newer text wins
    return "wait"


def published(record: Claim | None, origin: str, seq: int, text_digest: str, now: float) -> Claim:
    """The claim record after the origin's publish got its acknowledgement."""
    if record is not None and not record.finished and record.seq == seq:
        return record  # a duplicate publish: the record already names this message
    gen = record.gen + 1 if record is not None else 1
    return Claim(state="published", origin=origin, gen=gen, at=now, seq=seq, digest=text_digest)


# ----------------------------------------------------------------- a host's side: import

ImportAction = Literal["take", "take_over", "keep", "drop", "later"]


@dataclass(frozen=True)
class ImportDecision:
    """What a host does with a fetched task message: `take` it (published → running here), `take_over`
    (running on a host silent too long: gen + 1), `keep` (it runs here already: only the delivery is new),
    `drop` (a duplicate: acknowledged, never run), or `later` (delayed redelivery: the record is about to
    change, or another live host runs it; the message stays the safety net while it does)."""

    action: ImportAction
    why: str = ""


def import_decision(
    record: Claim | None,
    seq: int,
    host: str,
    runs_here: bool,
    runner_age: float,
    takeover_after: float,
) -> ImportDecision:
    """The claim decision for message `seq` fetched by `host`. `runs_here`: this host holds the task
    (imported and not finished); `runner_age`: the age of the record's runner's last snapshot (a host
    never seen: infinity)."""
    if record is None:
        return ImportDecision("take", "no claim record: the origin stopped before writing it")
    if seq < record.seq:
        return ImportDecision("drop", f"a stale message: generation {record.gen} is message {record.seq}")
    if seq > record.seq:
        if record.finished:
            return ImportDecision("later", "a newer generation: its claim record is not written yet")
        return ImportDecision("drop", f"a duplicate: message {record.seq} of the id is in flight")
    if record.finished:
        return ImportDecision("drop", f"already {record.state} on {record.runner or 'a host'}")
    if record.state == "published":
        return ImportDecision("take")
    if record.runner == host:
        if runs_here:
            return ImportDecision("keep", "redelivered to the host that runs it")
        return ImportDecision("take_over", "this host lost it (a restart)")
    if runner_age > takeover_after:
        return ImportDecision("take_over", f"{record.runner} silent for {runner_age:.0f}s")
    return ImportDecision("later", f"running on {record.runner}")


def running(record: Claim | None, host: str, seq: int, origin: str, now: float, takeover: bool) -> Claim:
    """The claim record once `host` takes the task (a takeover starts a new generation)."""
    if record is None:
        return Claim(state="running", origin=origin, runner=host, gen=1, at=now, seq=seq)
    gen = record.gen + 1 if takeover else record.gen
    return Claim(
        state="running", origin=record.origin, runner=host, gen=gen, at=now, seq=seq, digest=record.digest
    )


def finished(record: Claim | None, outcome: Outcome, now: float) -> Claim | None:
    """The claim record once `outcome` is known; None when the record is finished already (kept)."""
    if record is not None and record.finished:
        return None
    base = record or Claim(state="running", origin=outcome.origin, seq=outcome.seq)
    return Claim(
        state=outcome.state,
        origin=base.origin,
        runner=outcome.runner,
        gen=base.gen,
        at=now,
        reason=outcome.reason,
        seq=base.seq,
        digest=base.digest,
    )


@dataclass(frozen=True)
class Outcome:
    """How a fleet task ended, sent to its origin: the done file's whole text (footer included) or the
    failure reason (with the runner's footer fields)."""

    project: str
    task_id: str
    origin: str
    runner: str
    seq: int
    state: Literal["done", "failed"]
    text: str = ""
    reason: str = ""
    footer: dict[str, str] = field(default_factory=dict)
    reply: str = ""  # the runner's acknowledgement subject of the task message, acked once this is sent

    @property
    def key(self) -> str:
        return f"{self.project}:{self.task_id}"

    def msg_id(self) -> str:
        return (
            f"outcome/{self.origin}/{quote(self.project, safe='')}/{quote(self.task_id, safe='')}/{self.seq}"
        )

    def to_dict(self) -> dict[str, object]:
        return asdict(self)

    def encode(self) -> bytes:
        return json.dumps(self.to_dict(), sort_keys=True).encode()

    @classmethod
    def from_dict(cls, data: object) -> Outcome:
        if not isinstance(data, dict) or data.get("state") not in ("done", "failed"):
            raise QueueError("not an outcome")
        try:
            footer = data.get("footer") or {}
            return cls(
                project=str(data["project"]),
                task_id=str(data["task_id"]),
                origin=str(data["origin"]),
                runner=str(data["runner"]),
                seq=int(data["seq"]),
                state=data["state"],
                text=str(data.get("text", "")),
                reason=str(data.get("reason", "")),
                footer={str(k): str(v) for k, v in dict(footer).items()},
                reply=str(data.get("reply", "")),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise QueueError(f"not an outcome: {exc}") from None

    @classmethod
    def decode(cls, raw: bytes) -> Outcome:
        try:
            return cls.from_dict(json.loads(raw))
        except ValueError as exc:
            if isinstance(exc, QueueError):
                raise
            raise QueueError(f"not JSON: {exc}") from None


@dataclass(frozen=True)
class Imported:
    """A task this host took from the fleet and has not reported yet: where its message is, and the
    claim token (inode and mtime) that finds its file in done/ or failed/ once it ends."""

    project: str
    task_id: str
    origin: str
    seq: int
    gen: int
    reply: str  # the latest delivery's acknowledgement subject
    claim: str

    @property
    def key(self) -> str:
        return f"{self.project}:{self.task_id}"

    @classmethod
    def from_dict(cls, data: object) -> Imported:
        if not isinstance(data, dict):
            raise QueueError("not an import")
        try:
            return cls(
                project=str(data["project"]),
                task_id=str(data["task_id"]),
                origin=str(data["origin"]),
                seq=int(data["seq"]),
                gen=int(data["gen"]),
                reply=str(data["reply"]),
                claim=str(data["claim"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise QueueError(f"not an import: {exc}") from None


@dataclass
class Ledger:
    """This host's part of the fleet queue kept on disk (`<state_dir>/fleet-tasks.json`): the tasks it
    imported and the outcomes not yet sent (the outbox), so that a crash or a partition loses none."""

    imports: dict[str, Imported] = field(default_factory=dict)
    outbox: list[Outcome] = field(default_factory=list)

    def encode(self) -> bytes:
        return json.dumps(
            {
                "imports": [asdict(i) for i in self.imports.values()],
                "outbox": [o.to_dict() for o in self.outbox],
            },
            sort_keys=True,
            indent=1,
        ).encode()

    @classmethod
    def decode(cls, raw: bytes) -> Ledger:
        try:
            data = json.loads(raw)
        except ValueError as exc:
            raise QueueError(f"not JSON: {exc}") from None
        if not isinstance(data, dict):
            raise QueueError("not a fleet ledger")
        imports = [Imported.from_dict(i) for i in data.get("imports", [])]
        return cls(
            imports={i.key: i for i in imports},
            outbox=[Outcome.from_dict(o) for o in data.get("outbox", [])],
        )


def dependency_met(record: Claim | None, done_here: bool) -> bool:
    """Whether a dependency is met fleet-wide: its claim record says done, or it has no record (it never
    went through the fleet) and this host's done/ holds it."""
    if record is not None:
        return record.state == "done"
    return done_here
