"""Dispatcher: each round scans the queues, resolves dependencies, hands delegated tasks off, claims the
ready tasks in priority order and launches them in idle pool sessions."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import replace
from pathlib import Path
from typing import Protocol

from engine import moves, sidecars
from engine import queue as q
from engine.bounded import listed
from engine.clock import iso
from engine.context import Context
from engine.delegation.manager import DelegationManager
from engine.delegation.router import Decision
from engine.filewatch import FileWatch, becoming_projects
from engine.finisher import Finisher
from engine.launch import LaunchError, agent_running, start_and_submit
from engine.quota import QuotaMonitor
from engine.resumeids import ResumeIds
from engine.runtime import Running
from engine.safetext import visible
from engine.state import IDLE, LAUNCHING, OUT_OF_POOL, WORKING, Failure
from engine.switcher import Switcher
from engine.tasks import NOWHERE, DepStatus, DoneListing, Task, TaskError, resolve_dependencies, task_id_of
from engine.tmux import TmuxError

log = logging.getLogger(__name__)

LAUNCH_HOLD_FIRST = 15.0  # a session whose launch failed is skipped this long, doubled per failure in a row
LAUNCH_HOLD_MAX = 300.0

Plan = tuple[dict[str, Path], q.ScanResult, list[Task], list[str], frozenset[str]]


class FleetQueue(Protocol):
    """The fleet's queue, as a dispatch round sees it (engine/fleet/tasks.py)."""

    def imported(self, task: Task) -> bool: ...

    async def exchange(
        self, projects: dict[str, Path], scan: q.ScanResult, ready: list[Task]
    ) -> list[Task]: ...


