"""Bounded logs and sidecars: a repeated error is logged once and then summarised; long lists are cut."""

from __future__ import annotations

import io
import json
import logging
import os
import signal
from pathlib import Path

import httpx
import pytest

from cfo_tui.headless import setup_logging
from engine.loglines import LogLines
from tests.helpers import free_port, wait_until
from tests.integration.pipeline_support import Workspace, new_engine, run_engine, start_headless

pytestmark = pytest.mark.integration

LONG = 2000
"""No line a person reads, and no sidecar, comes near this many characters once lists are cut."""


@pytest.mark.usefixtures("keep_root_logging")
def test_an_inbox_linked_out_of_its_project_is_one_error_line_however_often_it_is_scanned(
    ws: Workspace, tmp_path: Path
) -> None:
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    queue = ws.projects_dir / "linked" / ".agent-queue"
    queue.mkdir(parents=True)
    (queue / "inbox").symlink_to(outside)
    out = io.StringIO()
    setup_logging(out)  # the log of `cfo --no-ui`
    engine = new_engine(ws)
    engine.full_scan = 0.05

    run_engine(engine, lambda: engine.dispatcher.scans >= 20, timeout=30)

    errors = [line for line in out.getvalue().splitlines() if "resolves outside the project" in line]
    assert len(errors) == 1 and " ERROR " in errors[0]


def test_a_repeated_error_is_summarised_at_most_once_a_minute() -> None:
    now = [0.0]
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.addFilter(LogLines(clock=lambda: now[0]))
    log = logging.getLogger("engine.dispatcher")
    log.addHandler(handler)
    try:
        for at in [0, *range(1, 16), 59, 61, 62]:
            now[0] = float(at)
            log.error("%s: resolves outside the project; not scanned", "/src/linked/.agent-queue/inbox")
        log.error("%s: resolves outside the project; not scanned", "/src/other/.agent-queue/inbox")
    finally:
        log.removeHandler(handler)

    assert out.getvalue().splitlines() == [
        "/src/linked/.agent-queue/inbox: resolves outside the project; not scanned",
        "/src/linked/.agent-queue/inbox: resolves outside the project; not scanned"
        " (again 17 times in the last 61 s)",
        "/src/other/.agent-queue/inbox: resolves outside the project; not scanned",
    ]


def test_ten_thousand_dependencies_are_cut_to_ten_and_a_count_everywhere_they_are_written(
    ws: Workspace,
) -> None:
    # 9,999 missing tasks and one unsafe entry: the unsafe one makes the dispatcher log an error too.
    deps = [f"api:missing-{n:05d}" for n in range(9999)] + ["api:../escape"]
    ws.add_task("api", "big", "Big\nsim: work 100ms", depends_on=deps)
    port = free_port()
    ws.data["watchdog"] = {"blocked_warn": "1s"}
    ws.data["status_api"] = {"listen": f"127.0.0.1:{port}"}
    log = ws.root / "engine.log"
    engine = start_headless(ws, log)
    try:
        wait_until(
            lambda: any(e["type"] == "blocked_too_long" for e in ws.events()),
            timeout=60,
            what=f"the blocked warning ({log.read_text()[-2000:]})",
        )
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", trust_env=False, timeout=5) as client:
            watchdog = client.get("/watchdog").json()
        os.killpg(engine.pid, signal.SIGTERM)
        assert engine.wait(timeout=30) == 0
    finally:
        if engine.poll() is None:
            os.killpg(engine.pid, signal.SIGKILL)

    sidecar = (ws.project("api") / ".agent-queue" / "inbox" / "big.md.blocked").read_text()
    assert len(sidecar) < LONG and sidecar.endswith(", … and 9,990 more\n")
    events = {e["type"]: e for e in ws.events()}
    assert events["blocked"]["reason"].startswith("unsafe depends_on entry 'api:../escape'; waiting for")
    for kind in ("blocked", "blocked_too_long"):
        assert len(events[kind]["reason"]) < LONG and events[kind]["reason"].endswith(" … and 9,990 more")
    lines = log.read_text().splitlines()
    assert max(len(line) for line in lines) < LONG
    assert any(" ERROR engine.dispatcher: " in line and "… and 9,990 more" in line for line in lines)
    assert any(" WARNING engine.housekeeping: " in line and "… and 9,990 more" in line for line in lines)
    assert max(len(line) for line in (ws.root / "state" / "events.jsonl").read_text().splitlines()) < LONG
    (row,) = watchdog["blocked"]
    assert len(json.dumps(row)) < LONG and row["waiting_for"].endswith(", … and 9,989 more")
