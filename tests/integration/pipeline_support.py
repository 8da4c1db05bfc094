"""Support for engine tests: a workspace on a private tmux socket and a way to run the engine in a test."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from engine.clock import Clock
from engine.config import Config
from engine.config_reader import config_from_dict
from engine.core import Engine
from engine.tmux import LibtmuxClient
from engine.workspace import build_workspace


@dataclass
class Workspace:
    root: Path
    tmux: LibtmuxClient
    data: dict[str, Any]

    @property
    def projects_dir(self) -> Path:
        return self.root / "src"

    def project(self, name: str) -> Path:
        path = self.projects_dir / name
        for folder in ("inbox", "done", "failed"):
            (path / ".agent-queue" / folder).mkdir(parents=True, exist_ok=True)
        return path

    def add_task(self, project: str, task_id: str, body: str, age: float = 0.0, **front: Any) -> Path:
        """Write inbox/<id>.md (written elsewhere, renamed in) with mtime `age` seconds in the past."""
        inbox = self.project(project) / ".agent-queue" / "inbox"
        head = "".join(f"{k}: {json.dumps(v)}\n" for k, v in front.items())
        text = (f"---\n{head}---\n" if head else "") + body + "\n"
        tmp = inbox / f".{task_id}.tmp"
        tmp.write_text(text, encoding="utf-8")
        stamp = time.time() - 60 - age
        import os

        os.utime(tmp, (stamp, stamp))
        final = inbox / f"{task_id}.md"
        tmp.rename(final)
        return final

    def done(self, project: str) -> list[str]:
        return sorted(p.name for p in (self.project(project) / ".agent-queue" / "done").iterdir())

    def failed(self, project: str) -> list[str]:
        return sorted(p.name for p in (self.project(project) / ".agent-queue" / "failed").iterdir())

    def inbox(self, project: str) -> list[str]:
        return sorted(p.name for p in (self.project(project) / ".agent-queue" / "inbox").iterdir())

    def config(self, **overrides: Any) -> Config:
        data = json.loads(json.dumps(self.data))
        for dotted, value in overrides.items():
            node = data
            *path, last = dotted.split("__")
            for key in path:
                node = node.setdefault(key, {})
            node[last] = value
        return config_from_dict(data)

    def events(self) -> list[dict[str, Any]]:
        path = self.root / "state" / "events.jsonl"
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


SIM_STYLES = ("old", "new")


def use_sim_style(style: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Agents started from now on echo prompts the `old` (`> `) or the `new` (`❯ `, the default) way.

    Call it before the test's tmux server starts: its sessions inherit the server's environment.
    """
    if style == "old":
        monkeypatch.setenv("CFO_SIM_STYLE", "old")
    else:
        monkeypatch.delenv("CFO_SIM_STYLE", raising=False)


def make_workspace(root: Path, tmux: LibtmuxClient, agents: int = 2) -> Workspace:
    """The demo's workspace without its tasks, on the test's tmux socket, tuned for quick tests."""
    data = build_workspace(agents, tasks=0, root=root).config
    data["tmux"]["socket_name"] = tmux.socket_name
    data["agent"].update(prompt_timeout="15s", install_stop_hook=False)
    data["tasks"]["settle"] = "50ms"
    data["watcher"]["interval"] = "200ms"
    return Workspace(root=root, tmux=tmux, data=data)


def run_engine(
    engine: Engine,
    until: Callable[[], bool],
    timeout: float = 60.0,
    during: Callable[[], None] | None = None,
) -> None:
    """Run `engine` on a fresh loop until `until()` holds (checked every 50 ms); fail after `timeout`."""
    run_engines([engine], until, timeout, during, what=lambda: f"events: {engine_events(engine)[-8:]}")


def run_engines(
    engines: Sequence[Engine],
    until: Callable[[], bool],
    timeout: float = 60.0,
    during: Callable[[], None] | None = None,
    every: float = 0.05,
    what: Callable[[], str] = lambda: "",
) -> None:
    """Run every engine on one fresh loop (the fleet's tests: one per host) until `until()` holds."""

    async def main() -> None:
        stop = asyncio.Event()
        runners = [asyncio.create_task(e.run(stop)) for e in engines]
        deadline = time.monotonic() + timeout
        try:
            while not until():
                for runner in runners:
                    if runner.done():
                        runner.result()
                        raise AssertionError("an engine stopped by itself")
                if time.monotonic() > deadline:
                    raise AssertionError(f"timed out after {timeout}s; {what()}")
                if during is not None:
                    during()
                await asyncio.sleep(every)
        finally:
            stop.set()
            await asyncio.gather(*runners, return_exceptions=True)

    asyncio.run(main())


def engine_events(engine: Engine) -> list[str]:
    path = engine.config.state_dir / "events.jsonl"
    return [line for line in path.read_text().splitlines()] if path.exists() else []


def new_engine(ws: Workspace, clock: Clock | None = None, **overrides: Any) -> Engine:
    return Engine(ws.config(**overrides), ws.tmux, clock=clock, api_error_backoff=0.2, full_scan=2.0)


def start_headless(ws: Workspace, log: Path | None = None) -> subprocess.Popen[bytes]:
    """`cfo --no-ui` on the workspace's config as a process of its own group, as under systemd."""
    config = ws.root / "config.yaml"
    config.write_text(json.dumps(ws.data), encoding="utf-8")  # JSON is YAML
    return subprocess.Popen(
        [sys.executable, "-m", "cfo_tui.cli", "--no-ui", "--config", str(config)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=(log or ws.root / "engine.log").open("ab"),
        start_new_session=True,
    )