class Dispatcher:
    """Inbox to idle pool session, exactly once: a task is claimed (and the claim saved) before any
    message reaches an agent."""

    def __init__(
        self,
        ctx: Context,
        finisher: Finisher,
        quota: QuotaMonitor,
        switcher: Switcher,
        resume_ids: ResumeIds,
        files: FileWatch,
        delegation: DelegationManager | None,
    ) -> None:
        self.ctx = ctx
        self.finisher = finisher
        self.quota = quota
        self.switcher = switcher
        self.resume_ids = resume_ids
        self.files = files
        self.delegation = delegation
        self.fleet: FleetQueue | None = None
        """Set with a `fleet:` section: this host's tasks go to the fleet, and the fleet's come here."""
        self.scans = 0
        """Rounds that scanned the queues."""
        self.dispatchable = 0
        """Tasks ready to run at the last round."""
        self._blocked_notes: dict[str, tuple[list[str], frozenset[str]]] = {}
        """Blocked task key -> the reasons its sidecar holds and the dependencies that existed nowhere."""

    def is_drained(self) -> bool:
        """Nothing runs and nothing can be dispatched: the demo's headless run stops here."""
        ctx = self.ctx
        return not ctx.running and self.dispatchable == 0 and ctx.last_scan.unsettled == 0 and self.scans > 0

    def _plan(self) -> Plan:
        """A dispatch round's blocking part in one thread hop: projects, scan, ready tasks, idle sessions,
        and the folders that may become projects."""
        ctx = self.ctx
        projects = ctx.discover()
        scan = ctx.queue.scan(projects)
        ready, scan = self._ready_tasks(scan, projects)
        idle = self.idle_sessions() if ready and ctx.state.dispatch != "paused" else []
        return projects, scan, ready, idle, becoming_projects(ctx.config.projects_dir, projects)

    async def dispatch_once(self) -> None:
        ctx = self.ctx
        if self.switcher.swapping:
            return
        if self.quota.reset_due():
            await self.quota.limit_reset()
        if self.quota.prefer_first_due():
            await self.quota.return_to_first()
            return
        projects, scan, ready, idle, becoming = await asyncio.to_thread(self._plan)
        self.files.update(projects, becoming)
        ctx.last_scan = scan
        self.scans += 1
        if self.fleet is not None:
            ready = await self.fleet.exchange(projects, scan, ready)
        self.dispatchable = len(ready)
        for problem in scan.problems:
            log.error("%s", problem)
        for error in scan.errors:
            await self._fail_file(error)
        if scan.next_settle is not None:
            ctx.wake_later(ctx.wake_dispatch, max(0.05, scan.next_settle - ctx.clock.now()))
        if ctx.state.dispatch == "paused" or not ready or ctx.degraded is not None:
            return
        if self.delegation is not None:
            ready = self._delegate(ready)
            if not ready:
                return
        if len(idle) < len(ready):
            await asyncio.to_thread(ctx.ensure_pool_now, len(ctx.running) + len(ready))
            idle = await asyncio.to_thread(self.idle_sessions)
        pairs = list(zip(ready, idle, strict=False))
        claims = await asyncio.to_thread(_claim_all, pairs)
        runs = [
            self._record(task, session, claimed, at)
            for (task, session), (claimed, at) in zip(pairs, claims, strict=True)
            if claimed
        ]
        if not runs:
            return
        if not ctx.save():  # every claim is on disk in state before any message reaches an agent
            # A claim only in memory would be lost to a crash: the tasks go back to the inbox.
            for run in runs:
                await self._unclaim(run)
            return
        for run in runs:
            ctx.emit(
                "dispatched", session=run.session, task=run.task.key, account=run.account, model=run.model
            )
            ctx.spawn(self._launch(run))

    # ----------------------------------------------------------------- delegation

    def _delegate(self, ready: list[Task]) -> list[Task]:
        """Send the tasks routed to a provider to the job service; returns the ones that run locally."""
        assert self.delegation is not None
        local: list[Task] = []
        for task in ready:
            decision = self.delegation.route(task)
            if decision is None:
                local.append(task)
            else:
                self.delegation.in_flight.add(task.key)  # not routed again before its submit runs
                self.ctx.spawn(self._submit(task, decision))
        return local

    async def _submit(self, task: Task, decision: Decision) -> None:
        assert self.delegation is not None
        if await self.delegation.submit(task, decision):
            self.ctx.wake_reap.set()
        else:
            self.ctx.wake_dispatch.set()  # it fell back, or was taken: the next round runs it locally

    async def reap_once(self) -> None:
        """The delegation reaper: finished jobs go to done/ or failed/, lost ones back to the local path."""
        if self.delegation is None:
            return
        scan = self.ctx.last_scan
        delegated = [t for t in scan.tasks if scan.marked(t.key, "delegated")]
        if delegated and await self.delegation.reap(delegated):
            self.ctx.wake_dispatch.set()

    # ----------------------------------------------------------------- dependencies

    def _ready_tasks(self, scan: q.ScanResult, projects: dict[str, Path]) -> tuple[list[Task], q.ScanResult]:
        """The tasks that may run now, and the scan with the blocked ones' dependencies that exist nowhere."""
        listing = DoneListing()
        ready: list[Task] = []
        nowhere: dict[str, tuple[str, ...]] = {}
        for task in scan.tasks:
            if scan.marked(task.key, "delegated"):
                continue
            if (task.depends_on or task.unsafe_depends) and not (self.fleet and self.fleet.imported(task)):
                status = resolve_dependencies(task, self.ctx.config.projects_dir, projects, listing)
                if not status.met:
                    self._block(task, status)
                    if status.nowhere:
                        nowhere[task.key] = status.nowhere
                    continue
                if scan.marked(task.key, "blocked"):
                    self._unblock(task)
            ready.append(task)
        for key in set(self._blocked_notes) - {t.key for t in scan.tasks}:
            del self._blocked_notes[key]
        return ready, replace(scan, nowhere=nowhere)

    def _block(self, task: Task, status: DepStatus) -> None:
        reasons = status.waiting()
        known = self._blocked_notes.get(task.key)
        self._blocked_notes[task.key] = (reasons, frozenset(status.nowhere))
        if sidecars.mark_blocked(task, reasons):
            reason = listed(reasons, sep="; ")
            if status.unsafe:
                log.error("%s: blocked: %s", task.path, reason)
            self.ctx.emit("blocked", task=task.key, reason=reason)
        elif known is None or known[0] != reasons:
            try:  # what it waits for changed since the sidecar was written (or a cfo before this one did)
                sidecars.update_blocked(task, reasons)
            except TaskError as exc:
                log.error("%s", exc)
        for dep in status.nowhere:
            if known is None or dep not in known[1]:
                log.warning("%s waits for %s, which %s", task.key, dep, NOWHERE)

    def _unblock(self, task: Task) -> None:
        """Its dependencies are done: it is queued now, waiting for a session rather than for them."""
        try:
            if sidecars.clear_sidecar(task, "blocked"):
                self.ctx.emit("unblocked", task=task.key)
        except TaskError as exc:
            log.error("%s", exc)

    # ----------------------------------------------------------------- claim and launch

    def idle_sessions(self) -> list[str]:
        """Pool sessions, in range order, holding no task and showing a shell (one tmux call for all)."""
        ctx = self.ctx
        now = ctx.clock.now()
        commands = ctx.tmux.pane_commands()
        idle: list[str] = []
        for name in ctx.config.pool_names:
            if name not in commands or name in ctx.running or agent_running(commands[name]):
                continue
            s = ctx.state.sessions.get(name)
            if s and s.state == OUT_OF_POOL:
                continue
            if s and s.held_until is not None and now < s.held_until:
                continue
            idle.append(name)
        return idle

    async def _fail_file(self, error: TaskError) -> None:
        try:
            await asyncio.to_thread(moves.fail, error.path, error.reason)
        except TaskError as exc:
            log.error("%s", exc)
            return
        log.error("%s: moved to failed/: %s", visible(error.path), error.reason)
        self.ctx.emit("failed", task=_key_of(error.path), reason=error.reason)

    def _record(self, task: Task, session: str, claimed: Path, claimed_at: float) -> Running:
        """Note in memory and state that `session` holds `task` (the caller saves state once for all)."""
        ctx = self.ctx
        account = ctx.active_account()
        run = Running(
            session=session,
            task=task,
            claimed=claimed,
            account=account.name,
            model=ctx.config.agent.model_for(task.priority),
            started=ctx.clock.now(),
            phase="launching",
            claimed_at=claimed_at,
        )
        ctx.running[session] = run
        s = ctx.session_state(session)
        s.state, s.task, s.task_path = LAUNCHING, task.key, str(claimed)
        s.assigned_at, s.account, s.model = run.started, account.name, run.model
        return run

    async def _unclaim(self, run: Running) -> None:
        ctx = self.ctx
        ctx.running.pop(run.session, None)
        s = ctx.session_state(run.session)
        s.state, s.task, s.task_path = IDLE, None, None
        try:
            await asyncio.to_thread(moves.requeue, run.claimed)
        except TaskError as exc:
            ctx.halt(f"{exc}; state cannot be written either: restart cfo once it can, it recovers the task")

    async def _launch(self, run: Running) -> None:
        ctx = self.ctx
        task = run.task
        account = ctx.config.account(run.account) or ctx.config.accounts[0]
        s = ctx.session_state(run.session)
        resume = await asyncio.to_thread(self.resume_ids.get, run.session)
        # A task a swap could not resume goes on in the conversation it left, told to continue.
        left = ctx.state.conversations.get(task.key)
        try:
            if left is not None:
                launch = run.launch(ctx.config.agent, account, left, resumed=True)
            else:
                launch = run.launch(ctx.config.agent, account, resume)
            ctx.signal(run.session).unlink(missing_ok=True)
            enters = await start_and_submit(ctx.tmux, ctx.reader, launch, ctx.patterns)
            run.phase = "working"
            s.state = WORKING
            s.launch_failures, s.held_until = 0, None
            ctx.save()
            if resume and left is None:
                await asyncio.to_thread(self.resume_ids.used, run.session, resume, True)
            ctx.emit(
                "submitted",
                session=run.session,
                task=task.key,
                enters=enters,
                claimed_at=round(run.claimed_at, 4),
                typed_at=round(launch.typed_at, 4),
                ready_at=round(launch.ready_at, 4),
                pasted_at=round(launch.pasted_at, 4),
            )
            ctx.wake_watch.set()
        except (LaunchError, TmuxError, OSError) as exc:
            log.error("launch of %s in %s failed: %s", task.key, run.session, exc)
            if left is not None:
                ctx.state.conversations.pop(task.key, None)  # one chance: the next run starts afresh
            elif resume:
                await asyncio.to_thread(self.resume_ids.used, run.session, resume, False)
            ctx.running.pop(run.session, None)
            await asyncio.to_thread(moves.requeue, run.claimed)
            s.state, s.task, s.task_path = IDLE, None, None
            now = ctx.clock.now()
            s.launch_failed_at, s.launch_failures = now, s.launch_failures + 1
            s.held_until = now + hold_after(s.launch_failures)
            s.last_fail = Failure(now, f"launch failed: {exc}")
            log.warning(
                "%s: not used again before %s (launch failed %d time(s) in a row)",
                run.session,
                iso(s.held_until),
                s.launch_failures,
            )
            ctx.save()
            ctx.emit("launch_failed", session=run.session, task=task.key, reason=str(exc))
            ctx.emit("requeued", session=run.session, task=task.key, reason="launch failed")
            await self.finisher.stop_agent(run.session)
            ctx.wake_dispatch.set()


def hold_after(failures: int) -> float:
    """How long a session is skipped after `failures` launches failed in a row: 15 s, doubling to 5 min."""
    return float(min(LAUNCH_HOLD_MAX, LAUNCH_HOLD_FIRST * 2 ** max(0, failures - 1)))


def lift_holds(ctx: Context) -> list[str]:
    """Make every held session usable again now (a restart, or the operator); returns their names."""
    lifted = [name for name, s in ctx.state.sessions.items() if s.held_until is not None]
    for name in lifted:
        s = ctx.state.sessions[name]
        s.held_until, s.launch_failures = None, 0
    return lifted


def _claim_all(pairs: list[tuple[Task, str]]) -> list[tuple[Path | None, float]]:
    """Claim each task in dispatch order; a task someone else took (or that changed) gets None."""
    out: list[tuple[Path | None, float]] = []
    for task, _ in pairs:
        try:
            out.append((moves.claim(task), time.time()))
        except TaskError as exc:
            log.info("%s", exc)
            out.append((None, 0.0))
    return out


def _key_of(path: Path) -> str:
    """The task key of a file that could not be read; escaped, as its name may hold anything."""
    project = path.parent.parent.parent.name
    return visible(f"{project}:{task_id_of(path.name) or path.name}")
