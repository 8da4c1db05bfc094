"""One queue across hosts: task files dropped on one host run on every host, each once, and every outcome
lands in the done/ of the host the task came from, with its footer naming the host that ran it."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import time
from pathlib import Path

import pytest

from engine.core import Engine
from engine.fleet.queue import TaskMessage, task_subject
from engine.footers import read_footer
from engine.tmux import LibtmuxClient
from tests.fleet.hosts import host_engine, joined, make_host, once_joined
from tests.fleet.natsserver import NatsServer
from tests.helpers import drop_killed_engine_lock
from tests.integration.pipeline_support import Workspace, run_engines, start_headless

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
    out: list[int] = []  # host 1's tasks the fleet runs, as its snapshot shows them

    def queue() -> None:
        for name in names:
            one.add_task("web", name, f"Task {name}\nsim: work 1s\nsim: append {ran} {name}")

    queue_once_both_joined = once_joined([e1, e2], queue)

    def queue_then_count() -> None:
        queue_once_both_joined()
        out.append(e1.snapshot().in_fleet)

    run_engines(
        [e1, e2],
        # Every outcome home: a task run on its origin is in done/ a moment before its outcome has landed.
        lambda: one.done("web") == sorted(f"{n}.md" for n in names) and one.inbox("web") == [],
        timeout=90,
        during=queue_then_count,
    )
    assert 0 < max(out) <= len(names)  # shown while out (none is left: the inbox is empty below)
    assert sorted(ran.read_text().split()) == names  # each side effect once
    hosts = done_hosts(one, "web")
    assert set(hosts.values()) == {"host-1", "host-2"}, hosts  # both hosts ran some
    assert two.done("web") == [] and one.inbox("web") == [] and two.inbox("web") == []
    ran_on = {str(e["task"]) for e in events(e1, "completed")} | {
        str(e["task"]) for e in events(e2, "completed")
    }
    assert ran_on == {f"web:{n}" for n in names}
    assert len(events(e1, "completed")) + len(events(e2, "completed")) == len(names)  # each run once


def ran_order(path: Path) -> list[str]:
    return path.read_text().split() if path.exists() else []


def test_a_critical_task_published_after_low_ones_runs_first_on_another_host(
    tmp_path: Path, tmux: LibtmuxClient, tmux2: LibtmuxClient, nats_server: NatsServer
) -> None:
    one = make_host(tmp_path / "one", tmux, nats_server.url, "host-1")
    two = make_host(tmp_path / "two", tmux2, nats_server.url, "host-2")
    two.project("web")
    e1, e2 = host_engine(one), host_engine(two)
    e1.pause_dispatch()  # host 1 only publishes: every task runs on host 2, one at a time
    e2.pause_dispatch()
    ran = tmp_path / "ran.log"
    published = one.project("web") / ".agent-queue" / "inbox"
    steps: list[str] = []

    def lows_then_critical_then_go() -> None:
        if not steps and joined(e1, 2) and joined(e2, 2):
            steps.append("lows")
            for n, age in ((1, 30.0), (2, 20.0), (3, 10.0)):
                one.add_task(
                    "web",
                    f"low{n}",
                    f"Low {n}\nsim: append {ran} low{n}\nsim: work 200ms",
                    age=age,
                    priority="low",
                )
        elif steps == ["lows"] and len(list(published.glob("low*.md.published"))) == 3:
            steps.append("critical")
            one.add_task(
                "web", "urgent", f"Urgent\nsim: append {ran} urgent\nsim: work 200ms", priority="critical"
            )
        elif steps == ["lows", "critical"] and (published / "urgent.md.published").exists():
            steps.append("go")
            e2.resume_dispatch()

    run_engines([e1, e2], lambda: len(one.done("web")) == 4, timeout=60, during=lows_then_critical_then_go)
    assert ran_order(ran) == ["urgent", "low1", "low2", "low3"]
    assert set(done_hosts(one, "web").values()) == {"host-2"}


def test_the_same_file_published_twice_runs_once(
    tmp_path: Path, tmux: LibtmuxClient, nats_server: NatsServer
) -> None:
    one = make_host(tmp_path / "one", tmux, nats_server.url, "host-1")
    e1 = host_engine(one)
    e1.pause_dispatch()
    ran = tmp_path / "ran.log"
    task = one.add_task("web", "once", f"Once\nsim: append {ran} once\nsim: work 200ms")
    text = task.read_bytes()
    published = task.with_name("once.md.published")
    run_engines([e1], published.exists, timeout=30)

    # A crash between the publish and the rename leaves the file in the inbox: it is published again at
    # the next start. And the same task published once more after the server's duplicate window.
    task.write_bytes(text)
    asyncio.run(publish_again(nats_server.url, text))
    e1 = host_engine(one)
    seen: dict[str, float] = {}

    def go_once_joined() -> None:
        if "go" not in seen and joined(e1, 1) and not task.exists():
            seen["go"] = time.monotonic()
            e1.resume_dispatch()
        if "done" not in seen and one.done("web"):
            seen["done"] = time.monotonic()

    # Past the run, long enough for a second delivery of either message to be taken.
    run_engines(
        [e1], lambda: time.monotonic() - seen.get("done", 1e12) > 3.0, timeout=60, during=go_once_joined
    )
    assert ran_order(ran) == ["once"]
    assert one.done("web") == ["once.md"] and one.inbox("web") == []
    assert len(events(e1, "completed")) == 1


async def publish_again(url: str, text: bytes) -> None:
    import nats

    nc = await nats.connect(url)
    try:
        message = TaskMessage("host-1", "web", "once", "default", time.time())
        headers = {**message.headers(text), "Nats-Msg-Id": "published again after the window"}
        await nc.jetstream().publish(task_subject("cfo", "web", "default"), text, headers=headers)
    finally:
        await nc.close()


def test_a_host_killed_mid_task_has_it_finished_by_another_after_the_takeover(
    tmp_path: Path,
    tmux: LibtmuxClient,
    tmux2: LibtmuxClient,
    nats_server: NatsServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="engine.fleet")
    one = make_host(tmp_path / "one", tmux, nats_server.url, "host-1", ack_wait="2s", takeover_after="3s")
    two = make_host(tmp_path / "two", tmux2, nats_server.url, "host-2", ack_wait="2s", takeover_after="3s")
    two.project("web")
    proc = start_headless(two)  # host 2 is a process of its own: it can die
    e1 = host_engine(one)
    e1.pause_dispatch()  # until host 2 has the task
    ran = tmp_path / "ran.log"
    steps: list[str] = []

    def on_host_2() -> bool:
        fleet = e1.fleet
        return fleet is not None and any(
            p.host == "host-2" and any(s.get("task") == "web:long" for s in p.sessions) for p in fleet.peers
        )

    def drop_then_kill_host_2() -> None:
        if not steps and joined(e1, 2):
            steps.append("dropped")
            one.add_task("web", "long", f"Long work\nsim: work 4s\nsim: append {ran} long")
        elif steps == ["dropped"] and on_host_2():
            steps.append("killed")
            os.killpg(proc.pid, signal.SIGKILL)  # the engine dies, and its agent with its tmux server
            tmux2.kill_server()
            proc.wait(timeout=10)
            e1.resume_dispatch()

    try:
        run_engines([e1], lambda: one.done("web") == ["long.md"], timeout=60, during=drop_then_kill_host_2)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        drop_killed_engine_lock(tmux2.socket_name)
    assert steps == ["dropped", "killed"]
    assert ran_order(ran) == ["long"]  # the side effect once: host 2's agent died before it
    assert done_hosts(one, "web") == {"long.md": "host-1"}
    assert any("web:long taken over from host-2" in r.getMessage() for r in caplog.records)


def test_a_server_restart_while_tasks_flow_loses_nothing_and_runs_nothing_twice(
    tmp_path: Path, tmux: LibtmuxClient, tmux2: LibtmuxClient, nats_server: NatsServer
) -> None:
    one = make_host(tmp_path / "one", tmux, nats_server.url, "host-1")
    two = make_host(tmp_path / "two", tmux2, nats_server.url, "host-2")
    two.project("web")
    e1, e2 = host_engine(one), host_engine(two)
    ran = tmp_path / "ran.log"
    names = [f"t{i}" for i in range(6)]
    steps: dict[str, float] = {}

    def queue_then_restart_the_server() -> None:
        if not steps and joined(e1, 2) and joined(e2, 2):
            steps["queued"] = time.monotonic()
            for name in names:
                one.add_task("web", name, f"Task {name}\nsim: work 1500ms\nsim: append {ran} {name}")
        elif "down" not in steps and one.done("web"):
            steps["down"] = time.monotonic()
            nats_server.stop()
        elif "down" in steps and "up" not in steps and time.monotonic() - steps["down"] > 2.0:
            steps["up"] = time.monotonic()
            nats_server.start()

    run_engines(
        [e1, e2],
        lambda: one.done("web") == sorted(f"{n}.md" for n in names),
        timeout=90,
        during=queue_then_restart_the_server,
    )
    assert "up" in steps
    assert sorted(ran_order(ran)) == names  # nothing lost, nothing run twice
    completed = events(e1, "completed") + events(e2, "completed")
    assert sorted(str(e["task"]) for e in completed) == [f"web:{n}" for n in names]


def test_a_host_cut_off_finishes_what_it_has_works_alone_and_sends_the_outcome_once_back(
    tmp_path: Path, tmux: LibtmuxClient, tmux2: LibtmuxClient, nats_server: NatsServer
) -> None:
    one = make_host(tmp_path / "one", tmux, nats_server.url, "host-1")
    two = make_host(tmp_path / "two", tmux2, nats_server.url, "host-2")
    two.project("web")
    e1, e2 = host_engine(one), host_engine(two)
    e1.pause_dispatch()  # host 1 only publishes
    ran = tmp_path / "ran.log"
    steps: list[str] = []
    held: list[int] = []

    def taken_by_host_2() -> bool:
        return e2.fleet is not None and "web:far" in e2.fleet.tasks.ledger.imports

    def cut_off_then_back() -> None:
        assert e2.fleet is not None
        outbox = e2.fleet.tasks.ledger.outbox
        if not steps and joined(e1, 2) and joined(e2, 2):
            steps.append("dropped")
            one.add_task("web", "far", f"Far\nsim: work 1500ms\nsim: append {ran} far")
        elif steps == ["dropped"] and taken_by_host_2():
            steps.append("down")
            nats_server.stop()
            two.add_task("api", "alone", f"Alone\nsim: append {ran} alone")  # host 2's own, while cut off
        elif steps == ["dropped", "down"] and outbox and two.done("api") == ["alone.md"]:
            steps.append("up")
            held.append(len(outbox))
            saved = json.loads((two.root / "state" / "fleet-tasks.json").read_text())
            held.append(len(saved["outbox"]))  # on disk, not only in memory
            nats_server.start()

    run_engines(
        [e1, e2],
        lambda: one.done("web") == ["far.md"] and e2.fleet is not None and not e2.fleet.tasks.ledger.outbox,
        timeout=60,
        during=cut_off_then_back,
        what=lambda: (
            f"steps {steps}, outbox {e2.fleet and e2.fleet.tasks.ledger}, done {one.done('web')} "
            f"{two.done('api')}, inbox {one.inbox('web')} {two.inbox('web')} {two.inbox('api')}, "
            f"states {e1.fleet and e1.fleet.state} {e2.fleet and e2.fleet.state}"
        ),
    )
    assert steps == ["dropped", "down", "up"] and held == [1, 1]
    assert one.done("web") == ["far.md"] and done_hosts(one, "web") == {"far.md": "host-2"}
    assert sorted(ran_order(ran)) == ["alone", "far"]


def test_a_task_waits_for_its_dependency_to_be_done_fleet_wide(
    tmp_path: Path, tmux: LibtmuxClient, tmux2: LibtmuxClient, nats_server: NatsServer
) -> None:
    one = make_host(tmp_path / "one", tmux, nats_server.url, "host-1")
    two = make_host(tmp_path / "two", tmux2, nats_server.url, "host-2")
    two.project("web")
    e1, e2 = host_engine(one), host_engine(two)
    ran = tmp_path / "ran.log"

    def queue() -> None:
        one.add_task("web", "first", f"First\nsim: work 2s\nsim: append {ran} first", age=10.0)
        one.add_task("web", "second", f"Second\nsim: append {ran} second", depends_on=["web:first"])

    run_engines(
        [e1, e2],
        # Every outcome home: a task run on its origin is in done/ a moment before its outcome has landed.
        lambda: len(one.done("web")) == 2 and one.inbox("web") == [],
        timeout=60,
        during=once_joined([e1, e2], queue),
    )
    assert ran_order(ran) == ["first", "second"]  # two hosts were free: the second waited for the first
    assert one.inbox("web") == [] and two.inbox("web") == []


def test_claim_records_are_kept_a_week_not_for_ever(
    tmp_path: Path, tmux: LibtmuxClient, nats_server: NatsServer
) -> None:
    one = make_host(tmp_path / "one", tmux, nats_server.url, "host-1")
    e1 = host_engine(one)
    run_engines([e1], lambda: joined(e1, 1), timeout=30)

    async def bucket_ttl() -> float | None:
        import nats

        nc = await nats.connect(nats_server.url)
        try:
            status = await (await nc.jetstream().key_value("cfo_tasks")).status()
            return status.ttl
        finally:
            await nc.close()

    assert asyncio.run(bucket_ttl()) == 7 * 86400.0
