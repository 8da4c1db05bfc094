"""What the status API serves: the engine's snapshot, delegation and watchdog views, Prometheus metrics."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import replace
from typing import Any, Protocol

from engine.clock import iso
from engine.config import Config
from engine.delegation.manager import DelegationManager
from engine.snapshot import Snapshot, snapshot_json
from engine.state import SESSION_STATES, STALLED
from engine.statusapi import Metric, render_metrics
from engine.watchdog import Watchdog


class Engine(Protocol):
    """What the views read of the engine."""

    @property
    def config(self) -> Config: ...

    @property
    def delegation(self) -> DelegationManager | None: ...

    @property
    def watchdog(self) -> Watchdog: ...

    def snapshot(self) -> Snapshot: ...


DELEGATION_COUNTERS = ("submitted", "submit_failed", "fallbacks", "completed", "failed")


def delegated_view(engine: Engine) -> dict[str, Any]:
    """`/delegated` and the seed's `/api/delegated/status`: whether delegation is on, counters, jobs."""
    manager = engine.delegation
    snap = engine.snapshot()
    counters = dict(manager.counters) if manager else dict.fromkeys(DELEGATION_COUNTERS, 0)
    return {
        "enabled": manager is not None,
        "active": len(snap.delegated),
        "counters": counters,
        "jobs": [
            {"task": t.key, "provider": t.provider, "job": t.job, "status": t.job_status, "title": t.title}
            for t in snap.delegated
        ],
    }


def watchdog_view(engine: Engine) -> dict[str, Any]:
    """`/watchdog` and the seed's `/watchdog/status`: stalled sessions, blocked tasks, counters."""
    snap = engine.snapshot()
    dog = engine.watchdog
    limits = engine.config.watchdog
    now = time.time()
    stalled = []
    for row in snap.sessions:
        since = dog.stalled_since(row.name)
        if row.state == STALLED or since is not None:
            stalled.append({"session": row.name, "task": row.task, "quiet_since": _at(since)})
    blocked = [
        {
            "task": t.key,
            "waiting_for": t.waiting_for,
            "since": _at(t.blocked_since),
            "warned": t.blocked_since is not None and now - t.blocked_since >= limits.blocked_warn,
        }
        for t in snap.blocked
    ]
    return {
        "limits": {
            "blocked_warn_s": limits.blocked_warn,
            "blocked_fail_s": limits.blocked_fail,
            "stalled_after_s": limits.stalled_after,
        },
        "stalled": stalled,
        "blocked": blocked,
        "counters": dict(dog.counters),
    }


def metrics_text(engine: Engine) -> str:
    snap = engine.snapshot()
    families = metric_families(snap, engine)
    fleet = engine.config.fleet
    if fleet is not None:  # every host's metrics land in one Prometheus: each sample names its host
        families = [
            replace(f, samples=[({**labels, "host": fleet.host}, v) for labels, v in f.samples])
            for f in [*families, *fleet_families(snap)]
        ]
    return render_metrics(families)


def fleet_families(snap: Snapshot) -> list[Metric]:
    fleet = snap.fleet
    if fleet is None:
        return []
    silent = sum(1 for p in fleet.peers if p.lost)
    return [
        Metric(
            "fleet_connected",
            "1 while this host is in the fleet.",
            "gauge",
            [({}, float(fleet.state == "connected"))],
        ),
        Metric(
            "fleet_hosts",
            "Hosts this host sees in the fleet, by whether they still publish.",
            "gauge",
            [({"seen": "live"}, len(fleet.peers) - silent), ({"seen": "silent"}, silent)],
        ),
        Metric(
            "fleet_swaps", "Swaps the fleet made, whichever host made each.", "counter", [({}, fleet.swaps)]
        ),
    ]


def metric_families(snap: Snapshot, engine: Engine) -> list[Metric]:
    states = Counter(s.state for s in snap.sessions)
    known = [*SESSION_STATES, *sorted(set(states) - set(SESSION_STATES))]
    lifetime = {k: v for k, v in snap.counters.items() if ":" not in k}
    families = [
        Metric(
            "sessions",
            "Managed tmux sessions by state.",
            "gauge",
            [({"state": state}, states.get(state, 0)) for state in known],
        ),
        Metric(
            "queue_tasks",
            "Pending tasks by queue.",
            "gauge",
            [
                ({"queue": "inbox"}, len(snap.inbox)),
                ({"queue": "blocked"}, len(snap.blocked)),
                ({"queue": "delegated"}, len(snap.delegated)),
            ],
        ),
        Metric(
            "tasks",
            "Tasks finished since the state was created, by outcome.",
            "counter",
            [({"outcome": k}, lifetime.get(k, 0)) for k in ("completed", "failed")],
        ),
        Metric("swaps", "Account swaps in the kept history.", "counter", [({}, len(snap.swaps))]),
        Metric("dispatch_paused", "1 while paused.", "gauge", [({}, float(snap.dispatch == "paused"))]),
        Metric(
            "account_active",
            "1 for the account the pool runs on.",
            "gauge",
            [({"account": name}, float(name == snap.active_account)) for name in snap.accounts],
        ),
        Metric(
            "account_usable_again_seconds",
            "Seconds until an exhausted account is usable again (0 when usable).",
            "gauge",
            [({"account": n}, max(0.0, (at or 0.0) - snap.taken_at)) for n, at in snap.accounts.items()],
        ),
        Metric(
            "watchdog_events",
            "Watchdog findings since start.",
            "counter",
            [({"kind": k}, v) for k, v in sorted(engine.watchdog.counters.items())],
        ),
    ]
    manager = engine.delegation
    if manager is not None:
        families.append(
            Metric(
                "delegation_events",
                "Delegation outcomes since start.",
                "counter",
                [({"kind": k}, v) for k, v in sorted(manager.counters.items())],
            )
        )
    return families


def routes(engine: Engine) -> dict[str, Callable[[], object]]:
    def status() -> object:
        return snapshot_json(engine.snapshot())

    return {
        "/status": status,
        "/delegated": lambda: delegated_view(engine),
        "/api/delegated/status": lambda: delegated_view(engine),
        "/watchdog": lambda: watchdog_view(engine),
        "/watchdog/status": lambda: watchdog_view(engine),
    }


def _at(ts: float | None) -> str | None:
    return iso(ts) if ts is not None else None
