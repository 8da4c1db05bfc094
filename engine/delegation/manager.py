"""Delegation manager: submits routed tasks to the job service, reaps finished jobs into done/ or failed/."""

from __future__ import annotations

import asyncio
import functools
import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal

from engine import footers, moves, sidecars
from engine.clock import iso
from engine.config import DelegationConfig
from engine.delegation.client import DelegationError, Job, JobClient, UnknownStatus
from engine.delegation.router import Decision, decide
from engine.durations import format_duration
from engine.events import Emit
from engine.tasks import Fingerprint, Task, TaskError, human_bytes

log = logging.getLogger(__name__)

# The sidecar's content between claiming a task and knowing its job id. Found after a restart, it means
# the submit was cut off: the task is submitted again (the service gets project and task to dedupe by).
SUBMITTING: Final = "(submitting)"
REAP_CONCURRENCY: Final = 8
RESULT_EXCERPT: Final = 200


@dataclass(frozen=True)
class JobView:
    """What the console and the status API show of a delegated task."""

    key: str
    job: str | None
    provider: str
    status: str
    since: float | None
    cost_usd: float | None = None


class DelegationManager:
    """Owns the `.delegated` sidecars: the only writer of them, and the only one that finishes such tasks."""

    def __init__(
        self,
        client: JobClient,
        config: DelegationConfig,
        emit: Emit,
        now: Callable[[], float],
    ) -> None:
        self.client = client
        self._config = config
        self._emit = emit
        self._now = now
        self.jobs: dict[str, JobView] = {}
        self.in_flight: set[str] = set()
        # Tasks whose delegation failed, by version: they run locally; an edited file is routed again.
        self.local_only: set[tuple[str, Fingerprint]] = set()
        self.counters: dict[str, int] = {
            "submitted": 0,
            "submit_failed": 0,
            "fallbacks": 0,
            "completed": 0,
            "failed": 0,
        }
        self._poll_errors: dict[str, str] = {}
        # When each task's job was first seen in a status this client does not know.
        self._unknown_since: dict[str, float] = {}

    @classmethod
    def from_config(
        cls,
        config: DelegationConfig,
        emit: Emit,
        now: Callable[[], float],
        environ: Mapping[str, str] = os.environ,
        **client_options: Any,
    ) -> DelegationManager | None:
        """A manager when delegation is on (a URL and a non-empty key variable), else None."""
        token = config.api_key(environ)
        if not config.url or not token:
            return None
        options = {"timeout": config.request_timeout, "deadline": config.call_timeout} | client_options
        return cls(JobClient(config.url, token, **options), config, emit, now)

    async def aclose(self) -> None:
        await self.client.aclose()

    # ----------------------------------------------------------------- routing

    def route(self, task: Task) -> Decision | None:
        """The provider `task` goes to, or None when it runs locally (by its fields, or after a fallback)."""
        if task.key in self.in_flight or (task.key, task.fingerprint) in self.local_only:
            return None
        decision = decide(task)
        return decision if decision.delegated else None

    # ----------------------------------------------------------------- submit

    async def submit(self, task: Task, decision: Decision, resubmit: bool = False) -> bool:
        """Claim `task` by its sidecar and submit it; False when it was not delegated (and runs locally)."""
        self.in_flight.add(task.key)
        try:
            if not resubmit:
                try:
                    claimed = await asyncio.to_thread(moves.claim_delegation, task, SUBMITTING)
                except TaskError as exc:
                    log.error("%s", exc)
                    return False
                if not claimed:
                    return False
            try:
                job_id = await self.client.submit(
                    decision.provider, task.priority, _prompt(task), task.project, task.id
                )
            except DelegationError as exc:
                self.counters["submit_failed"] += 1
                await self._fall_back(task, f"submit to {decision.provider} failed: {exc}")
                return False
            try:
                await asyncio.to_thread(sidecars.mark_delegated, task, job_id)
            except TaskError as exc:
                # The job runs but its id is not on disk: a restart would submit it again.
                log.error("%s (job %s)", exc, job_id)
            self.counters["submitted"] += 1
            self.jobs[task.key] = JobView(task.key, job_id, decision.provider, "queued", self._now())
            self._emit(
                "delegated", task=task.key, reason=decision.reason, provider=decision.provider, job=job_id
            )
            return True
        finally:
            self.in_flight.discard(task.key)

    async def _fall_back(self, task: Task, reason: str) -> None:
        """Give the task back to the local Claude Code path (its sidecar removed), logged once."""
        self.counters["fallbacks"] += 1
        self.local_only.add((task.key, task.fingerprint))
        self._forget(task.key)
        try:
            await asyncio.to_thread(sidecars.clear_sidecar, task, "delegated")
        except TaskError as exc:
            log.error("%s", exc)
        log.warning("%s: %s; it runs locally", task.path, reason)
        self._emit("delegation_fallback", task=task.key, reason=reason)

    # ----------------------------------------------------------------- reaper

    async def reap(self, tasks: list[Task]) -> bool:
        """Look at the job of every delegated task in `tasks`; True if any task finished or fell back."""
        live = {t.key for t in tasks}
        for key in [k for k in self.jobs if k not in live and k not in self.in_flight]:
            del self.jobs[key]  # finished elsewhere, or its file was removed by hand
        for seen in (self._poll_errors, self._unknown_since):
            for key in [k for k in seen if k not in live]:
                del seen[key]
        gate = asyncio.Semaphore(REAP_CONCURRENCY)

        async def one(task: Task) -> bool:
            async with gate:
                return await self._reap_one(task)

        results = await asyncio.gather(*(one(t) for t in tasks if t.key not in self.in_flight))
        return any(results)

    async def _reap_one(self, task: Task) -> bool:
        job_id, since = await asyncio.to_thread(_sidecar, task)
        if job_id is None:
            return False  # gone since the scan
        if job_id == SUBMITTING:
            decision = decide(task)
            if not decision.delegated:
                await self._fall_back(task, "interrupted delegation no longer routed to a provider")
                return True
            log.warning("%s: a submit was cut off; submitting again", task.path)
            return not await self.submit(task, decision, resubmit=True)
        try:
            job = await self.client.get(job_id)
        except DelegationError as exc:
            if exc.status == 404:
                await self._fall_back(task, f"job {job_id} is unknown to the job service")
                return True
            if isinstance(exc, UnknownStatus) and self._unknown_too_long(task):
                # Like a lost job: nothing says the job will ever give a result, and the local path can.
                bound = format_duration(self._config.unknown_status_timeout)
                await self._fall_back(
                    task, f"job {job_id} reported the unknown status {exc.value!r} for {bound}"
                )
                return True
            if self._poll_errors.get(task.key) != str(exc):
                log.warning("%s: job %s: %s; trying again", task.key, job_id, exc)
            self._poll_errors[task.key] = str(exc)
            state, last_poll = "not finished", f"; last poll: {exc}"
        else:
            self._poll_errors.pop(task.key, None)
            self._unknown_since.pop(task.key, None)
            provider = job.provider or decide(task).provider
            self.jobs[task.key] = JobView(task.key, job_id, provider, job.status, since, job.cost_usd)
            if job.finished:
                await self._finish(task, job, provider, since)
                return True
            state, last_poll = f"still {job.status}", ""
        if since is None or self._now() - since < self._config.job_timeout:
            return False
        bound = format_duration(self._config.job_timeout)
        await self._time_out(
            task,
            job_id,
            since,
            f"delegated job {job_id} {state} {bound} after its submit (delegation.job_timeout){last_poll}",
        )
        return True

    async def _time_out(self, task: Task, job_id: str, since: float, reason: str) -> None:
        # Failed rather than run locally: the service still holds the job and may be doing (and billing)
        # the work, so a local run could do it twice; a job this late wants a person to look.
        provider = self.jobs[task.key].provider if task.key in self.jobs else decide(task).provider
        await self._fail(task, job_id, reason, self._footer(job_id, provider, None, since))

    def _unknown_too_long(self, task: Task) -> bool:
        first = self._unknown_since.setdefault(task.key, self._now())
        return self._now() - first >= self._config.unknown_status_timeout

    def _footer(
        self, job_id: str, provider: str, cost_usd: float | None, since: float | None
    ) -> dict[str, footers.FooterValue]:
        now = self._now()
        return {
            "provider": provider,
            "job": job_id,
            "cost_usd": cost_usd,
            "submitted": iso(since) if since is not None else None,
            "ended": iso(now),
            "duration": format_duration(max(0.0, now - since)) if since is not None else None,
            "how": "delegated",
        }

    async def _finish(self, task: Task, job: Job, provider: str, since: float | None) -> None:
        footer = self._footer(job.id, provider, job.cost_usd, since)
        if job.status == "failed":
            reason = f"delegated job {job.id} failed: {job.error or 'no error given'}"
            await self._fail(task, job.id, reason, footer, job.error or "delegated job failed")
            return
        result = job.result or ""
        footer["result"] = _excerpt(result)
        size = len(result.encode())
        if size > self._config.max_result_bytes:
            # Refused rather than cut: the service keeps the whole result, so nothing is lost, done/ never
            # holds a file of unbounded size or a new kind of file beside it, and a result this large is
            # more often a runaway than an answer, so a person looks before dependent tasks run on it.
            reason = (
                f"delegated job {job.id} completed with a result of {human_bytes(size)} ({size:,} bytes), "
                f"over delegation.max_result_bytes ({human_bytes(self._config.max_result_bytes)}); "
                f"the job service keeps it: cfo delegate result {job.id}"
            )
            await self._fail(task, job.id, reason, footer)
            return
        section = f"## Result ({provider})\n\n{result.rstrip()}\n" if result.strip() else ""
        await self._settle(
            task,
            "completed",
            functools.partial(moves.complete, task.path, footer, section),
            reason=f"delegated to {provider}",
            provider=provider,
            job=job.id,
            seconds=round(self._now() - since, 1) if since is not None else None,
        )

    async def _fail(
        self,
        task: Task,
        job_id: str,
        reason: str,
        footer: dict[str, footers.FooterValue],
        short: str | None = None,
    ) -> None:
        """Move the task to failed/ with `reason` in its footer; the event carries `short` if given."""
        move = functools.partial(moves.fail, task.path, reason, footer)
        await self._settle(task, "failed", move, reason=short or reason, job=job_id)

    async def _settle(
        self, task: Task, outcome: Literal["completed", "failed"], move: Callable[[], Path], **event: object
    ) -> None:
        """Make the queue move of a finished task, then count and announce it; a failed move is logged."""
        try:
            await asyncio.to_thread(move)
        except TaskError as exc:
            log.error("%s", exc)
            return
        finally:
            self._forget(task.key)
        self.counters[outcome] += 1  # the engine's own task counters count the event
        self._emit(outcome, task=task.key, **event)

    def _forget(self, key: str) -> None:
        self.jobs.pop(key, None)
        self._poll_errors.pop(key, None)
        self._unknown_since.pop(key, None)

    def view(self, key: str) -> JobView | None:
        return self.jobs.get(key)


def _prompt(task: Task) -> str:
    body = task.body.strip()
    return body if body else task.title


def _excerpt(text: str) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= RESULT_EXCERPT else flat[: RESULT_EXCERPT - 1] + "…"


def _sidecar(task: Task) -> tuple[str | None, float | None]:
    try:
        since = sidecars.sidecar_since(task, "delegated")
    except TaskError:
        since = None
    return sidecars.delegated_job(task), since
