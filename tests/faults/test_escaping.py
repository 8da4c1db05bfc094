"""Bidi, control and invisible characters in names are escaped in every line a person reads."""

from __future__ import annotations

import logging
import os
import signal

import pytest
from textual.pilot import Pilot

from cfo_tui.app import CfoApp, route_logs
from engine.events import Event
from tests.faults.test_secrets import cfo
from tests.helpers import wait_until
from tests.integration.pipeline_support import Workspace, start_headless
from tests.integration.test_notify import Receiver
from tests.tui.fakes import NOW, FakeEngine
from tests.tui.test_keys import drive, toasts

RLO = "\u202e"  # right-to-left override: `evil\u202etxt.md` reads as `evildm.txt`
HIDDEN = (RLO, "\u2066", "\u200b", "\x1b")
PROJECT = f"web{RLO}lave"
TASK = "t\u2066x\u200b"


def unescaped(text: str) -> list[str]:
    return [f"U+{ord(c):04X}" for c in HIDDEN if c in text]


@pytest.mark.integration
def test_names_with_bidi_characters_are_escaped_in_the_log_the_status_and_alerts(
    ws: Workspace, receiver: Receiver
) -> None:
    ws.add_task(PROJECT, TASK, "Hold the session\nsim: hang")
    inbox = ws.project(PROJECT) / ".agent-queue" / "inbox"
    (inbox / f"bad{RLO}.md").write_text("---\ntitle: [unclosed\n---\nbody\n")
    ws.data["notifications"] = {"webhook": receiver.url, "webhook_format": "ntfy"}
    log = ws.root / "engine.log"
    engine = start_headless(ws, log)
    try:
        wait_until(lambda: receiver.seen(), timeout=60, what=f"the failed alert ({log.read_text()})")
        wait_until(
            lambda: any(e["type"] == "submitted" for e in ws.events()), timeout=60, what="the task running"
        )
        status = cfo(ws.root / "config.yaml", "status")
        os.killpg(engine.pid, signal.SIGTERM)
        assert engine.wait(timeout=30) == 0
    finally:
        if engine.poll() is None:
            os.killpg(engine.pid, signal.SIGKILL)
    alert = receiver.seen()[0].body.decode()
    text = log.read_text()

    assert {"log": unescaped(text), "status": unescaped(status), "alert": unescaped(alert)} == {
        "log": [],
        "status": [],
        "alert": [],
    }
    key = "web\\u202elave:t\\u2066x\\u200b"
    assert f"dispatched session=ccl-auto-11 task={key}" in text
    assert key in status
    assert alert.startswith("task failed: web\\u202elave:bad\\u202e: invalid YAML frontmatter")


@pytest.mark.usefixtures("keep_root_logging")
def test_names_with_bidi_characters_are_escaped_in_console_toasts_and_the_events_pane() -> None:
    key = f"{PROJECT}:{TASK}"

    async def script(pilot: Pilot[int], app: CfoApp, engine: FakeEngine) -> None:
        route_logs(app)
        engine.emit(Event("failed", NOW, session="ccl-auto-11", task=key, reason=f"timed out\x1b[2J{RLO}"))
        logging.getLogger("engine.dispatcher").error("%s: moved to failed/", key)
        await pilot.pause()
        await pilot.pause()
        app.show_snapshot()
        table = app.events_table
        shown = [cell.plain for row in table.rows for cell in table.get_row(row)]

        assert [t for t in toasts(app) if unescaped(t)] == []
        assert "web\\u202elave:t\\u2066x\\u200b in ccl-auto-11: timed out\\x1b[2J\\u202e" in "".join(
            toasts(app)
        )
        assert "Engine error: web\\u202elave:t\\u2066x\\u200b: moved to failed/" in toasts(app)
        assert [s for s in shown if unescaped(s)] == []
        assert "web\\u202elave:t\\u2066x\\u200b" in shown

    drive(script, size=(200, 60))
