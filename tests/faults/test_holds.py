"""What already held when cfo was first tried as an adversary, kept holding: the tmux server killed under a
running pool, an agent killed mid-task, cfo SIGKILLed in the middle of a swap, and a large queue with a
burst of new files through a crash. In each, every task ends in done/ exactly once and none runs twice."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path
from typing import Any

import pytest

from engine.tmux import LibtmuxClient
from tests.helpers import drop_killed_engine_lock, wait_until
from tests.integration.pipeline_support import (
    Workspace,
    make_workspace,
    new_engine,
    run_engine,
    start_headless,
)

pytestmark = pytest.mark.integration


@pytest.fixture
def ws(tmp_path: Path, tmux: LibtmuxClient) -> Workspace:
    return make_workspace(tmp_path / "ws", tmux, agents=2)


def add_tasks(ws: Workspace, keys: list[str], ran: Path, work: str = "2s") -> None:
    """Tasks whose side effect (a line in `ran`) comes after their work: a run cut off never wrote it."""
    for n, key in enumerate(keys):
        ws.add_task("proj", key, f"Task {key}\nsim: work {work}\nsim: append {ran} {key}", age=len(keys) - n)


def assert_each_done_once(ws: Workspace, keys: list[str], ran: Path) -> None:
    assert ws.done("proj") == sorted(f"{k}.md" for k in keys)  # one done/ file each, no -2 copies
    assert sorted(ran.read_text().split()) == sorted(keys)  # every side effect exactly once
    assert ws.inbox("proj") == []
    assert ws.failed("proj") == []


def stop(proc: subprocess.Popen[bytes], sig: signal.Signals) -> int:
    if proc.poll() is None:
        os.killpg(proc.pid, sig)
    return proc.wait(timeout=30)


def saved_state(ws: Workspace) -> dict[str, Any]:
    try:
        data: dict[str, Any] = json.loads((ws.root / "state" / "state.json").read_text())
    except (OSError, ValueError):  # not written yet, or caught between its write and its rename
        return {}
    return data


def test_the_tmux_server_killed_under_a_working_pool_is_rebuilt_and_every_task_done_once(
    ws: Workspace,
) -> None:
    ran, keys = ws.root / "ran.log", [f"t{n}" for n in range(6)]
    add_tasks(ws, keys, ran)
    engine = new_engine(ws)
    killed: list[int] = []

    def kill_the_server_once_both_work() -> None:
        if not killed and sum(1 for r in engine.running.values() if r.phase == "working") == 2:
            killed.append(len(ws.done("proj")))
            ws.tmux.kill_server()

    run_engine(
        engine,
        lambda: len(ws.done("proj")) == len(keys) and not engine.running,
        timeout=120,
        during=kill_the_server_once_both_work,
    )
    assert killed == [0]
    assert_each_done_once(ws, keys, ran)
    requeued = {e["task"] for e in ws.events() if e["type"] == "requeued"}
    assert len(requeued) == 2  # the two runs cut off by the kill went back to the queue, nothing else
    assert set(ws.tmux.list_sessions()) >= {"ccl-auto-11", "ccl-auto-12"}  # the pool is back


def test_an_agent_killed_mid_task_is_requeued_and_its_task_done_once(ws: Workspace) -> None:
    ran, keys = ws.root / "ran.log", ["t0", "t1", "t2"]
    add_tasks(ws, keys, ran)
    engine = new_engine(ws)
    killed: list[str] = []

    def kill_one_agent() -> None:
        working = [r for r in engine.running.values() if r.phase == "working"]
        if not killed and working:
            pid = ws.tmux.pane_pid(working[0].session)
            assert pid is not None
            os.kill(pid, signal.SIGKILL)
            killed.append(working[0].task.key)

    run_engine(
        engine,
        lambda: len(ws.done("proj")) == len(keys) and not engine.running,
        timeout=120,
        during=kill_one_agent,
    )
    assert_each_done_once(ws, keys, ran)
    assert [e["task"] for e in ws.events() if e["type"] == "requeued"] == killed


@pytest.mark.parametrize("point", ["account switched", "limit seen"])
def test_cfo_killed_mid_swap_then_restarted_finishes_the_limit_hit_task_once_on_the_new_account(
    ws: Workspace, point: str
) -> None:
    ran = ws.root / "ran.log"
    ws.add_task(
        "proj",
        "limited",
        "Hits the limit\nsim: work 1s\n"
        f'sim: quota "You\'ve hit your limit · resets 3am"\nsim: append {ran} limited',
        age=2,
    )
    ws.add_task("proj", "other", f"Other\nsim: work 3s\nsim: append {ran} other", age=1)
    log = ws.root / "engine.log"

    def reached() -> bool:
        if point == "limit seen":  # the quota hit is judged and the swap begins
            return any(e["type"] == "quota_hit" for e in ws.events())
        state = saved_state(ws)  # the new account saved, the swap's move not yet done
        return state.get("active_account") == "secondary" and not state.get("swaps")

    first = start_headless(ws, log)
    try:
        wait_until(reached, timeout=60, interval=0.003, what=f"the swap at {point!r}")
        os.killpg(first.pid, signal.SIGKILL)
        first.wait(timeout=10)
    finally:
        stop(first, signal.SIGKILL)
    assert not saved_state(ws).get("swaps")  # killed before the swap was recorded as done
    second = start_headless(ws, log)
    try:
        wait_until(
            lambda: ws.done("proj") == ["limited.md", "other.md"],
            timeout=90,
            what=f"both done after the restart ({log.read_text()[-3000:]})",
        )
        assert stop(second, signal.SIGTERM) == 0
    finally:
        stop(second, signal.SIGKILL)
    assert sorted(ran.read_text().split()) == ["limited", "other"]  # the limit-hit task's effect once
    assert ws.inbox("proj") == [] and ws.failed("proj") == []
    limited = (ws.project("proj") / ".agent-queue" / "done" / "limited.md").read_text()
    assert "account: secondary" in limited  # finished past the limit, under the next account
    assert saved_state(ws)["active_account"] == "secondary"
    assert "Traceback" not in log.read_text()


def test_a_large_queue_and_a_burst_through_a_crash_lose_nothing_and_run_nothing_twice(ws: Workspace) -> None:
    ws.data["pool"]["autonomous"].update(min=3, max=3)
    ran = ws.root / "ran.log"
    queued = [f"q{n:04d}" for n in range(600)]
    for n, key in enumerate(queued):
        ws.add_task("proj", key, f"Task {key}\nsim: work 100ms\nsim: append {ran} {key}", age=1000 - n)
    log = ws.root / "engine.log"
    first = start_headless(ws, log)
    burst = [f"b{n:03d}" for n in range(100)]
    try:
        wait_until(lambda: len(ws.done("proj")) >= 3, timeout=60, what="the first tasks done")
        for key in burst:  # a burst of new files while the engine works through the queue
            ws.add_task(
                "proj", key, f"Burst {key}\nsim: work 100ms\nsim: append {ran} {key}", priority="high"
            )
        wait_until(lambda: len(ws.done("proj")) >= 15, timeout=60, what="more tasks done")
        os.killpg(first.pid, signal.SIGKILL)
        first.wait(timeout=10)
    finally:
        stop(first, signal.SIGKILL)
        drop_killed_engine_lock(ws.tmux.socket_name)
    keys = queued + burst
    # Every file is in exactly one place: waiting in the inbox (claimed or not) or done.
    inbox = {name.split(".md")[0] for name in ws.inbox("proj")}
    done = {name.removesuffix(".md") for name in ws.done("proj")}
    assert inbox.isdisjoint(done) and inbox | done == set(keys)
    effects = ran.read_text().split()
    assert len(effects) == len(set(effects))  # none ran twice
    assert set(effects) >= done
    # The burst's high priority went before the rest of the default queue.
    assert set(burst) <= done | inbox
    assert len(done & set(burst)) >= 5
    assert "Traceback" not in log.read_text()
