"""`cfo status`: the persisted state and the queues, read without a running engine."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any, Protocol

from engine import queue as q
from engine.bounded import LIST_SHOWN
from engine.clock import iso
from engine.config import Config
from engine.lock import degraded_note, engine_pid
from engine.redact import protect
from engine.safetext import visible
from engine.snapshot import STOPPED, build_snapshot, snapshot_json, went_silent
from engine.state import StateStore
from engine.tasks import DoneListing, resolve_dependencies
from engine.tmux import TmuxError, client_for


class SessionLister(Protocol):
    """All `cfo status` asks of tmux (a TmuxClient is one)."""

    def list_sessions(self) -> list[str]: ...


def status_dict(config: Config, tmux: SessionLister | None = None) -> dict[str, Any]:
    """The `cfo status --json` object, plus `engine` (is one running on this state_dir, its pid, when the
    state was last saved). With no engine running the state file is history: only the sessions tmux
    still has are listed. `tmux` defaults to the config's server."""
    protect(config)  # a state file an older cfo wrote may still hold a secret
    state = StateStore(config.state_dir).load()
    dedicated = {d.project.name: d.project for d in config.pool.dedicated}
    projects = q.discover_projects(config.projects_dir, dedicated)
    scan = q.Queue(max_bytes=config.tasks.max_bytes, settle=0.0).scan(projects)
    scan = replace(scan, nowhere=_nowhere(scan, config.projects_dir, projects))
    pid = engine_pid(config.state_dir)
    degraded = degraded_note(config.state_dir)  # the running engine's word: its state file may be stale
    snap = build_snapshot(config, state, scan, {}, time.time(), degraded=degraded)
    if pid is None:
        live = set(_live_sessions(config, tmux))
        snap = replace(snap, sessions=tuple(s for s in snap.sessions if s.name in live))
    data = snapshot_json(snap)
    if config.fleet is not None:
        data["queues"]["in_fleet"] = scan.published
        data["fleet"] = _fleet(config)
    data["engine"] = {
        "running": pid is not None,
        "pid": pid or None,
        "state_saved_at": iso(state.saved_at) if state.saved_at is not None else None,
    }
    return data


def _fleet(config: Config) -> dict[str, Any]:
    """This host in the fleet, read from the server: joined while its own snapshot there is fresh."""
    from engine.fleet.status import FleetStatusError, fleet_status

    fleet = config.fleet
    assert fleet is not None
    out: dict[str, Any] = {"url": fleet.url, "host": fleet.host}
    try:
        seen = fleet_status(fleet, timeout=5.0)
    except FleetStatusError as exc:
        return {**out, "state": f"unreachable: {exc}", "hosts": []}
    mine = next((h for h in seen["hosts"] if h["host"] == fleet.host), None)
    joined = mine is not None and not mine["silent"] and mine["dispatch"] != STOPPED
    return {
        **out,
        "state": "joined" if joined else "not joined (no fresh snapshot of this host)",
        "account": seen["account"],
        "hosts": [
            {k: h[k] for k in ("host", "seen", "silent", "dispatch", "running")} for h in seen["hosts"]
        ],
    }


def _nowhere(
    scan: q.ScanResult, projects_dir: Path | None, projects: Mapping[str, Path]
) -> dict[str, tuple[str, ...]]:
    """Blocked task key -> its dependencies that no queue holds, as the dispatcher would find them."""
    listing = DoneListing()
    found: dict[str, tuple[str, ...]] = {}
    for task in scan.tasks:
        if scan.marked(task.key, "blocked") and not scan.marked(task.key, "delegated"):
            nowhere = resolve_dependencies(task, projects_dir, projects, listing).nowhere
            if nowhere:
                found[task.key] = nowhere
    return found


def _live_sessions(config: Config, tmux: SessionLister | None) -> list[str]:
    try:
        return (tmux or client_for(config)).list_sessions()
    except TmuxError:
        return []  # no tmux at all: no session is left


def render_status(data: dict[str, Any]) -> str:
    """A short human summary of `status_dict`."""
    queues = data["queues"]
    engine = data.get("engine") or {"running": True}
    lines = [f"degraded: {data['degraded']}"] if data.get("degraded") else []
    if engine["running"]:
        lines.append(f"account: {data['active_account'] or '-'}   dispatch: {data['dispatch']}")
    else:
        saved = engine.get("state_saved_at")
        lines.append(
            f"no engine is running (last state from {saved})"
            if saved
            else "no engine is running (no state yet)"
        )
        paused = "   dispatch was paused" if data["dispatch"] == "paused" else ""
        lines.append(f"account: {data['active_account'] or '-'}{paused}")
    fleet = data.get("fleet")
    if fleet is not None:
        silent = [h["host"] for h in fleet["hosts"] if went_silent(h["silent"], h["dispatch"])]
        hosts = f" · {len(fleet['hosts'])} host(s)" + (f", silent: {', '.join(silent)}" if silent else "")
        lines.append(
            f"fleet: {fleet['host']} {fleet['state']} at {fleet['url']}{hosts if fleet['hosts'] else ''}"
        )
    in_fleet = f"  in the fleet {queues['in_fleet']}" if "in_fleet" in queues else ""
    lines.append(
        f"queues: inbox {queues['inbox']}  blocked {queues['blocked']}  delegated {queues['delegated']}"
        + in_fleet
    )
    lines.append(f"today: done {data['today']['completed']}  failed {data['today']['failed']}")
    for s in data["sessions"]:
        held = f"held until {s['held_until']} after a failed launch" if s.get("held_until") else ""
        lines.append(f"  {s['name']:<24} {s['kind']:<9} {s['state']:<10} {s['task'] or held}")
    if not engine["running"] and not data["sessions"]:
        lines.append("  (tmux has no cfo session)")
    blocked = data.get("blocked", [])
    for row in blocked[:LIST_SHOWN]:
        lines.append(f"  blocked {row['task']}: waits for {row['waiting_for']}")
    if len(blocked) > LIST_SHOWN:
        lines.append(f"  … and {len(blocked) - LIST_SHOWN:,} more blocked")
    for job in data.get("delegated", []):
        lines.append(f"  delegated {job['task']:<30} {job['provider'] or '':<11} {job['status'] or ''}")
    if data["swaps"]:
        last = data["swaps"][-1]
        lines.append(f"last swap: {last['at']} {last['from_account']} -> {last['to_account']}")
    return "\n".join(visible(line) for line in lines)
