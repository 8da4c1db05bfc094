"""Bounded logs: a repeated error is logged once and then summarised."""

from __future__ import annotations

import io
import logging
from pathlib import Path

import pytest

from cfo_tui.headless import setup_logging
from engine.loglines import LogLines
from tests.integration.pipeline_support import Workspace, new_engine, run_engine

pytestmark = pytest.mark.integration


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
