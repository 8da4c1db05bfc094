"""`cfo add` on a real engine: the tasks it writes run, in dependency order; a dependency that exists
nowhere is named once, and forgotten when it appears."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

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
    seen: dict[str, Any] = {}

    def step() -> None:
        """Three rounds after the hint appeared, the dependency is written; then the hint must go."""
        text = sidecar.read_text() if sidecar.exists() else ""
        if "first_round" not in seen and HINT in text:
            seen["first_round"] = engine.dispatcher.scans
            seen["hinted"] = (text, os.stat(sidecar).st_mtime_ns)
        elif (
            "added" not in seen
            and "first_round" in seen
            and engine.dispatcher.scans >= seen["first_round"] + 3
        ):
            seen["rows"] = engine.snapshot().blocked  # a scan after the sidecar was made
            ws.add_task("billing-api", "001-x", "The dependency\nsim: work 2s")
            seen["added"] = True
        elif "added" in seen and "unhinted" not in seen and text and HINT not in text:
            seen["unhinted"] = (text, engine.snapshot().blocked, os.stat(sidecar).st_mtime_ns)

    run_engine(engine, lambda: ws.done("web") == [waiting.filename], timeout=60, during=step)

    text, since = seen["hinted"]
    assert text == f"depends_on not met: waiting for billing-api:001-x, {HINT}\n"
    assert [r.waiting_for for r in seen["rows"]] == [f"billing-api:001-x, {HINT}"]
    (event,) = [e for e in ws.events() if e["type"] == "blocked"]
    assert event["reason"] == f"waiting for billing-api:001-x, {HINT}"
    warned = [r.getMessage() for r in caplog.records if "exists nowhere" in r.getMessage()]
    assert warned == [f"{waiting.key} waits for billing-api:001-x, {HINT}"], "said once, not every round"

    text, rows, mtime = seen["unhinted"]
    assert text == "depends_on not met: waiting for billing-api:001-x\n"
    assert [r.waiting_for for r in rows] == ["billing-api:001-x"]
    assert mtime == since, "blocked since keeps its time"
    assert ws.done("billing-api") == ["001-x.md"]
