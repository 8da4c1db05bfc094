"""One queue across hosts: task files dropped on one host run on every host, each once, and every outcome
lands in the done/ of the host the task came from, with its footer naming the host that ran it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.core import Engine
from engine.footers import read_footer
from engine.tmux import LibtmuxClient
from tests.fleet.hosts import host_engine, joined, make_host
from tests.fleet.natsserver import NatsServer
from tests.integration.pipeline_support import Workspace, run_engines

pytestmark = pytest.mark.integration


def events(engine: Engine, kind: str) -> list[dict[str, object]]:
    path = engine.config.state_dir / "events.jsonl"
    lines = path.read_text().splitlines() if path.exists() else []
    return [e for e in map(json.loads, lines) if e["type"] == kind]


def done_hosts(ws: Workspace, project: str) -> dict[str, str]:
    """Task file -> the host its footer names, for every file in the project's done/."""
    done = ws.project(project) / ".agent-queue" / "done"
    return {p.name: str((read_footer(p) or {}).get("host")) for p in sorted(done.iterdir())}


def test_tasks_dropped_on_one_host_run_on_both_each_once_and_land_at_their_origin(
    tmp_path: Path, tmux: LibtmuxClient, tmux2: LibtmuxClient, nats_server: NatsServer
) -> None:
    one = make_host(tmp_path / "one", tmux, nats_server.url, "host-1")
    two = make_host(tmp_path / "two", tmux2, nats_server.url, "host-2")
    two.project("web")  # host 2 has the project checked out too
    e1, e2 = host_engine(one), host_engine(two)
    ran = tmp_path / "ran.log"
    names = [f"t{i}" for i in range(6)]
    queued: list[bool] = []

    def queue_once_both_joined() -> None:
        if not queued and joined(e1, 2) and joined(e2, 2):
            queued.append(True)
            for name in names:
                one.add_task("web", name, f"Task {name}\nsim: work 1s\nsim: append {ran} {name}")

    run_engines(
        [e1, e2],
        lambda: one.done("web") == sorted(f"{n}.md" for n in names),
        timeout=90,
        during=queue_once_both_joined,
    )
    assert sorted(ran.read_text().split()) == names  # each side effect once
    hosts = done_hosts(one, "web")
    assert set(hosts.values()) == {"host-1", "host-2"}, hosts  # both hosts ran some
    assert two.done("web") == [] and one.inbox("web") == [] and two.inbox("web") == []
    ran_on = {str(e["task"]) for e in events(e1, "completed")} | {
        str(e["task"]) for e in events(e2, "completed")
    }
    assert ran_on == {f"web:{n}" for n in names}
    assert len(events(e1, "completed")) + len(events(e2, "completed")) == len(names)  # each run once
