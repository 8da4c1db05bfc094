"""Every wait on the job service is bounded: a whole answer, and a whole call with its retries.

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

from engine.delegation.client import DelegationError, JobClient
from engine.tmux import LibtmuxClient
from tests.integration.delegation_support import GPU, delegation_workspace, engine_for, types
from tests.integration.jobserver import Canned, JobServer, running
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
