"""What the fleet's hosts share, as data: the account record (which account new runs start under, and when
each exhausted one is usable again) and each host's published snapshot. Pure: no NATS here."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

from engine.snapshot import Snapshot

ACCOUNT_KEY = "accounts"  # the one key of the accounts bucket: one compare-and-set covers it all


class RecordError(ValueError):
    """A value in a fleet bucket is not what this version writes."""


@dataclass(frozen=True)
class AccountRecord:
    """The fleet's account state. `swaps` counts the swaps the fleet made, whichever host made each."""

    active: str
    usable_at: dict[str, float] = field(default_factory=dict)
    host: str = ""  # the host that wrote it
    at: float = 0.0  # when
    reason: str = ""  # why: the quota hit, the operator, prefer_first, a host joining
    swaps: int = 0

    def encode(self) -> bytes:
        return json.dumps(
            {
                "active": self.active,
                "usable_at": self.usable_at,
                "host": self.host,
                "at": self.at,
                "reason": self.reason,
                "swaps": self.swaps,
            },
            sort_keys=True,
        ).encode()

    @classmethod
    def decode(cls, raw: bytes) -> AccountRecord:
        try:
            data = json.loads(raw)
        except ValueError as exc:
            raise RecordError(f"not JSON: {exc}") from None
        if not isinstance(data, dict) or not isinstance(data.get("active"), str) or not data["active"]:
            raise RecordError("no active account")
        usable = data.get("usable_at", {})
        if not isinstance(usable, dict) or not all(
            isinstance(k, str) and _number(v) for k, v in usable.items()
        ):
            raise RecordError("usable_at is not a mapping of account names to times")
        swaps = data.get("swaps", 0)
        return cls(
            active=data["active"],
            usable_at={k: float(v) for k, v in usable.items()},
            host=str(data.get("host", "")),
            at=float(data["at"]) if _number(data.get("at")) else 0.0,
            reason=str(data.get("reason", "")),
            swaps=swaps if isinstance(swaps, int) and not isinstance(swaps, bool) else 0,
        )


def _number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def ago(seconds: float) -> str:
    """How long ago a host last published, as a person reads it."""
    if seconds < 90:
        return f"{seconds:.0f}s ago"
    if seconds < 5400:
        return f"{seconds / 60:.0f}m ago"
    return f"{seconds / 3600:.1f}h ago"


def why(exc: BaseException) -> str:
    """One short line for a failed call to the server."""
    text = str(exc).strip()
    name = type(exc).__name__
    if isinstance(exc, TimeoutError) or "Timeout" in name:
        return "timed out"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if "NoServers" in name or isinstance(exc, OSError):
        return text or "no server answered"
    return f"{name}: {text}" if text else name


def merged_usable(*sources: dict[str, float], now: float) -> dict[str, float]:
    """Every account's latest known "usable again at" still in the future: a limit one host saw holds for
    every host; one that has passed is history."""
    merged: dict[str, float] = {}
    for source in sources:
        for name, at in source.items():
            if at > now and at > merged.get(name, 0.0):
                merged[name] = at
    return merged


@dataclass(frozen=True)
class HostView:
    """One host as the fleet sees it: its last snapshot and how old it is."""

    host: str
    at: float
    account: str | None
    dispatch: str
    sessions: list[dict[str, Any]]
    queued: int
    running: int
    degraded: str | None
    version: str = ""

    def age(self, now: float) -> float:
        return max(0.0, now - self.at)

    def silent(self, now: float, silent_after: float) -> bool:
        return self.age(now) > silent_after

    def encode(self) -> bytes:
        return json.dumps(self.__dict__, sort_keys=True).encode()

    @classmethod
    def decode(cls, raw: bytes) -> HostView:
        try:
            data = json.loads(raw)
            return cls(
                host=str(data["host"]),
                at=float(data["at"]),
                account=data.get("account"),
                dispatch=str(data.get("dispatch", "")),
                sessions=list(data.get("sessions", [])),
                queued=int(data.get("queued", 0)),
                running=int(data.get("running", 0)),
                degraded=data.get("degraded"),
                version=str(data.get("version", "")),
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise RecordError(f"not a host snapshot: {exc}") from None


def host_view(host: str, snapshot: Snapshot, at: float, version: str = "") -> HostView:
    """What this host publishes of its snapshot: enough for `cfo status --fleet` and the Fleet pane."""
    sessions = [
        {"name": s.name, "state": s.state, "task": s.task, "account": s.account} for s in snapshot.sessions
    ]
    return HostView(
        host=host,
        at=at,
        account=snapshot.active_account,
        dispatch=snapshot.dispatch,
        sessions=sessions,
        queued=len(snapshot.inbox),
        running=sum(1 for s in snapshot.sessions if s.task),
        degraded=snapshot.degraded,
        version=version,
    )
