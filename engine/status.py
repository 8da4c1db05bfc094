"""`cfo status`: the persisted state and the queues, read without a running engine."""

from __future__ import annotations

import time
from typing import Any

from engine import queue as q
from engine.config import Config
from engine.lock import degraded_note
from engine.redact import protect
from engine.safetext import visible
from engine.snapshot import build_snapshot, snapshot_json
from engine.state import StateStore


def status_dict(config: Config) -> dict[str, Any]:
    protect(config)  # a state file an older cfo wrote may still hold a secret
    state = StateStore(config.state_dir).load()
    dedicated = {d.project.name: d.project for d in config.pool.dedicated}
    projects = q.discover_projects(config.projects_dir, dedicated)
    scan = q.Queue(max_bytes=config.tasks.max_bytes, settle=0.0).scan(projects)
    degraded = degraded_note(config.state_dir)  # the running engine's word: its state file may be stale
    return snapshot_json(build_snapshot(config, state, scan, {}, time.time(), degraded=degraded))


def render_status(data: dict[str, Any]) -> str:
    """A short human summary of `status_dict`."""
    queues = data["queues"]
    lines = [f"degraded: {data['degraded']}"] if data.get("degraded") else []
    lines += [
        f"account: {data['active_account'] or '-'}   dispatch: {data['dispatch']}",
        f"queues: inbox {queues['inbox']}  blocked {queues['blocked']}  delegated {queues['delegated']}",
        f"today: done {data['today']['completed']}  failed {data['today']['failed']}",
    ]
    for s in data["sessions"]:
        held = f"held until {s['held_until']} after a failed launch" if s.get("held_until") else ""
        lines.append(f"  {s['name']:<24} {s['kind']:<9} {s['state']:<10} {s['task'] or held}")
    for job in data.get("delegated", []):
        lines.append(f"  delegated {job['task']:<30} {job['provider'] or '':<11} {job['status'] or ''}")
    if data["swaps"]:
        last = data["swaps"][-1]
        lines.append(f"last swap: {last['at']} {last['from_account']} -> {last['to_account']}")
    return "\n".join(visible(line) for line in lines)
