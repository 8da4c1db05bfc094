"""Engine state (sessions, accounts, dispatch mode, swap history) and its crash-safe JSON store."""

# Over ~400 lines on purpose: the records and their JSON reader are one contract (state.json), read back
# field by field with a key path for every error; split, each half would have to change with the other.

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final, Literal, cast

from engine.atomic import atomic_write, rename_noreplace
from engine.redact import redact_tree

log = logging.getLogger(__name__)

STATE_VERSION = 1
STATE_FILE = "state.json"
MAX_SWAPS = 200

SessionKind = Literal["pool", "dedicated"]
DispatchMode = Literal["running", "paused"]

# Session states the engine uses; the field stays an open string so a newer engine's state loads.
IDLE: Final = "idle"
LAUNCHING: Final = "launching"
WORKING: Final = "working"
STALLED: Final = "stalled"
RECYCLING: Final = "recycling"
OUT_OF_POOL: Final = "out of pool"  # its login failed twice: never dispatched into until the engine restarts
SESSION_STATES = (IDLE, LAUNCHING, WORKING, STALLED, RECYCLING, OUT_OF_POOL)


class StateError(ValueError):
    """The state file's content has the wrong shape; the message names the offending key path."""


@dataclass
class Failure:
    at: float
    reason: str


@dataclass
class SessionState:
    name: str
    kind: SessionKind = "pool"
    state: str = IDLE
    task: str | None = None
    """`<project>:<id>` of the task it holds."""
    task_path: str | None = None
    """The claimed file (`inbox/<id>.md.dispatched`)."""
    assigned_at: float | None = None
    last_fail: Failure | None = None
    last_done: float | None = None
    """When a task of this session last completed: a failure before it is history."""
    account: str | None = None
    model: str | None = None
    launch_failed_at: float | None = None
    launch_failures: int = 0
    """Launches failed in a row: each holds the session back longer (see Dispatcher.hold_after)."""
    held_until: float | None = None
    """Not dispatched into before this time, after a failed launch."""


@dataclass
class SwapRecord:
    at: float
    from_account: str | None
    to_account: str
    trigger_session: str | None = None
    pattern: str | None = None
    snippet: str | None = None
    sessions_resumed: list[str] = field(default_factory=list)
    duration: float | None = None
    # Dedicated sessions that were not resumed, each with why (left at the shell: no conversation known).
    sessions_not_resumed: dict[str, str] = field(default_factory=dict)
    # With a fleet: "decided for the fleet", "followed <host>", or "decided here: <why the fleet was not
    # asked>".
    fleet: str | None = None


@dataclass
class AccountState:
    name: str
    usable_again_at: float | None = None
    last_reset: float | None = None
    """When its last limit reset: the start of the usage the console counts for it."""

    def usable_at(self, now: float) -> bool:
        """No limit is recorded, or the one recorded has reset by `now`."""
        return self.usable_again_at is None or self.usable_again_at <= now

    def reset_if_passed(self, now: float) -> bool:
        """Make a limit that has reset by `now` history (its time becomes `last_reset`); True if it did."""
        if self.usable_again_at is None or self.usable_again_at > now:
            return False
        self.last_reset, self.usable_again_at = self.usable_again_at, None
        return True


Outcome = Literal["completed", "failed"]


@dataclass
class Finishing:
    """A run's outcome, recorded before its task file moves to done/ or failed/ and dropped once it has:
    while it is here the claim is finished work whose move is pending, never a task to run again."""

    task: str
    outcome: Outcome
    reason: str
    """How it ended (`completed`) or why it failed (`failed`): the event's reason."""
    session: str | None = None
    account: str | None = None
    seconds: float | None = None
    footer: dict[str, str] = field(default_factory=dict)
    claim: str | None = None
    """The claim's token (as the done/ or failed/ footer records it): a move that landed just before a
    stop or crash is recognised by it, and reported, though the claimed file is gone."""


