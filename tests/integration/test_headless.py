"""`cfo --no-ui` as a real process: signals, SIGKILL recovery, `cfo status --json`."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from engine.tmux import LibtmuxClient
from tests.helpers import wait_until
from tests.integration.pipeline_support import SIM_STYLES, Workspace, make_workspace, use_sim_style

pytestmark = pytest.mark.integration


@pytest.fixture
def ws(tmp_path: Path, tmux: LibtmuxClient) -> Workspace:
    return make_workspace(tmp_path / "ws", tmux, agents=2)


def write_config(ws: Workspace) -> Path:
    path = ws.root / "config.yaml"
    path.write_text(json.dumps(ws.data), encoding="utf-8")  # JSON is YAML
    return path


def start(config: Path, log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "cfo_tui.cli", "--no-ui", "--config", str(config)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=log.open("ab"),
        start_new_session=True,  # its own process group, as under systemd
    )


def count_events(ws: Workspace, kind: str) -> int:
    return sum(1 for e in ws.events() if e["type"] == kind)


@pytest.mark.parametrize("style", SIM_STYLES)
def test_sigkill_mid_run_then_restart_finishes_every_task_exactly_once(
    ws: Workspace, style: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_sim_style(style, monkeypatch)
    ran = ws.root / "ran.log"
    keys = [f"t{n}" for n in range(6)]
    for n, key in enumerate(keys):
        ws.add_task("proj", key, f"Task {n}\nsim: work 1500ms\nsim: append {ran} {key}", age=10 - n)
    config = write_config(ws)
    log = ws.root / "engine.log"
    first = start(config, log)
    try:
        wait_until(lambda: count_events(ws, "dispatched") >= 2, timeout=30, what="two tasks dispatched")
        os.killpg(first.pid, signal.SIGKILL)
        first.wait(timeout=10)
    finally:
        if first.poll() is None:
            os.killpg(first.pid, signal.SIGKILL)
    second = start(config, log)
    try:
        wait_until(
            lambda: len(ws.done("proj")) == len(keys),
            timeout=90,
            what=f"all done ({log.read_text()[-2000:]})",
        )
        os.killpg(second.pid, signal.SIGTERM)
        assert second.wait(timeout=30) == 0
    finally:
        if second.poll() is None:
            os.killpg(second.pid, signal.SIGKILL)
    assert ws.done("proj") == sorted(f"{k}.md" for k in keys)
    assert sorted(ran.read_text().split()) == sorted(keys)  # none ran twice, none was lost
    assert [n for n in ws.inbox("proj")] == []


def test_sigterm_to_the_process_group_stops_cleanly_with_state_saved(ws: Workspace) -> None:
    config = write_config(ws)
    log = ws.root / "engine.log"
    proc = start(config, log)
    try:
        wait_until(lambda: count_events(ws, "started") == 1, timeout=30, what="engine started")
        os.killpg(proc.pid, signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert ws.events()[-1]["type"] == "stopped"
    assert json.loads((ws.root / "state" / "state.json").read_text())["active_account"] == "primary"
    assert "Traceback" not in log.read_text()


def test_a_second_engine_on_the_same_state_is_refused_in_one_line(ws: Workspace) -> None:
    config = write_config(ws)
    first_log, second_log = ws.root / "first.log", ws.root / "second.log"
    first = start(config, first_log)
    try:
        wait_until(lambda: count_events(ws, "started") == 1, timeout=30, what="first engine started")
        second = start(config, second_log)
        assert second.wait(timeout=30) == 1
        lines = second_log.read_text().strip().splitlines()
        assert lines == [
            f"cfo: {ws.root / 'state' / 'cfo.lock'}: another cfo (pid {first.pid}) is running on this "
            "state_dir; stop it first (the service: systemctl --user stop cfo.service)"
        ]
        assert first.poll() is None  # the running one is untouched
        os.killpg(first.pid, signal.SIGTERM)
        assert first.wait(timeout=30) == 0
    finally:
        if first.poll() is None:
            os.killpg(first.pid, signal.SIGKILL)
    assert count_events(ws, "started") == 1


def test_status_json_reports_the_contract_keys(ws: Workspace) -> None:
    ws.add_task("proj", "a", "A")
    ws.add_task("proj", "b", "B", depends_on=["proj:a"])
    (ws.project("proj") / ".agent-queue" / "inbox" / "b.md.blocked").write_text(
        "depends_on not met: proj:a\n"
    )
    config = write_config(ws)
    out = subprocess.run(
        [sys.executable, "-m", "cfo_tui.cli", "status", "--json", "--config", str(config)],
        capture_output=True,
        text=True,
        check=True,
    )
    data = json.loads(out.stdout)
    assert data["dispatch"] == "running"
    assert data["queues"] == {"inbox": 1, "blocked": 1, "delegated": 0}
    assert {"active_account", "sessions", "swaps"} <= set(data)


def test_status_lists_delegated_jobs_with_provider_and_job(ws: Workspace) -> None:
    task = ws.add_task("proj", "d", "D", allow_delegation=True, preferred_ai="gemini")
    task.with_name("d.md.delegated").write_text("job-42\n")
    config = write_config(ws)
    run = [sys.executable, "-m", "cfo_tui.cli", "status", "--config", str(config)]
    data = json.loads(subprocess.run([*run, "--json"], capture_output=True, text=True, check=True).stdout)
    assert data["queues"]["delegated"] == 1
    assert data["delegated"] == [
        {"task": "proj:d", "provider": "gemini", "job": "job-42", "status": "submitted"}
    ]
    text = subprocess.run(run, capture_output=True, text=True, check=True).stdout
    assert "delegated proj:d" in text and "gemini" in text
