"""A frozen picture of the engine for the console, `cfo status` and scripts; built, never mutated."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from typing import Any, cast

from engine import queue as q
from engine import sidecars
from engine.accounts import next_usable
from engine.bounded import listed
from engine.clock import iso
from engine.config import Config
from engine.counters import OUTCOMES
from engine.counters import day_of as day_of
from engine.delegation.manager import SUBMITTING
from engine.delegation.router import decide
from engine.patterns import Patterns, load_patterns
from engine.redact import redact_tree
from engine.runtime import Running
from engine.state import IDLE, WORKING, SessionState, State
from engine.tasks import waits_for
from engine.throughput import ThroughputView


@dataclass(frozen=True)
class SessionRow:
    name: str
    kind: str
    state: str
    task: str | None
    title: str | None
    account: str | None
    model: str | None
    started: float | None
    last_fail: str | None
    held_until: float | None = None
    account_old: bool = False
    """The agent runs under an account the pool has left (a turn let finish there after a swap)."""
    last_fail_at: float | None = None
    last_fail_cleared: bool = False
    """A task of the session completed after its last failure: the failure is history."""


@dataclass(frozen=True)
class TaskRow:
    key: str
    project: str
    title: str
    priority: str
    created: float
    blocked_since: float | None = None
    waiting_for: str | None = None
    provider: str | None = None
    job: str | None = None
    job_status: str | None = None


@dataclass(frozen=True)
class SwapRow:
    at: float
    from_account: str | None
    to_account: str
    trigger_session: str | None
    pattern: str | None
    snippet: str | None
    sessions_resumed: tuple[str, ...]
    duration: float | None
    sessions_not_resumed: Mapping[str, str] = field(default_factory=dict)
    trigger: str = ""
    """What started it, readable: the pattern's label (`session limit`, `API 429`), or `operator`."""
    fleet: str | None = None
    """With a fleet: `decided for the fleet`, `followed host-1`, or `decided here: …`."""


STOPPED = "stopped"
"""The dispatch a host publishes as it stops cleanly."""


def went_silent(silent: bool, dispatch: str) -> bool:
    """A host older than `fleet.silent_after` that never said it stopped: it died or was cut off."""
    return silent and dispatch != STOPPED


@dataclass(frozen=True)
class PeerRow:
    """A host of the fleet as its last published snapshot shows it."""

    host: str
    age: float  # seconds since it published
    silent: bool  # older than fleet.silent_after
    account: str | None
    dispatch: str
    working: int
    sessions: int
    running: int
    queued: int
    degraded: str | None = None
    detail: tuple[tuple[str, str, str | None], ...] = ()
    """Each of its sessions: (name, state, task or None)."""

    @property
    def lost(self) -> bool:
        return went_silent(self.silent, self.dispatch)


@dataclass(frozen=True)
class FleetView:
    """This host's place in the fleet: joined or not, and every host it sees (itself included)."""

    host: str
    url: str
    state: str  # connecting | connected | unreachable: <why> | stopped
    peers: tuple[PeerRow, ...] = ()
    swaps: int = 0  # swaps the fleet made, whichever host made each


@dataclass(frozen=True)
class Snapshot:
    taken_at: float
    active_account: str | None
    dispatch: str
    accounts: Mapping[str, float | None]
    sessions: tuple[SessionRow, ...]
    inbox: tuple[TaskRow, ...]
    blocked: tuple[TaskRow, ...]
    delegated: tuple[TaskRow, ...]
    swaps: tuple[SwapRow, ...]
    counters: Mapping[str, int] = field(default_factory=dict)
    blocked_warn: float | None = None
    """Seconds after which a blocked task is reported (`watchdog.blocked_warn`)."""
    throughput: ThroughputView | None = None
    swap_target: str | None = None
    """The account a swap would move to at `taken_at` (`next_usable`); None if no other is usable."""
    degraded: str | None = None
    """Why the engine cannot write now (`cannot write state — No space left on device`); None if it can."""
    fleet: FleetView | None = None
    """With a `fleet:` section: the fleet as this host sees it."""
    in_fleet: int = 0
    """With a fleet: this host's tasks the fleet runs now (on any host), back in done/ when they end."""

    @property
    def working(self) -> int:
        return sum(1 for s in self.sessions if s.state == WORKING)

    def today(self, counter: str) -> int:
        """`counter` ("completed", "failed") for the local day of `taken_at`."""
        return self.counters.get(f"{counter}:{day_of(self.taken_at)}", 0)

    @property
    def idle(self) -> int:
        return sum(1 for s in self.sessions if s.state == IDLE)