@dataclass
class State:
    """The single source of truth the workers update and the UI renders.

    `recovered` is not persisted: it says the file was unusable and the engine must rebuild from
    tmux and the queue files.
    """

    sessions: dict[str, SessionState] = field(default_factory=dict)
    active_account: str | None = None
    dispatch: DispatchMode = "running"
    paused_until: float | None = None
    swaps: list[SwapRecord] = field(default_factory=list)
    accounts: dict[str, AccountState] = field(default_factory=dict)
    counters: dict[str, int] = field(default_factory=dict)
    requeues: dict[str, int] = field(default_factory=dict)
    """Task key -> times it was put back after its session died, for the requeue-once rule."""
    conversations: dict[str, str] = field(default_factory=dict)
    """Task key -> the conversation a requeued task left: its next run resumes it, not starting over."""
    finishing: dict[str, Finishing] = field(default_factory=dict)
    """Claimed file -> the outcome of its run, whose move to done/ or failed/ has not landed yet."""
    saved_at: float | None = None
    recovered: bool = field(default=False, compare=False)

    def add_swap(self, swap: SwapRecord) -> None:
        self.swaps.append(swap)
        del self.swaps[:-MAX_SWAPS]

    def account_usable(self, name: str, now: float) -> bool:
        """The one test of whether account `name` may be used at `now` (unknown accounts are)."""
        account = self.accounts.get(name)
        return account is None or account.usable_at(now)

    def count(self, name: str, n: int = 1) -> None:
        self.counters[name] = self.counters.get(name, 0) + n


def state_to_dict(state: State) -> dict[str, object]:
    return {
        "version": STATE_VERSION,
        "saved_at": state.saved_at,
        "active_account": state.active_account,
        "dispatch": state.dispatch,
        "paused_until": state.paused_until,
        "sessions": [_session_to_dict(s) for s in state.sessions.values()],
        "accounts": [
            {"name": a.name, "usable_again_at": a.usable_again_at, "last_reset": a.last_reset}
            for a in state.accounts.values()
        ],
        "swaps": [_swap_to_dict(s) for s in state.swaps[-MAX_SWAPS:]],
        "counters": dict(state.counters),
        "requeues": dict(state.requeues),
        "conversations": dict(state.conversations),
        "finishing": [
            {
                "claimed": claimed,
                "task": f.task,
                "outcome": f.outcome,
                "reason": f.reason,
                "session": f.session,
                "account": f.account,
                "seconds": f.seconds,
                "footer": dict(f.footer),
                "claim": f.claim,
            }
            for claimed, f in state.finishing.items()
        ],
    }


def _session_to_dict(s: SessionState) -> dict[str, object]:
    return {
        "name": s.name,
        "kind": s.kind,
        "state": s.state,
        "task": s.task,
        "task_path": s.task_path,
        "assigned_at": s.assigned_at,
        "last_fail": None if s.last_fail is None else {"at": s.last_fail.at, "reason": s.last_fail.reason},
        "last_done": s.last_done,
        "account": s.account,
        "model": s.model,
        "launch_failed_at": s.launch_failed_at,
        "launch_failures": s.launch_failures,
        "held_until": s.held_until,
    }


def _swap_to_dict(s: SwapRecord) -> dict[str, object]:
    return {
        "at": s.at,
        "from_account": s.from_account,
        "to_account": s.to_account,
        "trigger_session": s.trigger_session,
        "pattern": s.pattern,
        "snippet": s.snippet,
        "sessions_resumed": list(s.sessions_resumed),
        "duration": s.duration,
        "sessions_not_resumed": dict(s.sessions_not_resumed),
    }


