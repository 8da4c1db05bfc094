"""Delegation end to end: the engine, a real job server on 127.0.0.1, the simulated agent for fallbacks."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from engine import footers
from engine.tmux import LibtmuxClient
from tests.integration.delegation_support import GPU, KEY_ENV, delegation_workspace, engine_for, types
from tests.integration.jobserver import Canned, JobServer, Plan, running
from tests.integration.pipeline_support import Workspace, run_engine

pytestmark = pytest.mark.integration


@pytest.fixture
def server() -> Iterator[JobServer]:
    with running(token="secret") as srv:
        yield srv


@pytest.fixture
def ws(tmp_path: Path, tmux: LibtmuxClient, monkeypatch: pytest.MonkeyPatch) -> Workspace:
    return delegation_workspace(tmp_path / "ws", tmux, monkeypatch)


def done_text(ws: Workspace, project: str, name: str) -> str:
    return (ws.project(project) / ".agent-queue" / "done" / name).read_text()


def test_delegated_task_ends_in_done_with_footer_and_result(ws: Workspace, server: JobServer) -> None:
    server.plan(Plan(polls=2, result="Here is the haiku.\nSecond line.", cost_usd=0.42))
    ws.add_task("api", "poem", "Write a haiku about tmux", title="Poem", priority="high", **GPU)
    engine = engine_for(ws, server)
    run_engine(engine, lambda: ws.done("api") == ["poem.md"] and "completed" in types(ws, "api:poem"))

    text = done_text(ws, "api", "poem.md")
    footer = footers.read_footer(ws.project("api") / ".agent-queue" / "done" / "poem.md")
    assert footer is not None
    assert footer["status"] == "completed" and footer["how"] == "delegated"
    assert footer["provider"] == "gpu" and footer["job"] == "job-1" and footer["cost_usd"] == 0.42
    assert footer["duration"] and footer["result"] == "Here is the haiku. Second line."
    assert "## Result (gpu)\n\nHere is the haiku.\nSecond line.\n" in text
    assert ws.inbox("api") == []  # the task and its .delegated sidecar are gone
    submitted = server.requests[0].body
    assert submitted == {
        "provider": "gpu",
        "priority": "high",
        "prompt": "Write a haiku about tmux",
        "project": "api",
        "task": "poem",
    }
    assert types(ws, "api:poem") == ["delegated", "completed"]  # never dispatched to a session
    assert engine.state.counters.get("completed") == 1


def test_503_twice_then_success_is_retried_and_delegated(ws: Workspace, server: JobServer) -> None:
    server.script("submit", Canned(503, "busy"), Canned(503, "busy"))
    ws.add_task("api", "retry", "Summarise the changelog", **GPU)
    engine = engine_for(ws, server)
    run_engine(engine, lambda: ws.done("api") == ["retry.md"] and "completed" in types(ws, "api:retry"))
    assert server.count("submit") == 3
    assert types(ws, "api:retry") == ["delegated", "completed"]


def test_400_is_not_retried_and_the_task_runs_locally(ws: Workspace, server: JobServer) -> None:
    server.script("submit", Canned(400, {"error": "provider gpu cannot take this"}))
    ran = ws.root / "ran.log"
    ws.add_task("api", "local", f"Refactor the parser\nsim: work 200ms\nsim: append {ran} local", **GPU)
    engine = engine_for(ws, server)
    run_engine(engine, lambda: ws.done("api") == ["local.md"] and "completed" in types(ws, "api:local"))
    assert server.count("submit") == 1
    assert ran.read_text().split() == ["local"]
    assert types(ws, "api:local") == ["delegation_fallback", "dispatched", "completed"]
    fallback = next(e for e in ws.events() if e["type"] == "delegation_fallback")
    assert "HTTP 400" in fallback["reason"] and "cannot take this" in fallback["reason"]
    assert "session: ccl-auto-" in done_text(ws, "api", "local.md")


def test_a_failed_job_goes_to_failed_with_its_error(ws: Workspace, server: JobServer) -> None:
    server.plan(Plan(polls=1, error="model refused", cost_usd=None))
    ws.add_task("api", "nope", "Do something impossible", **GPU)
    engine = engine_for(ws, server)
    run_engine(engine, lambda: ws.failed("api") == ["nope.md"] and "failed" in types(ws, "api:nope"))
    footer = footers.read_footer(ws.project("api") / ".agent-queue" / "failed" / "nope.md")
    assert footer is not None
    assert footer["reason"] == "delegated job job-1 failed: model refused"
    assert footer["provider"] == "gpu"
    assert ws.inbox("api") == []


def test_a_restart_mid_job_picks_the_job_up_from_its_sidecar(ws: Workspace, server: JobServer) -> None:
    server.plan(Plan(polls=10**9))
    task = ws.add_task("api", "long", "A long job", **GPU)
    sidecar = task.with_name("long.md.delegated")
    first = engine_for(ws, server)
    run_engine(first, lambda: sidecar.exists() and sidecar.read_text().strip() == "job-1")
    assert ws.done("api") == []

    server.jobs["job-1"].plan = Plan(result="finally")
    second = engine_for(ws, server)
    run_engine(second, lambda: ws.done("api") == ["long.md"] and "completed" in types(ws, "api:long"))
    assert server.count("submit") == 1  # picked up, not submitted again
    assert "finally" in done_text(ws, "api", "long.md")


def test_a_submit_cut_off_by_a_crash_is_submitted_again(ws: Workspace, server: JobServer) -> None:
    task = ws.add_task("api", "cut", "Interrupted", **GPU)
    task.with_name("cut.md.delegated").write_text("(submitting)\n")
    engine = engine_for(ws, server)
    run_engine(engine, lambda: ws.done("api") == ["cut.md"] and "completed" in types(ws, "api:cut"))
    assert server.count("submit") == 1
    assert types(ws, "api:cut") == ["delegated", "completed"]


def test_a_job_the_service_no_longer_knows_falls_back_locally(ws: Workspace, server: JobServer) -> None:
    task = ws.add_task("api", "lost", "Lost job\nsim: work 100ms", **GPU)
    task.with_name("lost.md.delegated").write_text("job-404\n")
    engine = engine_for(ws, server)
    run_engine(engine, lambda: ws.done("api") == ["lost.md"] and "completed" in types(ws, "api:lost"))
    assert types(ws, "api:lost") == ["delegation_fallback", "dispatched", "completed"]
    assert server.count("submit") == 0


def test_without_the_key_variable_delegation_is_off_and_tasks_run_locally(
    ws: Workspace, server: JobServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(KEY_ENV)
    ws.add_task("api", "plain", "Local anyway\nsim: work 100ms", **GPU)
    engine = engine_for(ws, server)
    assert engine.delegation is None
    run_engine(engine, lambda: ws.done("api") == ["plain.md"] and "completed" in types(ws, "api:plain"))
    assert server.requests == []


def test_delegated_jobs_show_in_the_snapshot_with_provider_and_status(
    ws: Workspace, server: JobServer
) -> None:
    server.plan(Plan(polls=10**9))
    ws.add_task("api", "slow", "Slow job", title="Slow one", **{**GPU, "preferred_ai": "gemini"})
    engine = engine_for(ws, server)
    run_engine(engine, lambda: any(r.job_status == "running" for r in engine.snapshot().delegated))
    row = engine.snapshot().delegated[0]
    assert (row.key, row.provider, row.job, row.job_status) == ("api:slow", "gemini", "job-1", "running")
    assert engine.snapshot().inbox == ()


def test_a_long_delegated_job_is_never_flagged_and_its_counters_are_served(
    ws: Workspace, server: JobServer
) -> None:
    server.plan(Plan(polls=10**9))
    ws.add_task("api", "long", "A long job", **GPU)
    engine = engine_for(
        ws,
        server,
        status_api__listen="127.0.0.1:0",
        watchdog__stalled_after="200ms",
        watchdog__blocked_warn="200ms",
        watchdog__blocked_fail="400ms",
    )
    seen: dict[str, Any] = {}

    def ask() -> None:
        # From a thread of its own, as a scraper: the engine's loop answers while it works.
        with httpx.Client(trust_env=False, timeout=5) as client:
            base = f"http://127.0.0.1:{engine.status_port}"
            seen["delegated"] = client.get(f"{base}/api/delegated/status").json()
            seen["watchdog"] = client.get(f"{base}/watchdog").json()

    def running_well_past_every_limit() -> bool:
        if engine.status_port is None or "job-1" not in server.jobs:
            return False
        first = seen.setdefault("submitted_at", time.monotonic())
        if time.monotonic() - first < 1.5:
            return False
        if "asker" not in seen:
            seen["asker"] = threading.Thread(target=ask, daemon=True)
            seen["asker"].start()
        return not seen["asker"].is_alive()

    run_engine(engine, running_well_past_every_limit, timeout=30)

    delegated = seen["delegated"]
    assert delegated["enabled"] is True and delegated["active"] == 1
    assert delegated["counters"] == {
        "submitted": 1,
        "submit_failed": 0,
        "fallbacks": 0,
        "completed": 0,
        "failed": 0,
    }
    assert [(j["task"], j["job"], j["status"]) for j in delegated["jobs"]] == [
        ("api:long", "job-1", "running")
    ]
    assert seen["watchdog"]["stalled"] == [] and seen["watchdog"]["blocked"] == []
    assert types(ws, "api:long") == ["delegated"]  # never stalled, blocked, stuck or failed
    assert sorted(p.name for p in (ws.project("api") / ".agent-queue" / "inbox").iterdir()) == [
        "long.md",
        "long.md.delegated",
    ]
