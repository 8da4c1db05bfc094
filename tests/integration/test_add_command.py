"""`cfo add` on a real engine: the tasks it writes run, in dependency order; a dependency that exists
nowhere is named once, and forgotten when it appears."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from engine.addtask import add_task
from engine.tmux import LibtmuxClient
from tests.integration.pipeline_support import Workspace, make_workspace, new_engine, run_engine

pytestmark = pytest.mark.integration

HINT = "which exists nowhere (not queued, running, done or failed)"


@pytest.fixture
def ws(tmp_path: Path, tmux: LibtmuxClient) -> Workspace:
    return make_workspace(tmp_path / "ws", tmux, agents=2)


def cfo_add(ws: Workspace, *args: str, body: str) -> str:
    config = ws.root / "config.yaml"
    config.write_text(json.dumps(ws.data), encoding="utf-8")  # JSON is YAML
    done = subprocess.run(
        [sys.executable, "-m", "cfo_tui.cli", "add", *args, "--body", "-", "--config", str(config)],
        input=body,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_tasks_added_with_cfo_add_run_in_dependency_order(ws: Workspace) -> None:
    ws.project("schema"), ws.project("api")
    order = ws.root / "order.log"
    design = cfo_add(
        ws,
        "schema",
        "Design the schema",
        body=f"Tables first.\nsim: work 500ms\nsim: append {order} design\n",
    )
    build = cfo_add(
        ws,
        "api",
        "Build the API",
        "--priority",
        "critical",  # first in line, yet it waits for the design
        "--depends-on",
        f"schema:{design}",
        body=f"Endpoints next.\nsim: append {order} build\n",
    )
    run_engine(new_engine(ws), lambda: ws.done("api") == [f"{build}.md"], timeout=60)
    assert order.read_text().split() == ["design", "build"]
    assert ws.done("schema") == [f"{design}.md"]
    assert [e["task"] for e in ws.events() if e["type"] == "blocked"] == [f"api:{build}"]


def test_a_dependency_that_exists_nowhere_is_named_once_and_forgotten_when_it_appears(
    ws: Workspace, caplog: pytest.LogCaptureFixture
) -> None:
    web = ws.project("web")
    waiting = add_task(
        "web", web, "Ship it", depends_on=["billing-api:001-x"], body="Out.\nsim: work 100ms\n"
    ).task
    sidecar = waiting.path.with_name(waiting.path.name + ".blocked")
    engine = new_engine(ws)
    caplog.set_level(logging.WARNING, logger="engine.dispatcher")
    rounds: list[int] = []

    def hinted_for_three_rounds() -> bool:
        if sidecar.exists() and not rounds:
            rounds.append(engine.dispatcher.scans)
        return bool(rounds) and engine.dispatcher.scans >= rounds[0] + 3

    run_engine(engine, hinted_for_three_rounds, timeout=30)
    assert sidecar.read_text() == f"depends_on not met: waiting for billing-api:001-x, {HINT}\n"
    (row,) = engine.snapshot().blocked
    assert row.waiting_for == f"billing-api:001-x, {HINT}"
    (event,) = [e for e in ws.events() if e["type"] == "blocked"]
    assert event["reason"] == f"waiting for billing-api:001-x, {HINT}"
    warned = [r.getMessage() for r in caplog.records if "exists nowhere" in r.getMessage()]
    assert warned == [f"{waiting.key} waits for billing-api:001-x, {HINT}"]

    since = os.stat(sidecar).st_mtime_ns
    ws.add_task("billing-api", "001-x", "The dependency\nsim: work 2s")
    engine = new_engine(ws)  # a new engine reads the sidecar an earlier one wrote
    run_engine(engine, lambda: sidecar.exists() and HINT not in sidecar.read_text(), timeout=30)
    assert sidecar.read_text() == "depends_on not met: waiting for billing-api:001-x\n"
    assert os.stat(sidecar).st_mtime_ns == since, "blocked since keeps its time"
    assert all(HINT not in (r.waiting_for or "") for r in engine.snapshot().blocked)
    run_engine(engine, lambda: ws.done("web") == [waiting.filename], timeout=60)