def state_from_dict(data: object) -> State:
    """Build a State from parsed JSON; raises StateError naming the first bad key path."""
    root = _Obj(data, "state")
    version = root.integer("version")
    if version != STATE_VERSION:
        raise StateError(f"state.version: {version} is not supported (this engine reads {STATE_VERSION})")
    dispatch = root.choice("dispatch", ("running", "paused"), "running")
    state = State(
        active_account=root.opt_text("active_account"),
        dispatch=cast(DispatchMode, dispatch),
        paused_until=root.opt_number("paused_until"),
        saved_at=root.opt_number("saved_at"),
        counters=root.int_map("counters"),
        requeues=root.int_map("requeues"),
        conversations=root.text_map("conversations"),
    )
    for item in root.objects("sessions"):
        session = _session_from(item)
        if session.name in state.sessions:
            raise StateError(f"{item.where}.name: duplicate session {session.name!r}")
        state.sessions[session.name] = session
    for item in root.objects("accounts"):
        account = AccountState(
            name=item.text("name"),
            usable_again_at=item.opt_number("usable_again_at"),
            last_reset=item.opt_number("last_reset"),
        )
        state.accounts[account.name] = account
    state.swaps = [_swap_from(item) for item in root.objects("swaps")][-MAX_SWAPS:]
    for item in root.objects("finishing"):
        outcome = item.choice("outcome", ("completed", "failed"))
        state.finishing[item.text("claimed")] = Finishing(
            task=item.text("task"),
            outcome=cast(Outcome, outcome),
            reason=item.text("reason"),
            session=item.opt_text("session"),
            account=item.opt_text("account"),
            seconds=item.opt_number("seconds"),
            footer=item.text_map("footer"),
            claim=item.opt_text("claim"),
        )
    return state


def _session_from(item: _Obj) -> SessionState:
    kind = item.choice("kind", ("pool", "dedicated"), "pool")
    fail = item.opt_object("last_fail")
    return SessionState(
        name=item.text("name"),
        kind=cast(SessionKind, kind),
        state=item.text("state", IDLE),
        task=item.opt_text("task"),
        task_path=item.opt_text("task_path"),
        assigned_at=item.opt_number("assigned_at"),
        last_fail=None if fail is None else Failure(at=fail.number("at"), reason=fail.text("reason")),
        last_done=item.opt_number("last_done"),
        account=item.opt_text("account"),
        model=item.opt_text("model"),
        launch_failed_at=item.opt_number("launch_failed_at"),
        launch_failures=int(item.opt_number("launch_failures") or 0),
        held_until=item.opt_number("held_until"),
    )


def _swap_from(item: _Obj) -> SwapRecord:
    return SwapRecord(
        at=item.number("at"),
        from_account=item.opt_text("from_account"),
        to_account=item.text("to_account"),
        trigger_session=item.opt_text("trigger_session"),
        pattern=item.opt_text("pattern"),
        snippet=item.opt_text("snippet"),
        sessions_resumed=item.texts("sessions_resumed"),
        duration=item.opt_number("duration"),
        sessions_not_resumed=item.text_map("sessions_not_resumed"),
        fleet=item.opt_text("fleet"),
    )


