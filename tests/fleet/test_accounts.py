"""One account state across hosts: a swap decided on one host is followed by every other within seconds,
two hosts hitting the limit at once make one swap, and a fleet that cannot be reached stops no local work."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import pytest

from engine.core import Engine
from engine.tmux import LibtmuxClient
from tests.fleet.hosts import host_engine, joined, make_host, once_joined
from tests.fleet.natsserver import NatsServer
from tests.helpers import free_port
from tests.integration.pipeline_support import run_engines

pytestmark = pytest.mark.integration

LIMIT = 'sim: quota "You\'ve hit your limit · resets 3am"'


def events(engine: Engine, kind: str) -> list[dict[str, object]]:
    path = engine.config.state_dir / "events.jsonl"
    lines = path.read_text().splitlines() if path.exists() else []
    return [e for e in map(json.loads, lines) if e["type"] == kind]


def swap_events(engine: Engine) -> list[dict[str, object]]:
    return events(engine, "swap")


def test_a_limit_on_one_host_moves_every_host_to_the_next_account_with_one_swap(
    tmp_path: Path, tmux: LibtmuxClient, tmux2: LibtmuxClient, nats_server: NatsServer
) -> None:
    one = make_host(tmp_path / "one", tmux, nats_server.url, "host-1")
    two = make_host(tmp_path / "two", tmux2, nats_server.url, "host-2")
    e1, e2 = host_engine(one), host_engine(two)
    ran = tmp_path / "ran.log"

    def queue() -> None:
        one.add_task("web", "limited", f"Hits the limit\nsim: work 500ms\n{LIMIT}\nsim: append {ran} L")
        # Each host's project is checked out there alone: each task runs on the host it was dropped on.
        two.add_task("api", "long", f"Healthy work\nsim: work 4s\nsim: append {ran} H")

    run_engines(
        [e1, e2],
        lambda: one.done("web") == ["limited.md"] and two.done("api") == ["long.md"],
        timeout=90,
        during=once_joined([e1, e2], queue),
    )
    [decided] = swap_events(e1)
    [followed] = swap_events(e2)
    assert decided["fleet"] == "decided for the fleet" and decided["account"] == "secondary"
    assert followed["fleet"] == "followed host-1" and followed["account"] == "secondary"
    assert followed["pattern"] == "fleet"
    [hit] = events(e1, "quota_hit")
    lag = _ts(followed) - _ts(hit)
    assert 0 <= lag < 2.0, lag  # host 2's pool on the next account within 2 s of the limit on host 1
    assert e1.state.active_account == e2.state.active_account == "secondary"
    assert e2.state.accounts["primary"].usable_again_at is not None  # host 1's limit holds on host 2
    assert e1.fleet is not None and e1.fleet.seen.record is not None
    assert e1.fleet.seen.record.swaps == 1  # one swap for the fleet
    assert sorted(ran.read_text().split()) == ["H", "L"]
    assert "account: primary" in (two.project("api") / ".agent-queue" / "done" / "long.md").read_text()


def test_two_hosts_hitting_the_limit_at_once_make_one_swap(
    tmp_path: Path, tmux: LibtmuxClient, tmux2: LibtmuxClient, nats_server: NatsServer
) -> None:
    one = make_host(tmp_path / "one", tmux, nats_server.url, "host-1")
    two = make_host(tmp_path / "two", tmux2, nats_server.url, "host-2")
    e1, e2 = host_engine(one), host_engine(two)

    def queue() -> None:
        for ws, project in ((one, "web"), (two, "api")):  # one project per host: each runs its own
            ws.add_task(project, "limited", f"Hits the limit\nsim: work 300ms\n{LIMIT}")

    run_engines(
        [e1, e2],
        lambda: one.done("web") == ["limited.md"] and two.done("api") == ["limited.md"],
        timeout=90,
        during=once_joined([e1, e2], queue),
    )
    swaps = swap_events(e1) + swap_events(e2)
    assert len(swaps) == 2  # each host moved its own pool once
    assert sorted(str(s["fleet"]).split()[0] for s in swaps) == ["decided", "followed"]
    assert all(s["account"] == "secondary" for s in swaps)
    assert e1.fleet is not None and e1.fleet.seen.record is not None
    assert e1.fleet.seen.record.swaps == 1


def test_a_host_joining_takes_the_fleets_account(
    tmp_path: Path, tmux: LibtmuxClient, tmux2: LibtmuxClient, nats_server: NatsServer
) -> None:
    one = make_host(tmp_path / "one", tmux, nats_server.url, "host-1")
    e1 = host_engine(one)
    asked: list[str | None] = []

    def swap_once_joined() -> None:
        if not asked and joined(e1, 1):
            asked.append(e1.request_swap("operator"))

    run_engines(
        [e1],
        lambda: bool(asked) and e1.state.active_account == "secondary" and not e1.switcher.swapping,
        timeout=30,
        during=swap_once_joined,
    )
    [decided] = swap_events(e1)
    assert decided["fleet"] == "decided for the fleet"
    two = make_host(tmp_path / "two", tmux2, nats_server.url, "host-2")
    e2 = host_engine(two)
    run_engines([e2], lambda: e2.state.active_account == "secondary", timeout=30)
    [followed] = swap_events(e2)
    assert followed["fleet"] == "followed host-1"


def test_an_unreachable_fleet_is_one_line_and_local_work_goes_on_until_it_joins(
    tmp_path: Path, tmux: LibtmuxClient, caplog: pytest.LogCaptureFixture
) -> None:
    server = NatsServer(tmp_path / "late-nats", port=free_port())
    one = make_host(tmp_path / "one", tmux, server.url, "host-1")
    e1 = host_engine(one)
    one.add_task("web", "t1", "Local work\nsim: work 300ms")
    started: list[float] = []

    def start_the_server_once_the_task_is_done() -> None:
        if not started and one.done("web") == ["t1.md"]:
            started.append(time.monotonic())
            server.start()

    caplog.set_level(logging.INFO, logger="engine.fleet")
    try:
        run_engines([e1], lambda: joined(e1, 1), timeout=60, during=start_the_server_once_the_task_is_done)
    finally:
        server.stop()
    assert started  # the task was done while the fleet could not be reached
    lines = [r.getMessage() for r in caplog.records if r.name.startswith("engine.fleet")]
    unreachable = [line for line in lines if line.startswith("fleet: cannot reach")]
    assert len(unreachable) == 1, lines  # said once, however many retries
    assert server.url in unreachable[0]
    assert any(line.startswith(f"fleet: joined {server.url} as host-1") for line in lines)


def _ts(event: dict[str, object]) -> float:
    from datetime import datetime

    return datetime.fromisoformat(str(event["ts"]).replace("Z", "+00:00")).timestamp()


def test_a_swap_decided_while_the_server_was_down_reaches_the_fleet_when_it_returns(
    tmp_path: Path, tmux: LibtmuxClient, tmux2: LibtmuxClient, nats_server: NatsServer
) -> None:
    one = make_host(tmp_path / "one", tmux, nats_server.url, "host-1")
    two = make_host(tmp_path / "two", tmux2, nats_server.url, "host-2")
    e1, e2 = host_engine(one), host_engine(two)
    steps: list[str] = []

    def outage_then_swap_then_return() -> None:
        if not steps and joined(e1, 2) and joined(e2, 2):
            steps.append("down")
            nats_server.stop()
        elif steps == ["down"] and e1.fleet is not None and e1.fleet.state.startswith("unreachable"):
            steps.append("swapped")
            e1.request_swap("operator")
        elif steps == ["down", "swapped"] and e1.state.active_account == "secondary":
            steps.append("up")
            nats_server.start()

    run_engines(
        [e1, e2],
        lambda: steps[-1:] == ["up"] and e2.state.active_account == "secondary",
        timeout=90,
        during=outage_then_swap_then_return,
    )
    [decided] = swap_events(e1)
    assert str(decided["fleet"]).startswith("decided here")
    [followed] = swap_events(e2)
    assert followed["fleet"] == "followed host-1"


def test_prefer_first_brings_the_whole_fleet_back_together(
    tmp_path: Path, tmux: LibtmuxClient, tmux2: LibtmuxClient, nats_server: NatsServer
) -> None:
    one = make_host(tmp_path / "one", tmux, nats_server.url, "host-1")
    two = make_host(tmp_path / "two", tmux2, nats_server.url, "host-2")
    for ws in (one, two):
        ws.data["quota"] = {"prefer_first": True, "reactivate_cooldown": "1s"}
    e1, e2 = host_engine(one), host_engine(two)
    steps: list[str] = []

    def limit_then_keep_host_2_busy() -> None:
        if not steps and joined(e1, 2) and joined(e2, 2):
            steps.append("limit")
            reset = int(time.time()) + 6  # the older wording names its reset to the second
            one.add_task(
                "web", "limited", f'Hits the limit\nsim: quota "Claude AI usage limit reached|{reset}"'
            )
        elif steps == ["limit"] and e2.state.active_account == "secondary":
            steps.append("busy")  # host 2 cannot return alone: a task of its own runs past the reset
            two.add_task("api", "long", "Long work\nsim: work 15s")

    run_engines(
        [e1, e2],
        lambda: len(swap_events(e2)) == 2 and e2.state.active_account == "primary",
        timeout=90,
        during=limit_then_keep_host_2_busy,
    )
    away, back = swap_events(e2)
    assert (away["account"], back["account"]) == ("secondary", "primary")
    assert back["fleet"] == "followed host-1"  # host 1's prefer_first decided it for the fleet
    [_, returned] = swap_events(e1)
    assert returned["account"] == "primary" and returned["fleet"] == "decided for the fleet"
    assert e2.running  # host 2 went back with its task still running: it did not wait to be idle