QueueRows = tuple[tuple[TaskRow, ...], tuple[TaskRow, ...], tuple[TaskRow, ...]]
_rows_cache: list[tuple[q.ScanResult, QueueRows]] = []


def queue_rows(scan: q.ScanResult) -> QueueRows:
    """(inbox, blocked, delegated) rows of a scan, built once per scan: the console asks twice a
    second and a 10,000-task queue costs tens of milliseconds to turn into rows."""
    if _rows_cache and _rows_cache[0][0] is scan:
        return _rows_cache[0][1]
    inbox: list[TaskRow] = []
    blocked: list[TaskRow] = []
    delegated: list[TaskRow] = []
    for task in scan.tasks:
        row = TaskRow(task.key, task.project, task.title, task.priority, task.created)
        if scan.marked(task.key, "delegated"):
            job = sidecars.delegated_job(task)
            pending = job is None or job == SUBMITTING
            delegated.append(
                replace(
                    row,
                    provider=decide(task).provider,
                    job=None if pending else job,
                    job_status="submitting" if pending else "submitted",
                )
            )
        elif scan.marked(task.key, "blocked"):
            since = sidecars.sidecar_since(task, "blocked")
            nowhere = scan.nowhere.get(task.key, ())
            waiting = listed(waits_for(str(d), nowhere) for d in task.depends_on) or listed(
                task.unsafe_depends
            )
            blocked.append(
                TaskRow(task.key, task.project, task.title, task.priority, task.created, since, waiting)
            )
        else:
            inbox.append(row)
    rows: QueueRows = (tuple(inbox), tuple(blocked), tuple(delegated))
    _rows_cache[:] = [(scan, rows)]
    return rows


def build_snapshot(
    config: Config,
    state: State,
    scan: q.ScanResult,
    running: Mapping[str, Running],
    now: float,
    live_sessions: tuple[str, ...] = (),
    jobs: Mapping[str, tuple[str, str | None, str]] | None = None,
    throughput: ThroughputView | None = None,
    degraded: str | None = None,
    fleet: FleetView | None = None,
    patterns: Patterns | None = None,
) -> Snapshot:
    """`jobs`: task key -> (provider, job id, job status) as the delegation reaper last saw them;
    `patterns` name the swaps' triggers (the shipped ones if not given)."""
    names = sorted(set(state.sessions) | set(live_sessions) | set(running))
    sessions: list[SessionRow] = []
    for name in names:
        if not config.is_managed(name):
            continue
        s = state.sessions.get(name)
        run = running.get(name)
        kind = "dedicated" if name in config.dedicated_names else "pool"
        account = run.account if run else _account(kind, s)
        fail = s.last_fail if s else None
        sessions.append(
            SessionRow(
                name=name,
                kind=kind,
                state=s.state if s else IDLE,
                task=run.task.key if run else (s.task if s else None),
                title=run.task.title if run else None,
                account=account,
                model=(run.model if run else None) or (s.model if s else None),
                started=run.started if run else (s.assigned_at if s and s.task else None),
                last_fail=fail.reason if fail else None,
                held_until=s.held_until if s and s.held_until is not None and s.held_until > now else None,
                account_old=account is not None and account != (state.active_account or account),
                last_fail_at=fail.at if fail else None,
                last_fail_cleared=fail is not None and s is not None and (s.last_done or 0.0) > fail.at,
            )
        )
    inbox, blocked, delegated = queue_rows(scan)
    if jobs:
        delegated = tuple(
            replace(row, provider=jobs[row.key][0], job=jobs[row.key][1], job_status=jobs[row.key][2])
            if row.key in jobs
            else row
            for row in delegated
        )
    names_of = patterns or load_patterns()
    swaps = tuple(
        SwapRow(
            w.at,
            w.from_account,
            w.to_account,
            w.trigger_session,
            w.pattern,
            w.snippet,
            tuple(w.sessions_resumed),
            w.duration,
            dict(w.sessions_not_resumed),
            names_of.label(w.pattern),
            w.fleet,
        )
        for w in state.swaps
    )
    target = next_usable(config, state, state.active_account, now)
    return Snapshot(
        taken_at=now,
        active_account=state.active_account,
        dispatch=state.dispatch,
        accounts={
            a.name: (state.accounts[a.name].usable_again_at if a.name in state.accounts else None)
            for a in config.accounts
        },
        sessions=tuple(sessions),
        inbox=inbox,
        blocked=blocked,
        delegated=delegated,
        swaps=swaps,
        counters=dict(state.counters),
        blocked_warn=config.watchdog.blocked_warn,
        throughput=throughput,
        swap_target=target.name if target else None,
        degraded=degraded,
        fleet=fleet,
        in_fleet=scan.published,
    )


