"""`cfo status --fleet`: every host of the fleet as the server holds it, read straight from NATS (no
engine needed on this host), as text or JSON."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from engine.clock import iso
from engine.config import FleetConfig
from engine.fleet.record import ACCOUNT_KEY, AccountRecord, HostView, RecordError, ago
from engine.fleet.worker import FleetUnavailable, buckets, connect, read_hosts, require_nats
from engine.snapshot import went_silent


class FleetStatusError(RuntimeError):
    """The fleet could not be read: one line for the operator."""


async def _read(config: FleetConfig) -> tuple[AccountRecord | None, list[HostView]]:
    from nats.js.errors import KeyNotFoundError

    try:
        nc = await connect(config)
    except Exception as exc:
        raise FleetStatusError(f"fleet: cannot reach {config.url}: {exc}") from None
    try:
        accounts, hosts = await buckets(nc, config)
        try:
            entry = await accounts.get(ACCOUNT_KEY)
            record = AccountRecord.decode(entry.value) if entry.value else None
        except KeyNotFoundError:
            record = None
        return record, await read_hosts(hosts)
    except RecordError as exc:
        raise FleetStatusError(f"fleet: the account record is unreadable: {exc}") from None
    finally:
        await nc.close()


def fleet_status(config: FleetConfig, timeout: float = 10.0) -> dict[str, Any]:
    """The fleet as one JSON-ready mapping; FleetStatusError when it cannot be read."""
    try:
        require_nats()
    except FleetUnavailable as exc:
        raise FleetStatusError(str(exc)) from None
    try:
        record, hosts = asyncio.run(asyncio.wait_for(_read(config), timeout))
    except TimeoutError:
        raise FleetStatusError(f"fleet: {config.url} did not answer within {timeout:g}s") from None
    now = time.time()
    return {
        "url": config.url,
        "host": config.host,
        "account": record.active if record else None,
        "swaps": record.swaps if record else 0,
        "last_change": (
            {"host": record.host, "at": iso(record.at), "reason": record.reason} if record else None
        ),
        "usable_at": {k: iso(v) for k, v in sorted(record.usable_at.items())} if record else {},
        "hosts": [
            {
                "host": h.host,
                "seen": iso(h.at),
                "age": round(h.age(now), 1),
                "silent": h.silent(now, config.silent_after),
                "account": h.account,
                "dispatch": h.dispatch,
                "sessions": h.sessions,
                "running": h.running,
                "queued": h.queued,
                "degraded": h.degraded,
                "version": h.version,
            }
            for h in hosts
        ],
    }


def render_fleet(data: dict[str, Any]) -> str:
    change = data["last_change"]
    lines = [
        f"fleet {data['url']} · this host {data['host']}",
        (
            f"account: {data['account']}   swaps: {data['swaps']}"
            + (f"   last change: {change['host']} at {change['at']} ({change['reason']})" if change else "")
            if data["account"]
            else "account: - (no host has joined yet)"
        ),
    ]
    for name, at in data["usable_at"].items():
        lines.append(f"  {name} usable again at {at}")
    if not data["hosts"]:
        lines.append("no host has published a snapshot")
        return "\n".join(lines)
    rows = [("host", "seen", "account", "dispatch", "working", "running", "queued", "")]
    for h in data["hosts"]:
        working = sum(1 for s in h["sessions"] if s.get("state") == "working")
        note = "SILENT" if went_silent(h["silent"], h["dispatch"]) else ""
        if h["degraded"]:
            note = (note + " degraded: " + h["degraded"]).strip()
        rows.append(
            (
                h["host"],
                ago(h["age"]),
                h["account"] or "-",
                h["dispatch"],
                f"{working}/{len(h['sessions'])}",
                str(h["running"]),
                str(h["queued"]),
                note,
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        cells = [c.ljust(w) for c, w in zip(row, widths, strict=False)]
        lines.append(("  ".join(cells) + "  " + row[-1]).rstrip())
    for h in data["hosts"]:
        for s in h["sessions"]:
            if s.get("task"):
                lines.append(f"  {h['host']}/{s['name']}: {s['task']} ({s.get('account') or '-'})")
    return "\n".join(lines)
