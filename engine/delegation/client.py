"""Async HTTP client for the AI job service: submit a job, read its status, wait for its result."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Final, Literal, TypeGuard
from urllib.parse import quote

import httpx

from engine.config import DelegationConfig

JobStatus = Literal["queued", "running", "completed", "failed"]
JOB_STATUSES: Final[tuple[JobStatus, ...]] = ("queued", "running", "completed", "failed")
FINISHED: Final[frozenset[str]] = frozenset({"completed", "failed"})
EXCERPT: Final = 200

Sleep = Callable[[float], Awaitable[None]]

_DEFAULTS: Final = DelegationConfig()


class DelegationError(Exception):
    """A job-service call failed; `status` is the HTTP status when a response arrived, else None."""

    def __init__(self, message: str, *, path: str, status: int | None = None, body: str = "") -> None:
        self.path = path
        self.status = status
        self.body = body[:EXCERPT]
        detail = f"HTTP {status}" if status is not None else "no response"
        text = f"{path}: {detail}: {message}"
        if self.body:
            text += f": {self.body}"
        super().__init__(text)


class JobTimeout(DelegationError):
    """`wait` gave up: the job was still unfinished after its timeout."""


class UnknownStatus(DelegationError):
    """The service answered with a job status this client does not know; `value` is what it said."""

    def __init__(self, value: object, *, path: str, body: str) -> None:
        self.value = value
        super().__init__(f"unknown job status {value!r}", path=path, body=body)


@dataclass(frozen=True)
class Job:
    """One job as the service reports it."""

    id: str
    status: JobStatus
    provider: str
    result: str | None = None
    cost_usd: float | None = None
    error: str | None = None

    @property
    def finished(self) -> bool:
        return self.status in FINISHED


def _is_status(value: object) -> TypeGuard[JobStatus]:
    return value in JOB_STATUSES


# Connection trouble and timeouts: the service may be restarting or overloaded, so a later try can succeed.
_TRANSIENT: Final = (httpx.NetworkError, httpx.TimeoutException, httpx.RemoteProtocolError)


def _retryable(status: int) -> bool:
    return status == 429 or status >= 500


def _job_path(job_id: str) -> str:
    return f"/v1/jobs/{quote(job_id, safe='')}"


class JobClient:
    """Talks to `<base_url>/v1/jobs` with a bearer token; transient failures are retried, others are not.

    Each try must be answered in full within `timeout` seconds, and a call (its tries and the pauses between
    them together) ends within `deadline`: httpx times each read alone, so a service that sends its answer a
    byte at a time would otherwise hold a call for as long as it likes.
    """

    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        timeout: float = _DEFAULTS.request_timeout,
        deadline: float = _DEFAULTS.call_timeout,
        retries: int = 3,
        backoff: float = 0.5,
        backoff_max: float = 10.0,
        sleep: Sleep = asyncio.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.deadline = deadline
        self.retries = max(0, retries)
        self.backoff = backoff
        self.backoff_max = backoff_max
        self._sleep = sleep
        self._rng = rng or random.Random()
        self._http = httpx.AsyncClient(
            base_url=self.base_url,
            timeout=timeout,
            headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> JobClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def delay(self, attempt: int) -> float:
        """Full jitter: uniform in [0, min(cap, base·2^attempt)], so many clients retrying do not stampede."""
        return self._rng.uniform(0.0, min(self.backoff_max, self.backoff * (2**attempt)))

    async def _request(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        ends = time.monotonic() + self.deadline
        attempt = 0
        while True:
            budget = min(self.timeout, ends - time.monotonic())
            try:
                async with asyncio.timeout(budget):
                    response = await self._http.request(method, path, json=body)
            except TimeoutError:
                late = (
                    f"no complete answer within {self.timeout:g}s"
                    if budget == self.timeout
                    else f"no complete answer before the call's {self.deadline:g}s deadline"
                )
                failure = DelegationError(late, path=path)
            except _TRANSIENT as exc:
                failure = DelegationError(f"{type(exc).__name__}: {exc}", path=path)
            except httpx.HTTPError as exc:
                # A bad URL or scheme will not get better by retrying.
                raise DelegationError(f"{type(exc).__name__}: {exc}", path=path) from exc
            else:
                if response.is_success:
                    return self._json(response, path)
                failure = DelegationError(
                    response.reason_phrase or "error",
                    path=path,
                    status=response.status_code,
                    body=response.text,
                )
                if not _retryable(response.status_code):
                    raise failure
            if attempt >= self.retries:
                raise failure
            pause = self.delay(attempt)
            if time.monotonic() + pause >= ends:
                raise failure  # the next try could not start before the deadline
            await self._sleep(pause)
            attempt += 1

    @staticmethod
    def _json(response: httpx.Response, path: str) -> dict[str, Any]:
        try:
            data = response.json()
        except ValueError:
            data = None
        if not isinstance(data, dict):
            raise DelegationError(
                "response is not a JSON object", path=path, status=response.status_code, body=response.text
            )
        return data

    async def submit(self, provider: str, priority: str, prompt: str, project: str, task: str) -> str:
        """Create a job and return its id."""
        path = "/v1/jobs"
        payload = {"provider": provider, "priority": priority, "prompt": prompt}
        data = await self._request("POST", path, payload | {"project": project, "task": task})
        job_id = data.get("id")
        if not isinstance(job_id, str | int) or isinstance(job_id, bool) or str(job_id) == "":
            raise DelegationError("response has no job id", path=path, body=str(data))
        return str(job_id)

    async def get(self, job_id: str) -> Job:
        path = _job_path(job_id)
        data = await self._request("GET", path)
        status = data.get("status")
        if not _is_status(status):
            raise UnknownStatus(status, path=path, body=str(data))
        cost = data.get("cost_usd")
        result = data.get("result")
        error = data.get("error")
        return Job(
            id=str(data.get("id", job_id)),
            status=status,
            provider=str(data.get("provider", "")),
            result=None if result is None else str(result),
            cost_usd=float(cost) if isinstance(cost, int | float) and not isinstance(cost, bool) else None,
            error=None if error is None else str(error),
        )

    async def wait(self, job_id: str, *, poll: float = 5.0, timeout: float = 3600.0) -> Job:
        """Poll until the job is completed or failed; still unfinished after `timeout` seconds is an error."""
        deadline = time.monotonic() + timeout
        while True:
            job = await self.get(job_id)
            if job.finished:
                return job
            if time.monotonic() + poll > deadline:
                raise JobTimeout(f"job still {job.status} after {timeout:g}s", path=_job_path(job_id))
            await self._sleep(poll)
