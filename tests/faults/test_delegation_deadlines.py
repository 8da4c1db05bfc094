"""Every wait on the job service is bounded: answers, calls, unknown or endless jobs, and results.

Each test runs the real job server on 127.0.0.1; the engine tests run the engine with delegation on, its
bounds set through the config as a user would set them.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from engine import footers
from engine.delegation.client import DelegationError, JobClient
from engine.tmux import LibtmuxClient
from tests.integration.delegation_support import GPU, delegation_workspace, engine_for, types
from tests.integration.jobserver import Canned, JobServer, Plan, running
from tests.integration.pipeline_support import Workspace, run_engine

# An answer of about 90 bytes sent a byte every 100 ms takes 9 s, though every single read is quick.
DRIP = Canned(201, {"id": "job-dripped"}, drip=0.1)


@pytest.fixture
def server() -> Iterator[JobServer]:
    with running(token="secret") as srv:
        yield srv


@pytest.fixture
def ws(tmp_path: Path, tmux: LibtmuxClient, monkeypatch: pytest.MonkeyPatch) -> Workspace:
    return delegation_workspace(tmp_path / "ws", tmux, monkeypatch, agents=1)


def event(ws: Workspace, kind: str, task: str) -> dict[str, Any]:
    return next(e for e in ws.events() if e["type"] == kind and e.get("task") == task)


def failed_footer(ws: Workspace, project: str, name: str) -> dict[str, object]:
    footer = footers.read_footer(ws.project(project) / ".agent-queue" / "failed" / name)
    assert footer is not None
    return footer


def submit(url: str, **options: Any) -> tuple[float, str | DelegationError]:
    """Seconds one submit took, and its job id or its error."""

    async def main() -> str | DelegationError:
        async with JobClient(url, "secret", **options) as client:
            try:
                return await client.submit("gpu", "high", "write a haiku", "proj", "t1")
            except DelegationError as exc:
                return exc

    started = time.monotonic()
    outcome = asyncio.run(main())
    return time.monotonic() - started, outcome


# --- an overall deadline per request and per call -------------------------------------------------------


def test_a_drip_fed_answer_is_cut_off_at_the_request_timeout_however_quick_each_read(
    server: JobServer,
) -> None:
    server.script("submit", DRIP)
    seconds, outcome = submit(server.url, timeout=0.5, retries=0)
    assert isinstance(outcome, DelegationError), outcome
    assert "no complete answer within 0.5s" in str(outcome)
    assert seconds < 1.5


def test_retries_of_a_drip_fed_submit_end_together_at_the_call_deadline(server: JobServer) -> None:
    server.script("submit", *[DRIP] * 10)
    seconds, outcome = submit(
        server.url, timeout=0.5, deadline=1.6, retries=9, backoff=0.01, backoff_max=0.01
    )
    assert isinstance(outcome, DelegationError), outcome
    assert "no complete answer" in str(outcome)
    assert server.count("submit") >= 2  # a request cut off is tried again while the call has time left
    assert seconds < 2.4  # not ten tries of half a second


@pytest.mark.integration
def test_a_drip_fed_submit_gives_the_task_to_the_local_path_within_the_call_timeout(
    ws: Workspace, server: JobServer
) -> None:
    server.script("submit", *[DRIP] * 10)
    ran = ws.root / "ran.log"
    ws.add_task("api", "drip", f"Summarise the log\nsim: work 100ms\nsim: append {ran} local", **GPU)
    engine = engine_for(ws, server, delegation__request_timeout="1s", delegation__call_timeout="2s")
    seen: dict[str, float] = {}

    def ran_locally() -> bool:
        if server.count("submit"):
            seen.setdefault("submit", time.monotonic())
        if "delegation_fallback" in types(ws, "api:drip"):
            seen.setdefault("fallback", time.monotonic())
        return ws.done("api") == ["drip.md"] and "completed" in types(ws, "api:drip")

    run_engine(engine, ran_locally, timeout=40)
    assert seen["fallback"] - seen["submit"] < 2 + 1.0  # the call timeout, and the round that noticed
    assert types(ws, "api:drip") == ["delegation_fallback", "dispatched", "completed"]
    assert "no complete answer" in event(ws, "delegation_fallback", "api:drip")["reason"]
    assert ran.read_text().split() == ["local"]


# --- jobs in an unknown status, jobs that never finish ----------------------------------------------------


@pytest.mark.integration
def test_a_job_in_a_status_cfo_does_not_know_runs_locally_after_unknown_status_timeout(
    ws: Workspace, server: JobServer
) -> None:
    server.plan(Plan(status="paused"))
    ran = ws.root / "ran.log"
    ws.add_task("api", "odd", f"Odd job\nsim: work 100ms\nsim: append {ran} local", **GPU)
    engine = engine_for(ws, server, delegation__unknown_status_timeout="1s", delegation__job_timeout="1h")
    run_engine(engine, lambda: ws.done("api") == ["odd.md"] and "completed" in types(ws, "api:odd"))
    assert types(ws, "api:odd") == ["delegated", "delegation_fallback", "dispatched", "completed"]
    reason = event(ws, "delegation_fallback", "api:odd")["reason"]
    assert reason == "job job-1 reported the unknown status 'paused' for 1s"
    assert server.count("get") >= 5  # polled through the second it was given, not dropped at once
    assert ran.read_text().split() == ["local"]
    assert server.count("submit") == 1


@pytest.mark.integration
def test_a_job_that_never_finishes_fails_with_its_reason_after_job_timeout(
    ws: Workspace, server: JobServer
) -> None:
    server.plan(Plan(polls=10**9))
    ws.add_task("api", "endless", "An endless job", **GPU)
    engine = engine_for(ws, server, delegation__job_timeout="2s")
    run_engine(engine, lambda: ws.failed("api") == ["endless.md"] and "failed" in types(ws, "api:endless"))
    reason = "delegated job job-1 still running 2s after its submit (delegation.job_timeout)"
    footer = failed_footer(ws, "api", "endless.md")
    assert footer["reason"] == reason
    assert (footer["job"], footer["provider"], footer["how"]) == ("job-1", "gpu", "delegated")
    assert event(ws, "failed", "api:endless")["reason"] == reason
    assert types(ws, "api:endless") == ["delegated", "failed"]  # not run locally as well
    assert ws.inbox("api") == []  # its .delegated sidecar went with it


@pytest.mark.integration
def test_a_job_the_service_never_answers_for_fails_after_job_timeout(
    ws: Workspace, server: JobServer
) -> None:
    server.script("get", *[Canned(503, "down for maintenance")] * 1000)
    ws.add_task("api", "dark", "A job in the dark", **GPU)
    engine = engine_for(ws, server, delegation__job_timeout="2s")
    run_engine(engine, lambda: ws.failed("api") == ["dark.md"] and "failed" in types(ws, "api:dark"))
    reason = str(failed_footer(ws, "api", "dark.md")["reason"])
    assert reason.startswith("delegated job job-1 not finished 2s after its submit (delegation.job_timeout)")
    assert "last poll: /v1/jobs/job-1: HTTP 503" in reason and "down for maintenance" in reason
    assert types(ws, "api:dark") == ["delegated", "failed"]


# --- results are capped -----------------------------------------------------------------------------------


@pytest.mark.integration
def test_a_20_mib_result_is_refused_with_its_reason_and_nothing_of_it_lands_in_done(
    ws: Workspace, server: JobServer
) -> None:
    server.plan(Plan(result="All work and no play. " * (20 * 2**20 // 22) + "x" * (20 * 2**20 % 22)))
    ws.add_task("api", "huge", "Write a very long story", **GPU)
    engine = engine_for(ws, server)  # the default cap, 4 MiB
    run_engine(engine, lambda: "failed" in types(ws, "api:huge"))
    reason = (
        "delegated job job-1 completed with a result of 20 MiB (20,971,520 bytes), over "
        "delegation.max_result_bytes (4 MiB); "
        "the job service keeps it: cfo delegate result job-1"
    )
    assert ws.done("api") == []
    assert ws.failed("api") == ["huge.md"]
    failed = ws.project("api") / ".agent-queue" / "failed" / "huge.md"
    assert failed.stat().st_size < 4096  # the task and its footer, with a short excerpt of the result
    footer = failed_footer(ws, "api", "huge.md")
    assert footer["reason"] == reason
    assert str(footer["result"]).startswith("All work and no play.")
    assert event(ws, "failed", "api:huge")["reason"] == reason
    assert ws.inbox("api") == []


@pytest.mark.integration
@pytest.mark.parametrize(
    ("result", "box"),
    [("é" * 512, "done"), ("é" * 512 + "!", "failed")],
    ids=["1024-bytes-at-the-cap", "1025-bytes-over-it"],
)
def test_the_result_cap_counts_utf8_bytes_and_a_result_at_the_cap_is_kept(
    ws: Workspace, server: JobServer, result: str, box: str
) -> None:
    server.plan(Plan(result=result))
    ws.add_task("api", "edge", "Accents", **GPU)
    engine = engine_for(ws, server, delegation__max_result_bytes="1KiB")
    run_engine(engine, lambda: any(t in types(ws, "api:edge") for t in ("completed", "failed")))
    finished = ws.project("api") / ".agent-queue" / box / "edge.md"
    assert finished.exists()
    if box == "done":
        assert result in finished.read_text(encoding="utf-8")
    else:
        assert "a result of 1.0 KiB (1,025 bytes), over delegation.max_result_bytes (1 KiB)" in str(
            failed_footer(ws, "api", "edge.md")["reason"]
        )