class _Obj:
    """Typed access to one JSON object; every error names the key path."""

    def __init__(self, data: object, where: str) -> None:
        if not isinstance(data, dict):
            raise StateError(f"{where}: expected an object, got {_kind(data)}")
        self.data: Mapping[str, object] = data
        self.where = where

    def _fail(self, key: str, expected: str, value: object) -> StateError:
        return StateError(f"{self.where}.{key}: expected {expected}, got {_kind(value)}")

    def opt_text(self, key: str) -> str | None:
        value = self.data.get(key)
        if value is None or isinstance(value, str):
            return value
        raise self._fail(key, "text", value)

    def text(self, key: str, default: str | None = None) -> str:
        value = self.opt_text(key)
        if value is not None:
            return value
        if default is None:
            raise self._fail(key, "text", None)
        return default

    def choice(self, key: str, options: tuple[str, ...], default: str | None = None) -> str:
        value = self.text(key, default)
        if value not in options:
            expected = " or ".join(f'"{o}"' for o in options)
            raise StateError(f"{self.where}.{key}: expected {expected}, got {value!r}")
        return value

    def opt_number(self, key: str) -> float | None:
        value = self.data.get(key)
        if value is None:
            return None
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        raise self._fail(key, "a number", value)

    def number(self, key: str) -> float:
        value = self.opt_number(key)
        if value is None:
            raise self._fail(key, "a number", None)
        return value

    def integer(self, key: str) -> int:
        value = self.data.get(key)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise self._fail(key, "an integer", value)

    def int_map(self, key: str) -> dict[str, int]:
        value = self.data.get(key, {})
        if not isinstance(value, dict):
            raise self._fail(key, "an object", value)
        inner = _Obj(value, f"{self.where}.{key}")
        return {k: inner.integer(k) for k in value}

    def text_map(self, key: str) -> dict[str, str]:
        value = self.data.get(key, {})
        if not isinstance(value, dict):
            raise self._fail(key, "an object", value)
        inner = _Obj(value, f"{self.where}.{key}")
        return {k: inner.text(k) for k in value}

    def opt_object(self, key: str) -> _Obj | None:
        value = self.data.get(key)
        return None if value is None else _Obj(value, f"{self.where}.{key}")

    def objects(self, key: str) -> list[_Obj]:
        value = self.data.get(key, [])
        if not isinstance(value, list):
            raise self._fail(key, "a list", value)
        return [_Obj(item, f"{self.where}.{key}[{i}]") for i, item in enumerate(value)]

    def texts(self, key: str) -> list[str]:
        value = self.data.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise self._fail(key, "a list of text", value)
        return [str(v) for v in value]


def _kind(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, str):
        return "text"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, list):
        return "a list"
    return "an object" if isinstance(value, dict) else type(value).__name__


class StateStore:
    """`<state_dir>/state.json`: loads whatever is there without ever raising, saves atomically."""

    def __init__(self, state_dir: Path, now: Callable[[], float] = time.time) -> None:
        self.state_dir = state_dir
        self.path = state_dir / STATE_FILE
        self._now = now

    def load(self) -> State:
        """The saved state; a fresh one if there is none; a fresh one with `recovered=True` if the file
        is unreadable or corrupt (the bad file is kept as `state.json.corrupt-<UTC time>`)."""
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return State()
        except OSError as exc:
            log.error(
                "%s cannot be read (%s); rebuilding from tmux and the queue files", self.path, exc.strerror
            )
            return State(recovered=True)
        try:
            return state_from_dict(json.loads(raw))
        except (ValueError, RecursionError) as exc:
            problem = str(exc) if isinstance(exc, StateError) else f"not valid JSON: {exc}"
            kept = self._set_aside()
            log.error(
                "%s is corrupt (%s); kept as %s, rebuilding from tmux and the queue files",
                self.path,
                problem,
                kept.name if kept else "nothing (it could not be moved)",
            )
            return State(recovered=True)

    def save(self, state: State) -> None:
        """Write the state atomically (temp file, fsync, rename, directory fsync); sets `saved_at`."""
        state.saved_at = self._now()
        self.state_dir.mkdir(parents=True, exist_ok=True)
        # Failure reasons and pane snippets may quote a secret (an error a service echoed back).
        text = json.dumps(redact_tree(state_to_dict(state)), indent=1, ensure_ascii=False) + "\n"
        atomic_write(self.path, text.encode("utf-8", "backslashreplace"), mode=0o600)

    def _set_aside(self) -> Path | None:
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(self._now()))
        for n in range(1, 100):
            target = self.path.with_name(f"{STATE_FILE}.corrupt-{stamp}" + (f"-{n}" if n > 1 else ""))
            try:
                rename_noreplace(self.path, target)
            except FileExistsError:
                continue
            except OSError:
                return None
            return target
        return None
