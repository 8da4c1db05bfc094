"""The job client against a real job server on 127.0.0.1: success, retries, refusals and waiting."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

import pytest

from engine.delegation.client import DelegationError, Job, JobClient
from tests.helpers import free_port
from tests.integration.jobserver import Canned, JobServer, Plan, running

T = TypeVar("T")


@pytest.fixture
def server() -> Iterator[JobServer]:
    with running(token="secret") as srv:
        yield srv


class Sleeps:
    """Records requested back-off delays instead of sleeping, so retry tests take no wall time."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


def run(url: str, call: Callable[[JobClient], Awaitable[T]], *, token: str = "secret", **opts: Any) -> T:
    async def main() -> T:
        async with JobClient(url, token, **opts) as client:
            return await call(client)

    return asyncio.run(main())


def submit(client: JobClient) -> Awaitable[str]:
    return client.submit("gpu", "high", "write a haiku", "proj", "t1")


def test_submit_and_get(server: JobServer) -> None:
    server.plan(Plan(result="a haiku", cost_usd=0.25))

    async def call(client: JobClient) -> tuple[str, Job]:
        job_id = await submit(client)
        return job_id, await client.get(job_id)

    job_id, job = run(server.url, call)
    assert job_id == "job-1"
    assert job == Job(id="job-1", status="completed", provider="gpu", result="a haiku", cost_usd=0.25)
    sent = server.requests[0]
    assert sent.authorization == "Bearer secret"
    assert sent.body == {
        "provider": "gpu",
        "priority": "high",
        "prompt": "write a haiku",
        "project": "proj",
        "task": "t1",
    }


def test_503_twice_then_success_is_retried(server: JobServer) -> None:
    server.script("submit", Canned(503, "busy"), Canned(503, "busy"))
    sleeps = Sleeps()
    job_id = run(server.url, submit, sleep=sleeps, retries=3, backoff=0.5, backoff_max=1.5)
    assert job_id == "job-1"
    assert server.count("submit") == 3
    # Full jitter: each delay lies within the exponential cap for its attempt.
    assert len(sleeps.delays) == 2
    assert 0 <= sleeps.delays[0] <= 0.5
    assert 0 <= sleeps.delays[1] <= 1.0


def test_429_and_5xx_give_up_after_bounded_attempts(server: JobServer) -> None:
    server.script("get", Canned(429, "slow down"), *[Canned(500, "boom")] * 5)
    sleeps = Sleeps()
    with pytest.raises(DelegationError) as caught:
        run(server.url, lambda c: c.get("job-9"), sleep=sleeps, retries=2)
    assert server.count("get") == 3
    assert len(sleeps.delays) == 2
    assert caught.value.status == 500
    assert caught.value.path == "/v1/jobs/job-9"
    assert "HTTP 500" in str(caught.value) and "boom" in str(caught.value)


def test_400_is_not_retried_and_names_status_and_body(server: JobServer) -> None:
    server.script("submit", Canned(400, {"error": "prompt too long " + "x" * 500}))
    sleeps = Sleeps()
    with pytest.raises(DelegationError) as caught:
        run(server.url, submit, sleep=sleeps, retries=5)
    err = caught.value
    assert server.count("submit") == 1
    assert sleeps.delays == []
    assert err.status == 400
    assert err.path == "/v1/jobs"
    assert "prompt too long" in err.body
    assert len(err.body) <= 200
    assert "HTTP 400" in str(err) and "/v1/jobs" in str(err) and "prompt too long" in str(err)


def test_wrong_token_is_401_and_not_retried(server: JobServer) -> None:
    sleeps = Sleeps()
    with pytest.raises(DelegationError) as caught:
        run(server.url, submit, token="wrong", sleep=sleeps)
    assert caught.value.status == 401
    assert "invalid bearer token" in caught.value.body
    assert server.count("submit") == 1
    assert server.requests[0].authorization == "Bearer wrong"
    assert server.jobs == {}


def test_connect_error_is_retried_then_raised() -> None:
    sleeps = Sleeps()
    with pytest.raises(DelegationError) as caught:
        run(f"http://127.0.0.1:{free_port()}", submit, sleep=sleeps, retries=2)
    assert len(sleeps.delays) == 2
    assert caught.value.status is None
    assert "ConnectError" in str(caught.value) and "no response" in str(caught.value)


def test_timeout_is_retried(server: JobServer) -> None:
    server.script("submit", Canned(201, {"id": "late"}, delay=1.0))
    sleeps = Sleeps()
    job_id = run(server.url, submit, sleep=sleeps, timeout=0.2, retries=1)
    assert job_id == "job-1"
    assert server.count("submit") == 2
    assert len(sleeps.delays) == 1


def test_wait_polls_until_completed(server: JobServer) -> None:
    server.plan(Plan(polls=3, result="finished"))

    async def call(client: JobClient) -> Job:
        return await client.wait(await submit(client), poll=0.01, timeout=5)

    job = run(server.url, call)
    assert job.status == "completed" and job.result == "finished"
    assert server.count("get") == 4


def test_wait_returns_a_failed_job_with_its_error(server: JobServer) -> None:
    server.plan(Plan(polls=1, error="provider exploded", cost_usd=None))

    async def call(client: JobClient) -> Job:
        return await client.wait(await submit(client), poll=0.01, timeout=5)

    job = run(server.url, call)
    assert job.status == "failed"
    assert job.error == "provider exploded"
    assert job.result is None and job.cost_usd is None


def test_wait_gives_up_after_its_timeout(server: JobServer) -> None:
    server.plan(Plan(polls=10_000))

    async def call(client: JobClient) -> Job:
        return await client.wait(await submit(client), poll=0.01, timeout=0.1)

    with pytest.raises(DelegationError, match=r"still running after 0\.1s"):
        run(server.url, call)


def test_unknown_job_is_404(server: JobServer) -> None:
    with pytest.raises(DelegationError) as caught:
        run(server.url, lambda c: c.get("nope"))
    assert caught.value.status == 404
    assert server.count("get") == 1


def test_malformed_answer_is_a_clear_error(server: JobServer) -> None:
    server.script("get", Canned(200, {"id": "job-1", "status": "sleeping"}), Canned(200, "not json"))
    with pytest.raises(DelegationError, match="unknown job status 'sleeping'"):
        run(server.url, lambda c: c.get("job-1"))
    with pytest.raises(DelegationError, match="not a JSON object"):
        run(server.url, lambda c: c.get("job-1"))