def _account(kind: str, s: SessionState | None) -> str | None:
    """The account the agent of a session that runs no task of ours is under. An idle pool session runs
    no agent (its next task starts under the active account); a dedicated session's agent stays under
    the account it was last started or resumed under, and so does a pool session's whose run the state
    records (`cfo status` reads the state without the engine's runs)."""
    if s is None or (kind == "pool" and s.task is None):
        return None
    return s.account


def _time(value: float | None) -> str | None:
    return iso(value) if value is not None else None


def snapshot_json(snap: Snapshot) -> dict[str, Any]:
    """The `cfo status --json` object (DESIGN.md contract keys first), secrets redacted."""
    data: dict[str, Any] = {
        "active_account": snap.active_account,
        "dispatch": snap.dispatch,
        "accounts": {name: {"usable_again_at": _time(at)} for name, at in snap.accounts.items()},
        "sessions": [
            {
                "name": s.name,
                "kind": s.kind,
                "state": s.state,
                "task": s.task,
                "account": s.account,
                "model": s.model,
                "started": _time(s.started),
                "account_old": s.account_old,
                "last_fail": s.last_fail,
                "last_fail_at": _time(s.last_fail_at),
                "last_fail_cleared": s.last_fail_cleared,
                "held_until": _time(s.held_until),
            }
            for s in snap.sessions
        ],
        "queues": {
            "inbox": len(snap.inbox),
            "blocked": len(snap.blocked),
            "delegated": len(snap.delegated),
            **({"in_fleet": snap.in_fleet} if snap.fleet is not None else {}),
        },
        "blocked": [
            {"task": t.key, "waiting_for": t.waiting_for, "since": _time(t.blocked_since)}
            for t in snap.blocked
        ],
        "delegated": [
            {"task": t.key, "provider": t.provider, "job": t.job, "status": t.job_status}
            for t in snap.delegated
        ],
        "swaps": [
            {
                **asdict(w),
                "at": _time(w.at),
                "sessions_resumed": list(w.sessions_resumed),
                "sessions_not_resumed": dict(w.sessions_not_resumed),
            }
            for w in snap.swaps
        ],
        "counters": dict(snap.counters),
        "today": {outcome: snap.today(outcome) for outcome in sorted(OUTCOMES)},
        "swap_target": snap.swap_target,
        "degraded": snap.degraded,
    }
    if snap.fleet is not None:
        data["fleet"] = {
            "host": snap.fleet.host,
            "url": snap.fleet.url,
            "state": snap.fleet.state,
            "swaps": snap.fleet.swaps,
            "hosts": [asdict(p) for p in snap.fleet.peers],
        }
    # A failure reason or a pane snippet may quote a secret; this is what scripts and the status API show.
    return cast(dict[str, Any], redact_tree(data))
