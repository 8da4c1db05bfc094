"""Engines standing for the fleet's hosts: each on its own workspace and private tmux server, all on one
asyncio loop in the test's process (or as `cfo --no-ui` processes, where a host must die)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from engine.core import Engine
from engine.tmux import LibtmuxClient
from tests.integration.pipeline_support import Workspace, make_workspace, new_engine


def make_host(
    root: Path, tmux: LibtmuxClient, url: str, host: str, agents: int = 1, **fleet: Any
) -> Workspace:
    ws = make_workspace(root, tmux, agents=agents)
    ws.data["pool"]["autonomous"].update(min=agents, max=agents)
    ws.data["fleet"] = {"url": url, "host": host, "heartbeat": "200ms", "silent_after": "2s", **fleet}
    return ws


def host_engine(ws: Workspace, **overrides: Any) -> Engine:
    return new_engine(ws, **overrides)


def joined(engine: Engine, hosts: int) -> bool:
    """The engine is in the fleet and sees `hosts` hosts."""
    fleet = engine.fleet
    return fleet is not None and fleet.state == "connected" and len(fleet.peers) >= hosts


def once_joined(engines: Sequence[Engine], then: Callable[[], None]) -> Callable[[], None]:
    """A `during` hook for run_engines: `then()` once, as soon as every engine is in the fleet and sees
    them all."""
    done: list[bool] = []

    def hook() -> None:
        if not done and all(joined(e, len(engines)) for e in engines):
            done.append(True)
            then()

    return hook
