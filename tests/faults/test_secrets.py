"""Secrets never reach an output: `cfo --no-ui` runs with marker secrets; every output is scanned for them."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.helpers import free_port, wait_until
from tests.integration import jobserver
from tests.integration.pipeline_support import Workspace, start_headless
from tests.integration.test_notify import Receiver

pytestmark = pytest.mark.integration

PATH_MARK = "pathsecret-7f3a9c"
QUERY_MARK = "querysecret-2b8e41"
KEY_MARK = "keysecret-91d0c6"
MARKS = (PATH_MARK, QUERY_MARK, KEY_MARK)
KEY_ENV = "CFO_FAULT_JOBS_KEY"


def cfo(config: Path, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "cfo_tui.cli", *args, "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return done.stdout + done.stderr


def delegated(ws: Workspace, task_id: str, age: float) -> None:
    ws.add_task(
        "api", task_id, "Summarise\nsim: work 100ms", age=age, allow_delegation=True, preferred_ai="gpu"
    )


def test_no_marker_secret_reaches_a_log_line_event_state_status_or_alert(
    ws: Workspace, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(KEY_ENV, KEY_MARK)
    receiver.fail_first = 1  # the first alert's failure is logged, naming the webhook
    port = free_port()
    with jobserver.running(token=KEY_MARK) as jobs:
        # A job service that quotes the key back: in a refused submit, and in a job's error.
        jobs.script("submit", jobserver.Canned(400, {"error": f"unknown key {KEY_MARK}"}))
        jobs.plan(jobserver.Plan(error=f"the provider refused key {KEY_MARK}"))
        delegated(ws, "d1", age=20)
        delegated(ws, "d2", age=10)
        ws.data["notifications"] = {"webhook": f"{receiver.url}/{PATH_MARK}?token={QUERY_MARK}"}
        ws.data["delegation"] = {"url": jobs.url, "api_key_env": KEY_ENV}
        ws.data["status_api"] = {"listen": f"127.0.0.1:{port}"}
        log = ws.root / "engine.log"
        engine = start_headless(ws, log)
        try:

            def alerted() -> bool:
                return any(r.json()["type"] == "failed" for r in receiver.seen()[1:])

            wait_until(lambda: ws.done("api"), timeout=60, what=f"the fallback done ({log.read_text()})")
            wait_until(alerted, timeout=60, what=f"the failed alert ({log.read_text()})")
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", trust_env=False, timeout=5) as client:
                served = [client.get("/status").text, client.get("/metrics").text]
            os.killpg(engine.pid, signal.SIGTERM)
            assert engine.wait(timeout=30) == 0
        finally:
            if engine.poll() is None:
                os.killpg(engine.pid, signal.SIGKILL)
    config = ws.root / "config.yaml"
    state = ws.root / "state"
    outputs = {
        "cfo --no-ui stderr": log.read_text(),
        "events.jsonl": (state / "events.jsonl").read_text(),
        "state.json": (state / "state.json").read_text(),
        "cfo status --json": cfo(config, "status", "--json"),
        "cfo status": cfo(config, "status"),
        "/status": served[0],
        "/metrics": served[1],
        **{f"webhook body {n}": r.body.decode() for n, r in enumerate(receiver.seen())},
        **{f"webhook headers {n}": json.dumps(r.headers) for n, r in enumerate(receiver.seen())},
    }

    leaks = [(where, mark) for where, text in outputs.items() for mark in MARKS if mark in text]
    assert leaks == []
    # Redacted, not silenced: the warning still says which host failed, the events why.
    assert f"webhook {receiver.url.removesuffix('/hook')}/[redacted] failed" in outputs["cfo --no-ui stderr"]
    reasons = [e.get("reason", "") for e in ws.events() if e["type"] in ("delegation_fallback", "failed")]
    assert len(reasons) == 2 and all("key [redacted]" in r for r in reasons)
