"""The status API served by a running engine: status, delegation, watchdog and metrics on loopback."""

from __future__ import annotations

import socket
import threading
from pathlib import Path
from typing import Any

import httpx
import pytest

from engine.core import Engine
from engine.tmux import LibtmuxClient
from tests.integration.pipeline_support import Workspace, make_workspace, run_engine

pytestmark = pytest.mark.integration


@pytest.fixture
def ws(tmp_path: Path, tmux: LibtmuxClient) -> Workspace:
    return make_workspace(tmp_path / "ws", tmux, agents=2)


def get(engine: Engine, path: str) -> httpx.Response:
    with httpx.Client(trust_env=False, timeout=5) as client:
        return client.get(f"http://127.0.0.1:{engine.status_port}{path}")


def test_the_engine_serves_status_delegation_watchdog_and_metrics(ws: Workspace) -> None:
    ws.add_task("api", "hang", "Hang\nsim: hang")
    ws.add_task("api", "later", "Later", depends_on=["api:hang"])
    engine = Engine(
        ws.config(status_api__listen="127.0.0.1:0", watchdog__stalled_after="500ms"),
        ws.tmux,
        full_scan=1.0,
        watchdog_tick=0.2,
    )
    answers: dict[str, Any] = {}
    done = threading.Event()

    def ask() -> None:
        # A client of its own thread, as a scraper is: the engine's loop must answer while it works.
        while not done.wait(0.1):
            if engine.status_port is None:
                continue
            watchdog = get(engine, "/watchdog").json()
            if not watchdog["stalled"] or not watchdog["blocked"]:
                continue
            answers["watchdog"] = watchdog
            answers["seed_watchdog"] = get(engine, "/watchdog/status").json()
            answers["status"] = get(engine, "/status").json()
            answers["delegated"] = get(engine, "/delegated").json()
            answers["seed_delegated"] = get(engine, "/api/delegated/status").json()
            answers["metrics"] = get(engine, "/metrics")
            return

    client = threading.Thread(target=ask, daemon=True)
    client.start()
    try:
        run_engine(engine, lambda: "metrics" in answers, timeout=30)
    finally:
        done.set()
        client.join(timeout=10)

    status = answers["status"]
    assert status["queues"] == {"inbox": 0, "blocked": 1, "delegated": 0}
    assert {s["state"] for s in status["sessions"]} >= {"stalled", "idle"}
    assert "primary" in status["accounts"]

    watchdog = answers["watchdog"]
    assert watchdog == answers["seed_watchdog"]
    assert [s["task"] for s in watchdog["stalled"]] == ["api:hang"]
    assert [(b["task"], b["waiting_for"], b["warned"]) for b in watchdog["blocked"]] == [
        ("api:later", "api:hang", False)
    ]
    assert watchdog["counters"]["stalled"] == 1

    assert answers["delegated"] == answers["seed_delegated"]
    assert answers["delegated"]["enabled"] is False and answers["delegated"]["jobs"] == []

    metrics = answers["metrics"]
    assert metrics.headers["content-type"].startswith("text/plain; version=0.0.4")
    assert 'cfo_sessions{state="stalled"} 1' in metrics.text
    assert 'cfo_queue_tasks{queue="blocked"} 1' in metrics.text
    assert 'cfo_account_active{account="primary"} 1' in metrics.text


def test_a_busy_port_is_one_error_line_and_the_engine_goes_on(
    ws: Workspace, caplog: pytest.LogCaptureFixture
) -> None:
    ws.add_task("api", "quick", "Quick\nsim: work 100ms")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        engine = Engine(ws.config(status_api__listen=f"127.0.0.1:{port}"), ws.tmux, full_scan=1.0)
        run_engine(engine, lambda: ws.done("api") == ["quick.md"], timeout=30)
    assert engine.status_port is None
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert len(errors) == 1 and "status_api.listen" in errors[0]
