"""Engine: owns the workers (dispatcher, watcher, lifecycle, recovery), the commands and the event stream."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable, Coroutine, Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from engine import queue as q
from engine import screen, transcript
from engine.accounts import next_usable
from engine.atomic import atomic_write
from engine.batch import PaneReader
from engine.clock import Clock, SystemClock, iso
from engine.config import Account, Config
from engine.conversations import (
    answers_match,
    conversation_dir,
    conversation_for,
    conversation_on_screen,
    recent_answers,
)
from engine.delegation.manager import DelegationManager
from engine.delegation.router import Decision
from engine.durations import format_duration
from engine.events import Event, EventLog
from engine.janitor import Janitor
from engine.launch import (
    Launch,
    LaunchError,
    agent_running,
    command_line,
    echoed,
    paste_and_submit,
    render_message,
    start_agent,
    task_marker,
    valid_resume_id,
)
from engine.lifecycle import ensure_pool, live_pool
from engine.lock import StateLock
from engine.notify import Notifier
from engine.runtime import Look, Running
from engine.safetext import visible
from engine.snapshot import Snapshot, build_snapshot, day_of
from engine.state import Failure, SessionKind, SessionState, State, StateStore
from engine.statusapi import StatusApiError, StatusServer
from engine.statusviews import metrics_text, routes
from engine.stophook import StopHookError, install_stop_hook
from engine.switcher import Trigger, swap
from engine.symlinks import ensure_links
from engine.tasks import DoneListing, Task, TaskError, read_task, resolve_dependencies, task_id_of
from engine.throughput import Throughput
from engine.tmux import TmuxClient, TmuxError
from engine.watchdog import Watchdog

log = logging.getLogger(__name__)

FULL_SCAN = 10.0  # the safety-net rescan when no file event arrives
DELEGATION_POLL = 5.0  # how often the reaper asks the job service about delegated tasks
WATCHDOG_TICK = 2.0  # how often blocked tasks are looked at between dispatch rounds
JANITOR_PERIOD = 3600.0  # housekeeping runs at start and then hourly
LAUNCH_RETRY_AFTER = 300.0  # a session whose launch failed is skipped this long
RESUME_ATTEMPTS = 2  # failed launches with one saved resume id before it is dropped
API_ERROR_RETRIES = 3
RECYCLE_WAIT = 15.0
EXIT_RETYPE = 2.0  # an agent still at its prompt this long after /exit did not get it
CAPTURE_LINES = 120
SCROLLBACK_LINES = 100_000  # recovery's deeper look: everything tmux kept
QUOTA_SECOND_LOOK = 2.0
CONTINUE = "continue"  # what a resumed conversation is told
AUTH_TASK_FAILURES = "auth_failures:task:"  # a counter per task, beside the per-session ones
OUT_OF_POOL = "out of pool"  # a session state: never dispatched into until the engine restarts
STOP_GRACE = 10.0  # how long a stop waits for workers before saving state anyway


def _prefer(fresh: screen.Stop | None, from_record: screen.Stop | None) -> screen.Stop | None:
    """The stop a turn ended on, from what is new on screen and the transcript's record: a server error new
    on screen vetoes; else the record's typed fields decide, named as the screen reads the same stop (the
    pattern a person recognises); else the screen."""
    if fresh is not None and fresh.kind == "server_error":
        return fresh
    if from_record is not None:
        return fresh if fresh is not None and fresh.kind == from_record.kind else from_record
    return fresh


class Engine:
    """The UI-free engine; the console and `cfo --no-ui` both drive one of these on one asyncio loop."""

    def __init__(
        self,
        config: Config,
        tmux: TmuxClient,
        clock: Clock | None = None,
        patterns: screen.Patterns | None = None,
        api_error_backoff: float = 10.0,
        full_scan: float = FULL_SCAN,
        delegation_poll: float = DELEGATION_POLL,
        delegation_options: Mapping[str, Any] | None = None,
        watchdog_tick: float = WATCHDOG_TICK,
    ) -> None:
        self.config = config
        self.tmux = tmux
        self.clock: Clock = clock or SystemClock()
        self.patterns = patterns or screen.load_patterns(config.screen.patterns_file)
        self.api_error_backoff = api_error_backoff
        self.full_scan = full_scan
        config.state_dir.mkdir(parents=True, exist_ok=True)
        self.store = StateStore(config.state_dir)
        self.state: State = self.store.load()
        self.events = EventLog(config.state_dir / "events.jsonl", now=self.clock.now)
        self.queue = q.Queue(max_bytes=config.tasks.max_bytes, settle=config.tasks.settle)
        self.running: dict[str, Running] = {}
        self.last_scan = q.ScanResult()
        self.dispatchable = 0
        self._tasks: set[asyncio.Task[Any]] = set()
        self._wake_dispatch = asyncio.Event()
        self._wake_watch = asyncio.Event()
        self._projects: dict[str, Path] = {}
        self._becoming: frozenset[str] = frozenset()  # watched for the next step of a queue being made
        self._pool_lock = threading.Lock()
        self.reader = PaneReader(tmux, CAPTURE_LINES)
        self.swapping = False
        self.cooldown_until = 0.0
        self._quota_logged: dict[str, tuple[str, str, str]] = {}  # per session: the last forensic line
        self._dedicated_text: dict[str, str] = {}
        self._dedicated_seen: dict[str, float] = {}
        # Per dedicated session: the latest answer its screen showed, and its conversation found by it.
        self._dedicated_conv: dict[str, tuple[str, transcript.Follower | None]] = {}
        self._activity_seen: dict[str, int] = {}
        self._resume_failures: dict[str, int] = {}
        self._refused_projects: set[str] = set()
        self._scans = 0
        self.delegation_poll = delegation_poll
        self.delegation = DelegationManager.from_config(
            config.delegation, self.emit, self.clock.now, self._count, **(delegation_options or {})
        )
        self._wake_reap = asyncio.Event()
        self.watchdog = Watchdog(config.watchdog, self.patterns)
        self.watchdog_tick = watchdog_tick
        self.status_port: int | None = None
        # File ages and alert windows are wall-clock matters, whatever clock drives the engine's decisions.
        self.notifier = Notifier(config.notifications, SystemClock())
        self.janitor = Janitor.from_config(config, SystemClock(), self.emit, event_log=self.events)
        self.janitor_period = JANITOR_PERIOD
        self.throughput = Throughput()
        self.events.subscribe(self._on_event)

    # ----------------------------------------------------------------- events and state

    def subscribe(self, callback: Callable[[Event], None]) -> Callable[[], None]:
        """Call `callback(event)` for every event from now on; returns the unsubscribe function."""
        return self.events.subscribe(callback)

    def emit(self, kind: str, **fields: Any) -> Event:
        return self.events.emit(kind, **fields)

    def _on_event(self, event: Event) -> None:
        if event.type == "completed":
            seconds = event.extra.get("seconds")
            self.throughput.record(
                event.ts, float(seconds) if isinstance(seconds, int | float) else None, event.account
            )

    def _count(self, counter: str) -> None:
        """A lifetime total and one for today (the console's 'done today'); days past a week age out."""
        now = self.clock.now()
        self.state.count(counter)
        self.state.count(f"{counter}:{day_of(now)}")
        cutoff = f"{counter}:{day_of(now - 7 * 86400)}"
        for key in [k for k in self.state.counters if k.startswith(counter + ":") and k < cutoff]:
            del self.state.counters[key]

    def save(self) -> None:
        self.store.save(self.state)

    def session_state(self, name: str) -> SessionState:
        kind: SessionKind = "dedicated" if name in self.config.dedicated_names else "pool"
        current = self.state.sessions.get(name)
        if current is None:
            current = SessionState(name=name, kind=kind, account=self.state.active_account)
            self.state.sessions[name] = current
        return current

    def snapshot(self) -> Snapshot:
        """What the console renders: state, running tasks and the last scan of the queues."""
        jobs = (
            {k: (v.provider, v.job, v.status) for k, v in self.delegation.jobs.items()}
            if self.delegation
            else None
        )
        now = self.clock.now()
        accounts = {
            a.name: (
                (self.state.accounts[a.name].usable_again_at, self.state.accounts[a.name].last_reset)
                if a.name in self.state.accounts
                else (None, None)
            )
            for a in self.config.accounts
        }
        return build_snapshot(
            self.config,
            self.state,
            self.last_scan,
            self.running,
            now,
            jobs=jobs,
            throughput=self.throughput.view(now, accounts),
        )

    async def pane_tail(self, name: str, lines: int = 40) -> str:
        """The last `lines` of a managed session's pane, with its colours (ANSI); empty if it is gone."""
        if not self.config.is_managed(name):
            return ""
        try:
            return await asyncio.to_thread(self.tmux.capture, name, lines, True)
        except TmuxError:
            return ""

    # ----------------------------------------------------------------- commands

    def pause_dispatch(self) -> None:
        if self.state.dispatch != "paused":
            self.state.dispatch = "paused"
            self.save()
            self.emit("paused", reason="operator")

    def resume_dispatch(self) -> None:
        if self.state.dispatch != "running":
            self.state.dispatch = "running"
            self.state.paused_until = None
            self.save()
            self.emit("resumed", reason="operator")
            self._wake_dispatch.set()

    def force_complete(self, name: str) -> bool:
        """Finish the task of session `name` now, as done; False if it runs none."""
        run = self.running.get(name)
        if run is None or run.phase != "working":
            return False
        run.phase = "finishing"
        # The agent is mid-turn: a /exit alone would wait under its input box until the turn ends.
        self._spawn(self._complete(run, "forced by operator", interrupt=True))
        return True

    def request_swap(self, reason: str) -> str | None:
        """Move everything to the next usable account now; returns its name, None if there is none."""
        target = next_usable(self.config, self.state, self.state.active_account, self.clock.now())
        if target is None or self.swapping:
            return None
        self._spawn(self._swap(Trigger(reason=reason)))
        return target.name

    async def _swap(self, trigger: Trigger) -> None:
        if self.swapping:
            return
        self.swapping = True
        try:
            await swap(self, trigger)
            self.cooldown_until = self.clock.now() + self.config.quota.reactivate_cooldown
        finally:
            self.swapping = False
            self._wake_dispatch.set()
            self._wake_watch.set()

    # ----------------------------------------------------------------- running

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        task.add_done_callback(self._report_crash)

    @staticmethod
    def _report_crash(task: asyncio.Task[Any]) -> None:
        if not task.cancelled() and task.exception() is not None:
            log.error("engine task failed", exc_info=task.exception())

    async def run(self, stop: asyncio.Event | None = None) -> None:
        """Start every worker and serve until `stop` is set; state is saved on the way out."""
        stop = stop or asyncio.Event()
        lock = StateLock(self.config.state_dir)
        lock.acquire()
        try:
            await self._run(stop)
        finally:
            lock.release()

    async def _run(self, stop: asyncio.Event) -> None:
        # Blocking tmux calls run in threads; the default pool (cores + 4) queues a 20-session swap.
        asyncio.get_running_loop().set_default_executor(
            ThreadPoolExecutor(max_workers=32, thread_name_prefix="cfo")
        )
        self._wake_dispatch = asyncio.Event()
        self._wake_watch = asyncio.Event()
        await self.startup()
        status_server = await self._start_status_api()
        loops = [
            asyncio.create_task(self._loop(self._wake_dispatch, lambda: self.full_scan, self.dispatch_once)),
            asyncio.create_task(
                self._loop(self._wake_watch, lambda: self.config.watcher.interval, self.watch_once)
            ),
            asyncio.create_task(self._watch_files()),
        ]
        loops.append(
            asyncio.create_task(self._loop(asyncio.Event(), lambda: self.watchdog_tick, self.watchdog_once))
        )
        loops.append(
            asyncio.create_task(self._loop(asyncio.Event(), lambda: self.janitor_period, self.janitor_once))
        )
        unsubscribe_notifier: Callable[[], None] | None = None
        if self.notifier.enabled:
            unsubscribe_notifier = self.subscribe(self.notifier.notify)
            loops.append(asyncio.create_task(self.notifier.run()))
        if self.delegation is not None:
            self._wake_reap = asyncio.Event()
            loops.append(
                asyncio.create_task(self._loop(self._wake_reap, lambda: self.delegation_poll, self.reap_once))
            )
        try:
            await stop.wait()
        finally:
            pending = [*loops, *self._tasks]
            for task in pending:
                task.cancel()
            _, stuck = await asyncio.wait(pending, timeout=STOP_GRACE)
            for task in stuck:
                log.error("a worker did not stop within %ss: %s", STOP_GRACE, task.get_coro())
            self.save()
            if unsubscribe_notifier is not None:
                unsubscribe_notifier()
            if status_server is not None:
                await status_server.close()
            if self.delegation is not None:
                await self.delegation.aclose()
            self.emit("stopped")

    async def _start_status_api(self) -> StatusServer | None:
        """The read-only HTTP status API when `status_api.listen` is set; a refusal is logged, not fatal."""
        api = self.config.status_api
        if api.listen is None:
            return None
        server = StatusServer(api.listen, api.allow_remote, routes(self), lambda: metrics_text(self))
        try:
            await server.start()
        except StatusApiError as exc:
            log.error("%s", exc)
            return None
        self.status_port = server.port
        log.info("status API on http://%s:%d/status", api.listen[0], server.port)
        return server

    async def _loop(
        self, wake: asyncio.Event, period: Callable[[], float], body: Callable[[], Coroutine[Any, Any, None]]
    ) -> None:
        while True:
            try:
                await body()
            except Exception:
                log.exception("worker %s failed; it goes on", body.__name__)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), timeout=period())
            wake.clear()

    async def startup(self) -> None:
        """Accounts, stop hooks, the pool, and recovery of tasks left claimed by an earlier run."""
        names = [a.name for a in self.config.accounts]
        if self.state.active_account not in names:
            self.state.active_account = names[0]
        for name, s in self.state.sessions.items():
            if s.state == OUT_OF_POOL:
                # A restart is how the operator says the account is logged in again: a fresh chance.
                s.state = "idle"
                self.state.counters.pop(f"auth_failures:{name}", None)
                log.info("%s: back in the pool after the restart", name)
        for key in [k for k in self.state.counters if k.startswith(AUTH_TASK_FAILURES)]:
            del self.state.counters[key]  # a restart gives every task a fresh chance too
        self.config.watcher.done_signal_dir.mkdir(parents=True, exist_ok=True)
        if self.config.agent.install_stop_hook:
            for account in self.config.accounts:
                try:
                    install_stop_hook(account.home, self.config.watcher.done_signal_dir)
                except StopHookError as exc:
                    log.error("%s", exc)
        links = await asyncio.to_thread(ensure_links, self.config)
        for problem in links.problems:
            log.error("%s: %s", problem.key, problem.message)
        await asyncio.to_thread(self.throughput.seed, self.events.path, self.clock.now())
        await asyncio.to_thread(self.ensure_pool_now, 0)
        await self.recover()
        self.save()
        self.emit("started", account=self.state.active_account)

    # ----------------------------------------------------------------- recovery

    def ensure_pool_now(self, wanted: int) -> None:
        with self._pool_lock:  # two workers creating the same missing session would collide
            ensure_pool(self.config, self.tmux, wanted)
            live = set(self.tmux.list_sessions())
        for name in [*self.config.pool_names, *self.config.dedicated_names]:
            if name in live:
                self.session_state(name)

    def _discover(self) -> dict[str, Path]:
        dedicated = {d.project.name: d.project for d in self.config.pool.dedicated}
        return q.discover_projects(self.config.projects_dir, dedicated, self._refused_projects)

    def _look(self, session: str) -> Look | None:
        if not self.tmux.has_session(session):
            return None
        return Look(
            command=self.tmux.current_command(session), text=self.tmux.capture(session, CAPTURE_LINES)
        )

    async def recover(self) -> None:
        """Reconcile every `.dispatched` file with tmux and state: adopt what still runs, requeue the rest."""
        self._projects = await asyncio.to_thread(self._discover)
        scan = await asyncio.to_thread(self.queue.scan, self._projects)
        holders = {s.task: name for name, s in self.state.sessions.items() if s.task}
        adopted: set[str] = set()
        for claimed in scan.claimed:
            if await asyncio.to_thread(q.reconcile_claim, claimed):
                continue
            project = next((p for p, d in self._projects.items() if claimed.parent.parent.parent == d), None)
            task_id = task_id_of(claimed.name)
            if project is None or task_id is None:
                continue
            key = f"{project}:{task_id}"
            session = await asyncio.to_thread(
                self._find_holder, task_id, holders.get(key), claimed, self._projects[project], adopted
            )
            if session is not None and await self._adopt(session, claimed, project):
                adopted.add(session)
                continue
            await asyncio.to_thread(q.requeue, claimed)
            self.emit("requeued", task=key, reason="recovered after restart: no agent was working on it")
        for name, s in self.state.sessions.items():
            if name not in adopted and s.state != "idle":
                s.state, s.task, s.task_path = "idle", None, None
        for name in await asyncio.to_thread(live_pool, self.config, self.tmux):
            if name not in adopted:
                await self._stop_agent(name)

    def _find_holder(
        self, task_id: str, hint: str | None, claimed: Path, project_dir: Path, taken: set[str]
    ) -> str | None:
        """The session whose agent took this task: the recorded holder if its message went in, else
        any managed session whose pane echoes the `[<id>.md]` prompt (the state file may be lost) —
        in the usual capture, then in the whole scrollback, then by the task's transcript."""
        marker = task_marker(f"{task_id}.md")
        candidates = [hint] if hint and hint not in taken else []
        candidates += [
            n for n in self.tmux.list_sessions() if self.config.is_managed(n) and n != hint and n not in taken
        ]
        looks: dict[str, Look] = {}
        for name in candidates:
            look = self._look(name)
            if look is None or not agent_running(look.command):
                continue
            recorded = self.state.sessions.get(name)
            if (name == hint and recorded is not None and recorded.state == "working") or echoed(
                look.text, marker, self.patterns
            ):
                return name
            looks[name] = look
        for name in looks:  # a long answer may have pushed the echo out of the usual capture
            try:
                if echoed(self.tmux.capture(name, SCROLLBACK_LINES), marker, self.patterns):
                    return name
            except TmuxError:
                continue
        try:
            since = claimed.stat().st_ctime - 60  # the claim's rename; its conversation began after
        except OSError:
            return None
        return self._holder_by_transcript(marker, project_dir, since, looks)

    def _holder_by_transcript(
        self, marker: str, project_dir: Path, since: float, looks: Mapping[str, Look]
    ) -> str | None:
        """The one session whose latest answer on screen is in the conversation that opened with
        `marker` (the echo is beyond the scrollback); None if no session or more than one matches."""
        answers: list[str] = []
        for account in self.config.accounts:
            uuid = conversation_for(account.home, project_dir, marker, since)
            if uuid is not None:
                answers = recent_answers(conversation_dir(account.home, project_dir) / f"{uuid}.jsonl")
                break
        if not answers:
            return None
        matches = []
        for name, look in looks.items():
            shown = screen.shown_answers(look.text, self.patterns)
            if shown and answers_match(shown[-1], answers):
                matches.append(name)
        if len(matches) != 1:
            return None
        log.info("%s: holds the task of %s by its transcript (the echo scrolled away)", matches[0], marker)
        return matches[0]

    async def _adopt(self, session: str, claimed: Path, project: str) -> bool:
        try:
            task = await asyncio.to_thread(
                read_task, claimed, project, self._projects[project], self.config.tasks.max_bytes
            )
        except TaskError as exc:
            log.error("%s", exc)
            return False
        prior = self.session_state(session)
        run = Running(
            session=session,
            task=task,
            claimed=claimed,
            account=prior.account or self.state.active_account or "",
            model=prior.model or self.config.agent.model_for(task.priority),
            started=prior.assigned_at or self.clock.now(),
            phase="working",
        )
        self.running[session] = run
        prior.state, prior.task, prior.task_path = "working", task.key, str(claimed)
        self.emit("recovered", session=session, task=task.key)
        return True

    # ----------------------------------------------------------------- dispatcher

    def is_drained(self) -> bool:
        """Nothing runs and nothing can be dispatched: the demo's headless run stops here."""
        return (
            not self.running and self.dispatchable == 0 and self.last_scan.unsettled == 0 and self._scans > 0
        )

    def _prefer_first_due(self) -> bool:
        """quota.prefer_first: return to the first account once the limit it hit has reset, outside the
        cooldown and when no task would be moved. An account left without a recorded limit (the operator
        swapped) is not returned to."""
        if not self.config.quota.prefer_first or self.running or self.state.dispatch == "paused":
            return False
        now = self.clock.now()
        first = self.config.accounts[0].name
        if self.state.active_account in (None, first) or now < self.cooldown_until:
            return False
        usable = self.state.accounts.get(first)
        return usable is not None and usable.usable_again_at is not None and usable.usable_at(now)

    async def _limit_reset(self) -> None:
        """The earliest limit has reset: resume dispatch, and the waiting conversations where they can run."""
        now = self.clock.now()
        self.state.dispatch, self.state.paused_until = "running", None
        for account in self.state.accounts.values():
            account.reset_if_passed(now)
        self.save()
        self.emit("resumed", reason="limit reset", account=self.state.active_account)
        waiting = [r for r in self.running.values() if r.phase == "waiting"]
        usable = next_usable(self.config, self.state, None, now)
        if usable is not None and usable.name != self.state.active_account:
            await self._swap(Trigger(reason="limit reset"))
            return
        for run in waiting:
            run.phase, run.quota_seen_at, run.resumed_at = "working", None, now
            await asyncio.to_thread(self.tmux.type_line, run.session, CONTINUE)

    def _plan(self) -> tuple[dict[str, Path], q.ScanResult, list[Task], list[str], frozenset[str]]:
        """A dispatch round's blocking part in one thread hop: projects, scan, ready tasks, idle sessions,
        and the folders that may become projects."""
        projects = self._discover()
        scan = self.queue.scan(projects)
        ready = self._ready_tasks(scan, projects)
        idle = self._idle_sessions() if ready and self.state.dispatch != "paused" else []
        return projects, scan, ready, idle, self._becoming_projects(projects)

    async def dispatch_once(self) -> None:
        if self.swapping:
            return
        if self.state.paused_until is not None and self.clock.now() >= self.state.paused_until:
            await self._limit_reset()
        if self._prefer_first_due():
            first = self.config.accounts[0].name
            await self._swap(Trigger(reason=f"back to {first}: its limit has reset", target=first))
            return
        projects, scan, ready, idle, becoming = await asyncio.to_thread(self._plan)
        if projects != self._projects or becoming != self._becoming:
            self._projects, self._becoming = projects, becoming
            self._restart_file_watch()
        self.last_scan = scan
        self._scans += 1
        self.dispatchable = len(ready)
        for problem in scan.problems:
            log.error("%s", problem)
        for error in scan.errors:
            await self._fail_file(error)
        if scan.next_settle is not None:
            self._wake_later(self._wake_dispatch, max(0.05, scan.next_settle - self.clock.now()))
        if self.state.dispatch == "paused" or not ready:
            return
        if self.delegation is not None:
            ready = self._delegate(ready)
            if not ready:
                return
        if len(idle) < len(ready):
            await asyncio.to_thread(self.ensure_pool_now, len(self.running) + len(ready))
            idle = await asyncio.to_thread(self._idle_sessions)
        pairs = list(zip(ready, idle, strict=False))
        claims = await asyncio.to_thread(self._claim_all, pairs)
        runs = [
            self._record(task, session, claimed, at)
            for (task, session), (claimed, at) in zip(pairs, claims, strict=True)
            if claimed
        ]
        if not runs:
            return
        self.save()  # every claim is on disk in state before any message reaches an agent
        for run in runs:
            self.emit(
                "dispatched", session=run.session, task=run.task.key, account=run.account, model=run.model
            )
            self._spawn(self._launch(run))

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
                self._spawn(self._submit(task, decision))
        return local

    async def _submit(self, task: Task, decision: Decision) -> None:
        assert self.delegation is not None
        if await self.delegation.submit(task, decision):
            self._wake_reap.set()
        else:
            self._wake_dispatch.set()  # it fell back, or was taken: the next round runs it locally

    async def reap_once(self) -> None:
        """The delegation reaper: finished jobs go to done/ or failed/, lost ones back to the local path."""
        if self.delegation is None:
            return
        scan = self.last_scan
        delegated = [t for t in scan.tasks if scan.marked(t.key, "delegated")]
        if delegated and await self.delegation.reap(delegated):
            self._wake_dispatch.set()

    def _ready_tasks(self, scan: q.ScanResult, projects: dict[str, Path]) -> list[Task]:
        listing = DoneListing()
        ready: list[Task] = []
        for task in scan.tasks:
            if scan.marked(task.key, "delegated"):
                continue
            if task.depends_on or task.unsafe_depends:
                status = resolve_dependencies(task, self.config.projects_dir, projects, listing)
                if not status.met:
                    self._block(task, status.missing, status.unsafe)
                    continue
                if scan.marked(task.key, "blocked"):
                    self._unblock(task)
            ready.append(task)
        return ready

    def _block(self, task: Task, missing: tuple[str, ...], unsafe: tuple[str, ...]) -> None:
        reasons = [f"unsafe depends_on entry {u!r}" for u in unsafe] + [f"waiting for {m}" for m in missing]
        if q.mark_blocked(task, reasons):
            if unsafe:
                log.error("%s: blocked: %s", task.path, "; ".join(reasons))
            self.emit("blocked", task=task.key, reason="; ".join(reasons))

    def _unblock(self, task: Task) -> None:
        """Its dependencies are done: it is queued now, waiting for a session rather than for them."""
        try:
            if q.clear_sidecar(task, "blocked"):
                self.emit("unblocked", task=task.key)
        except TaskError as exc:
            log.error("%s", exc)

    # ----------------------------------------------------------------- watchdog

    async def watchdog_once(self) -> None:
        """Blocked tasks: dispatch those whose dependencies are done now, report and then fail the
        ones that waited too long. (Stalled sessions are judged on the watcher's looks.)"""
        scan = self.last_scan
        blocked = [t for t in scan.tasks if scan.marked(t.key, "blocked")]
        if not blocked:
            return
        # Sidecar ages are file times: wall clock, whatever clock the engine is given.
        now = time.time()
        verdicts = await asyncio.to_thread(
            self.watchdog.blocked, blocked, self.config.projects_dir, self._projects, now
        )
        wake = False
        for v in verdicts:
            waited = format_duration(now - v.since)
            waiting = ", ".join(v.missing)
            if v.verdict == "ready":
                wake = True
            elif v.verdict == "warn":
                log.warning("%s: blocked for %s, waiting for %s", v.task.path, waited, waiting)
                self.emit("blocked_too_long", task=v.task.key, reason=f"blocked for {waited}: {waiting}")
            else:
                reason = f"blocked for {waited}; still waiting for {waiting}"
                try:
                    await asyncio.to_thread(q.fail, v.task.path, reason)
                except TaskError as exc:
                    log.error("%s", exc)
                    continue
                log.error("%s: moved to failed/: %s", v.task.path, reason)
                self._count("failed")
                self.emit("failed", task=v.task.key, reason=reason)
                wake = True
        if wake:
            self._wake_dispatch.set()

    async def janitor_once(self) -> None:
        """Housekeeping (see engine/janitor.py); sessions being launched count as live."""

        def sweep() -> None:
            live = set(self.tmux.list_sessions()) | set(self.running)
            self.janitor.run_once(self._discover(), live)

        try:
            await asyncio.to_thread(sweep)
        except TmuxError as exc:
            log.error("janitor: %s", exc)

    async def _observe(self, run: Running, text: str, now: float) -> None:
        """A working session whose pane has not changed for `watchdog.stalled_after` is stalled."""
        verdict = self.watchdog.observe(run.session, text, now)
        if verdict is None:
            return
        s = self.session_state(run.session)
        if verdict == "stalled":
            quiet = format_duration(self.config.watchdog.stalled_after)
            reason = f"no output for {quiet}"
            s.state = "stalled"
            try:
                await asyncio.to_thread(q.mark_stuck, run.claimed, f"{run.session}: {reason}")
            except TaskError as exc:
                log.error("%s", exc)
            log.warning("%s: stalled on %s: %s", run.session, run.task.key, reason)
            self.emit("stalled", session=run.session, task=run.task.key, account=run.account, reason=reason)
        else:
            s.state = "working"
            try:
                await asyncio.to_thread(q.clear_sidecar, run.claimed, "stuck")
            except TaskError as exc:
                log.error("%s", exc)
            self.emit("unstalled", session=run.session, task=run.task.key)
        self.save()

    def _idle_sessions(self) -> list[str]:
        """Pool sessions, in range order, holding no task and showing a shell (one tmux call for all)."""
        now = self.clock.now()
        commands = self.tmux.pane_commands()
        idle: list[str] = []
        for name in self.config.pool_names:
            if name not in commands or name in self.running or agent_running(commands[name]):
                continue
            s = self.state.sessions.get(name)
            if s and s.state == OUT_OF_POOL:
                continue
            if s and s.launch_failed_at and now - s.launch_failed_at < LAUNCH_RETRY_AFTER:
                continue
            idle.append(name)
        return idle

    async def _fail_file(self, error: TaskError) -> None:
        try:
            await asyncio.to_thread(q.fail, error.path, error.reason)
        except TaskError as exc:
            log.error("%s", exc)
            return
        log.error("%s: moved to failed/: %s", visible(error.path), error.reason)
        self.emit("failed", task=self._key_of(error.path), reason=error.reason)

    def _key_of(self, path: Path) -> str:
        """The task key of a file that could not be read; escaped, as its name may hold anything."""
        project = path.parent.parent.parent.name
        return visible(f"{project}:{task_id_of(path.name) or path.name}")

    def _resume_path(self, session: str) -> Path:
        return self.config.agent.resume_dir / f"{session}-resume-id.txt"

    def save_resume_id(self, session: str, value: str) -> bool:
        """Write the session's resume id where the next launch (or the operator, after a crash) finds it."""
        path = self._resume_path(session)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(path, value + "\n", 0o600)
        except OSError as exc:
            log.error("%s: cannot save the resume id %s: %s", path, value, exc.strerror)
            return False
        return True

    def forget_resume_id(self, session: str) -> None:
        path = self._resume_path(session)
        try:
            path.unlink(missing_ok=True)
        except OSError as exc:
            log.warning("%s: cannot remove a resume id no longer known: %s", path, exc.strerror)

    def _resume_id(self, session: str) -> str | None:
        """The session's saved resume id; it stays saved until a launch with it goes through."""
        path = self._resume_path(session)
        try:
            value = path.read_text(encoding="utf-8").strip()
        except OSError:
            return None
        if not valid_resume_id(value):
            path.unlink(missing_ok=True)
            log.warning("%s: not a session UUID (%r); ignored", path, value[:60])
            return None
        return value

    def _resume_used(self, session: str, value: str, launched: bool) -> None:
        """Consume the resume id once a launch with it went through; after RESUME_ATTEMPTS failed
        launches it is dropped too, as the agent may be refusing it."""
        key = f"{session}:{value}"
        path = self._resume_path(session)
        if not launched:
            failures = self._resume_failures.get(key, 0) + 1
            self._resume_failures[key] = failures
            if failures < RESUME_ATTEMPTS:
                log.info("%s: kept for the next launch of %s", path, session)
                return
            log.warning("%s: %d launches with it failed; dropped", path, failures)
        self._resume_failures.pop(key, None)
        try:
            current = path.read_text(encoding="utf-8").strip()
        except OSError:
            return
        if current == value:  # a newer id saved meanwhile is the next launch's
            try:
                path.unlink(missing_ok=True)
            except OSError as exc:
                log.warning("%s: cannot remove the used resume id: %s", path, exc.strerror)

    def _signal(self, session: str) -> Path:
        return self.config.watcher.done_signal_dir / f"agent-done-{session}"

    @staticmethod
    def _claim_all(pairs: list[tuple[Task, str]]) -> list[tuple[Path | None, float]]:
        """Claim each task in dispatch order; a task someone else took (or that changed) gets None."""
        out: list[tuple[Path | None, float]] = []
        for task, _ in pairs:
            try:
                out.append((q.claim(task), time.time()))
            except TaskError as exc:
                log.info("%s", exc)
                out.append((None, 0.0))
        return out

    def _record(self, task: Task, session: str, claimed: Path, claimed_at: float) -> Running:
        """Note in memory and state that `session` holds `task` (the caller saves state once for all)."""
        account = self.config.account(self.state.active_account or "") or self.config.accounts[0]
        run = Running(
            session=session,
            task=task,
            claimed=claimed,
            account=account.name,
            model=self.config.agent.model_for(task.priority),
            started=self.clock.now(),
            phase="launching",
            claimed_at=claimed_at,
        )
        self.running[session] = run
        s = self.session_state(session)
        s.state, s.task, s.task_path = "launching", task.key, str(claimed)
        s.assigned_at, s.account, s.model = run.started, account.name, run.model
        return run

    def make_launch(
        self, run: Running, account: Account, resume_id: str | None, resumed: bool = False
    ) -> Launch:
        """What to type for `run` under `account`: the task's message, or just "continue" when `resumed`
        (the conversation `resume_id` already holds the task)."""
        agent = self.config.agent
        task = run.task
        return Launch(
            session=run.session,
            line=command_line(
                task.project_dir, account.home, agent.command, agent.args, run.model, resume_id
            ),
            message=CONTINUE if resumed else render_message(agent.message_template, task.filename, task.body),
            marker=CONTINUE if resumed else task_marker(task.filename),
            prompt_timeout=agent.prompt_timeout,
        )

    async def _launch(self, run: Running) -> None:
        task = run.task
        account = self.config.account(run.account) or self.config.accounts[0]
        s = self.session_state(run.session)
        resume = await asyncio.to_thread(self._resume_id, run.session)
        try:
            launch = self.make_launch(run, account, resume)
            self._signal(run.session).unlink(missing_ok=True)
            await start_agent(self.tmux, self.reader, launch, self.patterns)
            enters = await paste_and_submit(self.tmux, self.reader, launch, self.patterns)
            run.phase = "working"
            s.state = "working"
            self.save()
            if resume:
                await asyncio.to_thread(self._resume_used, run.session, resume, True)
            self.emit(
                "submitted",
                session=run.session,
                task=task.key,
                enters=enters,
                claimed_at=round(run.claimed_at, 4),
                typed_at=round(launch.typed_at, 4),
                ready_at=round(launch.ready_at, 4),
                pasted_at=round(launch.pasted_at, 4),
            )
            self._wake_watch.set()
        except (LaunchError, TmuxError, OSError) as exc:
            log.error("launch of %s in %s failed: %s", task.key, run.session, exc)
            if resume:
                await asyncio.to_thread(self._resume_used, run.session, resume, False)
            self.running.pop(run.session, None)
            await asyncio.to_thread(q.requeue, run.claimed)
            s.state, s.task, s.task_path = "idle", None, None
            s.launch_failed_at = self.clock.now()
            s.last_fail = Failure(self.clock.now(), f"launch failed: {exc}")
            self.save()
            self.emit("launch_failed", session=run.session, task=task.key, reason=str(exc))
            self.emit("requeued", session=run.session, task=task.key, reason="launch failed")
            await self._stop_agent(run.session)
            self._wake_dispatch.set()

    # ----------------------------------------------------------------- watcher

    def _look_all(self, names: list[str], quiet: list[str]) -> tuple[dict[str, Look], set[str]]:
        """One look at every session in `names`, and at those in `quiet` whose window printed something
        since the last look (idle agents print nothing, so they cost nothing): three tmux calls at most.
        Also the names of every live session, from the same listing."""
        commands = self.tmux.pane_commands()
        wanted = [n for n in names if n in commands]
        if quiet:
            activity = self.tmux.pane_activity()
            for name in quiet:
                stamp = activity.get(name)
                # Seconds resolution: anything in the second of the last look counts as new again.
                if name in commands and stamp is not None and stamp >= self._activity_seen.get(name, 0):
                    wanted.append(name)
                    self._activity_seen[name] = int(time.time())
        texts = self.tmux.capture_many(wanted, CAPTURE_LINES)
        return {n: Look(command=commands[n], text=texts[n]) for n in wanted if n in texts}, set(commands)

    async def watch_once(self) -> None:
        working = [r for r in self.running.values() if r.phase == "working"]
        dedicated = list(self.config.dedicated_names)
        if not working and not dedicated:
            await self._keep_pool(await asyncio.to_thread(self.tmux.list_sessions))
            return
        awaiting = [n for n in dedicated if n in self._dedicated_seen]  # due a second look, printed or not
        quiet = [n for n in dedicated if n not in self._dedicated_seen]
        looks, live = await asyncio.to_thread(self._look_all, [r.session for r in working] + awaiting, quiet)
        await asyncio.gather(*(self._check(r, looks.get(r.session)) for r in working))
        if dedicated and not self.swapping:
            await self._watch_dedicated(looks, self.clock.now())
        await self._keep_pool(live)

    async def _keep_pool(self, live: set[str] | list[str]) -> None:
        """Recreate pool sessions when fewer than `min` are alive (one was killed or its shell exited);
        `live` is a listing this round already made, so a round where nothing vanished costs no call."""
        auto = self.config.pool.autonomous
        alive = sum(1 for name in auto.names() if name in live)
        if alive >= auto.min or self.swapping:
            return
        log.warning("only %d of at least %d pool sessions are alive; recreating", alive, auto.min)
        try:
            await asyncio.to_thread(self.ensure_pool_now, 0)
        except TmuxError as exc:
            log.error("recreating pool sessions: %s", exc)

    async def _check(self, run: Running, look: Look | None) -> None:
        if look is None:  # gone, or vanished between the two calls: make sure before calling it a crash
            look = await asyncio.to_thread(self._look, run.session)
        if run.phase != "working":
            return
        if look is None:
            await self._crashed(run, "its tmux session vanished")
            return
        if not agent_running(look.command):
            await self._crashed(run, f"the agent exited ({look.command} is in the foreground)")
            return
        now = self.clock.now()
        signal = self._signal(run.session)
        signalled = signal.exists()
        # The transcript is read only when something happened: the pane changed or the turn ended.
        record = (
            await asyncio.to_thread(self._follow, run) if signalled or look.text != run.last_text else None
        )
        stop = self._turn_stop(run, look.text, record)
        run.last_text = look.text
        if stop is not None:
            if signalled:
                signal.unlink(missing_ok=True)  # a turn that ended on a stop is not a completion
            await self._on_stop(run, stop, now)
            return
        run.retry_at = run.quota_seen_at = None
        self._quota_logged.pop(run.session, None)
        ended = (
            screen.turn_ended(look.text, self.patterns)
            and screen.read_state(look.text, self.patterns) == "idle"
        )
        if (ended or signalled) and run.follower is not None and run.follower.stop is not None:
            # The transcript says the turn ended on an API error whose wording is unknown: not a completion.
            signal.unlink(missing_ok=True)
        elif ended or signalled:
            run.phase = "finishing"
            await self._complete(run, "done signal" if signalled and not ended else "turn ended")
        elif now - max(run.started, run.resumed_at) > self.config.watcher.idle_timeout:
            run.phase = "finishing"
            await self._give_up(
                run, f"timed out: not finished within {format_duration(self.config.watcher.idle_timeout)}"
            )
        else:
            await self._observe(run, look.text, now)

    async def _on_stop(self, run: Running, stop: screen.Stop, now: float) -> None:
        if stop.kind == "server_error":
            if run.retry_at is None:
                if run.continues >= API_ERROR_RETRIES:
                    run.phase = "finishing"
                    await self._requeue(run, f"API error {API_ERROR_RETRIES + 1} times: {stop.snippet}")
                    return
                run.retry_at = now + self.api_error_backoff * (2**run.continues)
                self.emit("api_error", session=run.session, task=run.task.key, reason=stop.snippet)
            elif now >= run.retry_at:
                run.continues += 1
                run.retry_at = None
                await asyncio.to_thread(self.tmux.type_line, run.session, CONTINUE)
            return
        if stop.kind == "quota":
            await self._on_quota(run, stop, now)
            return
        await self._on_auth(run, stop)

    async def _on_auth(self, run: Running, stop: screen.Stop) -> None:
        """Not a quota hit: restart the session once (a fresh agent re-reads its credentials) and
        requeue the task; a second failure of the session takes it out of the pool, and a second failure
        of the task (in whichever session) fails it."""
        run.phase = "finishing"
        key, task_key = f"auth_failures:{run.session}", f"{AUTH_TASK_FAILURES}{run.task.key}"
        self.state.count(key)
        self.state.count(task_key)
        s = self.session_state(run.session)
        s.last_fail = Failure(self.clock.now(), f"auth: {stop.snippet}")
        self.emit(
            "auth_failed", session=run.session, task=run.task.key, reason=stop.snippet, account=run.account
        )
        session_out, task_out = self.state.counters[key] >= 2, self.state.counters[task_key] >= 2
        if not session_out and not task_out:
            await self._requeue(run, f"auth failure ({stop.pattern}); the session restarts")
            return
        self.state.counters.pop(task_key, None)
        if session_out:
            s.state = OUT_OF_POOL
            self.emit(
                "session_disabled",
                session=run.session,
                account=run.account,
                reason=f"auth failed twice: log the account in again ({stop.snippet})",
            )
            await self._give_up(run, f"auth failure twice in {run.session}: {stop.snippet}")
        else:
            reason = f"auth failure twice for this task, last in {run.session}: {stop.snippet}"
            await self._give_up(run, reason)

    def _follow(self, run: Running) -> transcript.ApiError | None:
        """Read what the run's conversation appended since the last look; the API-error record that ended
        the turn if it arrived now. The file is found once per account (a swap may move it)."""
        if run.follower is None or run.follower_account != run.account:
            account = self.config.account(run.account)
            if account is None:
                return None
            project = run.task.project_dir
            uuid = conversation_for(account.home, project, f"[{run.task.filename}]", run.claimed_at - 60)
            if uuid is None:
                return None
            path = conversation_dir(account.home, project) / f"{uuid}.jsonl"
            opened = transcript.opened_at(path)
            if run.claimed_at and opened is not None and opened.timestamp() < run.claimed_at - 1:
                return None  # an earlier run of the same task: this one's conversation is not written yet
            # Account homes share `projects`: the same file under the new home is read on from where it was.
            if run.follower is None or run.follower.path.resolve() != path.resolve():
                run.follower = transcript.Follower(path)
            run.follower_account = run.account
        return run.follower.poll()

    def _turn_stop(self, run: Running, text: str, record: transcript.ApiError | None) -> screen.Stop | None:
        """The stop that ended the run's turn, judged on what is new since the previous look, and on the
        transcript's API-error record first (its structured fields beat screen wording).

        A server error in the new screen text vetoes whatever came with it; an error already on screen at an
        earlier look neither hits again nor vetoes. A stop found earlier holds while the turn still shows one
        (on screen or as the transcript's latest record), so a second look and a back-off see it again.
        """
        fresh = screen.classify(text, self.patterns, since=run.last_text) if text != run.last_text else None
        from_record = screen.classify_record(record, self.patterns) if record is not None else None
        stop = _prefer(fresh, from_record)
        if stop is None and (
            (run.follower is not None and run.follower.stop is not None)
            or screen.classify(text, self.patterns) is not None
        ):
            stop = run.stop
        run.stop = stop
        return stop

    def _reset_of(self, message: str, now: float) -> float | None:
        local = datetime.now().astimezone().tzinfo or UTC
        reset = screen.parse_reset(message, datetime.fromtimestamp(now, local), local, self.patterns)
        return reset.timestamp() if reset else None

    def _quota_evidence(self, run: Running, stop: screen.Stop, now: float) -> tuple[float | None, bool]:
        """The limit evidence of a pool run: its conversation's latest API-error record."""
        return self._limit_evidence(stop, run.follower.stop if run.follower is not None else None, now)

    def _limit_evidence(
        self, stop: screen.Stop, ended_on: transcript.ApiError | None, now: float
    ) -> tuple[float | None, bool]:
        """(reset time if the message, or else the record the turn ended on, names one; whether that record
        is a usage limit: a server throttling requests answers 429 too, and is no confirmation)."""
        by_record = screen.classify_record(ended_on, self.patterns) if ended_on is not None else None
        confirmed = by_record is not None and by_record.kind == "quota"
        reset = self._reset_of(stop.message, now)
        if reset is None and ended_on is not None and confirmed:
            reset = self._reset_of(ended_on.text, now)
        return reset, confirmed

    def _decide_quota(
        self, reset: float | None, confirmed: bool, seen_at: float | None, now: float
    ) -> tuple[str, float | None]:
        """(decision, first seen): swap at once on strong evidence, else on a second look >= 2 s later."""
        if self.swapping:
            return "swap under way", seen_at
        if now < self.cooldown_until:
            return "ignored: within the cooldown after a swap", seen_at
        if reset is not None or confirmed:
            return "swap: " + ("reset time shown" if reset is not None else "transcript 429"), seen_at
        if seen_at is None:
            return "first look: confirm on a second look", now
        if now - seen_at >= QUOTA_SECOND_LOOK:
            return "swap: seen twice", seen_at
        return "waiting for the second look", seen_at

    async def _quota_hit(
        self,
        session: str,
        stop: screen.Stop,
        decision: str,
        reset: float | None,
        task: str | None,
        account: str,
    ) -> None:
        line = (stop.pattern, stop.snippet, decision)
        if self._quota_logged.get(session) != line:  # once per detection and decision, not every look
            self._quota_logged[session] = line
            log.warning(
                "quota: session=%s pattern=%s snippet=%r decision=%s",
                session,
                stop.pattern,
                stop.snippet,
                decision,
            )
        if not decision.startswith("swap:"):
            return
        self.emit("quota_hit", session=session, task=task, account=account, reason=stop.snippet)
        trigger = Trigger(
            reason=f"quota: {stop.pattern}",
            session=session,
            pattern=stop.pattern,
            snippet=stop.snippet,
            reset_at=reset,
        )
        await self._swap(trigger)

    async def _on_quota(self, run: Running, stop: screen.Stop, now: float) -> None:
        reset, confirmed = self._quota_evidence(run, stop, now)
        decision, run.quota_seen_at = self._decide_quota(reset, confirmed, run.quota_seen_at, now)
        await self._quota_hit(run.session, stop, decision, reset, run.task.key, run.account)

    def followed_conversations(self) -> frozenset[str]:
        """The ids of the conversations pool runs follow: never a dedicated session's own."""
        return frozenset(r.follower.uuid for r in self.running.values() if r.follower is not None)

    def _dedicated_record(self, name: str, text: str) -> transcript.ApiError | None:
        """Read what the dedicated session's own conversation appended since the last look; the API-error
        record that ended its turn if it arrived now.

        The conversation is the one whose latest answer the screen shows, looked for again only when that
        answer changes. A conversation met for the first time is read to its end as the baseline: an error
        already in it is history, never a fresh stop.
        """
        dedicated = self.config.dedicated_session(name)
        account = self.config.account(self.state.active_account or "")
        if dedicated is None or account is None:
            return None
        shown = screen.shown_answers(text, self.patterns)
        last = shown[-1] if shown else ""
        known = self._dedicated_conv.get(name)
        if known is None or known[0] != last:
            uuid, _ = conversation_on_screen(
                account.home, dedicated.project, shown, self.followed_conversations()
            )
            path = conversation_dir(account.home, dedicated.project) / f"{uuid}.jsonl" if uuid else None
            # No match (an answer not written yet, say): the conversation followed so far stays followed.
            follower = known[1] if known is not None else None
            if path is not None and (follower is None or follower.path.resolve() != path.resolve()):
                follower = transcript.Follower(path)
                follower.poll()
                follower.stop = None
                self._dedicated_conv[name] = (last, follower)
                return None
            self._dedicated_conv[name] = (last, follower)
        follower = self._dedicated_conv[name][1]
        return follower.poll() if follower is not None else None

    async def _watch_dedicated(self, looks: dict[str, Look], now: float) -> None:
        """Dedicated sessions are never dispatched into, but a limit shown there swaps like any other.

        Only text that is new since the previous look is judged, so an old limit already answered in
        the scrollback never triggers a swap; once the session's conversation is known, its API-error
        records are judged first, as for pool runs.
        """
        for name in self.config.dedicated_names:
            look = looks.get(name)
            previous = self._dedicated_text.get(name)
            if look is None and name in self._activity_seen and name not in self._dedicated_seen:
                continue  # nothing printed since the last look
            if look is None or not agent_running(look.command):
                self._dedicated_text.pop(name, None)
                self._dedicated_seen.pop(name, None)
                self._dedicated_conv.pop(name, None)
                continue
            self._dedicated_text[name] = look.text
            if previous is not None and previous == look.text and name not in self._dedicated_seen:
                continue  # unchanged panes cost one string compare
            record = await asyncio.to_thread(self._dedicated_record, name, look.text)
            if previous is None:
                continue  # first sight is the baseline
            awaiting = name in self._dedicated_seen  # the second look judges the whole turn again
            fresh = screen.classify(look.text, self.patterns, since=None if awaiting else previous)
            from_record = screen.classify_record(record, self.patterns) if record is not None else None
            stop = _prefer(fresh, from_record)
            if stop is None or stop.kind != "quota":
                self._dedicated_seen.pop(name, None)
                self._quota_logged.pop(name, None)
                continue
            known = self._dedicated_conv.get(name)
            ended_on = known[1].stop if known is not None and known[1] is not None else None
            reset, confirmed = self._limit_evidence(stop, ended_on, now)
            decision, seen = self._decide_quota(reset, confirmed, self._dedicated_seen.get(name), now)
            if seen is not None:
                self._dedicated_seen[name] = seen
            await self._quota_hit(name, stop, decision, reset, None, self.state.active_account or "")

    def _footer(self, run: Running, how: str) -> dict[str, q.FooterValue]:
        return {
            "session": run.session,
            "account": run.account,
            "model": run.model,
            "started": iso(run.started),
            "ended": iso(self.clock.now()),
            "how": how,
        }

    def _forget_task(self, key: str) -> None:
        """A task that completed or failed: one queued again under this id gets every retry afresh."""
        self.state.requeues.pop(key, None)
        self.state.counters.pop(f"{AUTH_TASK_FAILURES}{key}", None)

    async def _complete(self, run: Running, how: str, interrupt: bool = False) -> None:
        try:
            await asyncio.to_thread(q.complete, run.claimed, self._footer(run, how))
        except TaskError as exc:
            log.error("%s", exc)
        self._count("completed")
        # A finished turn proves the session's login works: an earlier auth failure no longer counts.
        self.state.counters.pop(f"auth_failures:{run.session}", None)
        self._forget_task(run.task.key)
        self.emit(
            "completed",
            session=run.session,
            task=run.task.key,
            account=run.account,
            reason=how,
            seconds=round(self.clock.now() - run.started, 1),
        )
        await self._release(run, stop_agent=interrupt)

    async def _give_up(self, run: Running, reason: str) -> None:
        try:
            await asyncio.to_thread(q.fail, run.claimed, reason, self._footer(run, "failed"))
        except TaskError as exc:
            log.error("%s", exc)
        self._count("failed")
        self._forget_task(run.task.key)
        self.emit("failed", session=run.session, task=run.task.key, account=run.account, reason=reason)
        await self._release(run, stop_agent=True)

    async def _requeue(self, run: Running, reason: str) -> None:
        try:
            await asyncio.to_thread(q.clear_sidecar, run.claimed, "stuck")
            await asyncio.to_thread(q.requeue, run.claimed)
        except TaskError as exc:
            log.error("%s", exc)
        self.emit("requeued", session=run.session, task=run.task.key, reason=reason)
        await self._release(run, stop_agent=True)

    async def _crashed(self, run: Running, what: str) -> None:
        run.phase = "finishing"
        crashes = self.state.requeues.get(run.task.key, 0) + 1
        self.state.requeues[run.task.key] = crashes
        self.session_state(run.session).last_fail = Failure(self.clock.now(), what)
        if crashes >= 2:
            await self._give_up(run, f"crashed twice: {what}")
        else:
            await self._requeue(run, f"crashed: {what}")

    async def _release(self, run: Running, stop_agent: bool = False) -> None:
        """The session is done with its task: a pool session recycles its agent and returns idle."""
        self._signal(run.session).unlink(missing_ok=True)
        self.watchdog.forget(run.session)
        s = self.session_state(run.session)
        s.task, s.task_path = None, None
        disabled = s.state == OUT_OF_POOL
        if s.kind == "pool":
            s.state = OUT_OF_POOL if disabled else "recycling"
            self.save()
            await self._stop_agent(run.session, interrupt=stop_agent)
        s.state = OUT_OF_POOL if disabled else "idle"
        self.running.pop(run.session, None)
        self.save()
        self._wake_dispatch.set()

    async def _stop_agent(self, session: str, interrupt: bool = True) -> None:
        """End the agent in a pool session (context recycle); kill the session if it will not go."""

        def stop() -> bool:
            if not self.tmux.has_session(session) or not agent_running(self.tmux.current_command(session)):
                return True
            if interrupt:
                self.tmux.send_keys(session, "Escape")
            self.tmux.type_line(session, "/exit")
            return False

        try:
            if await asyncio.to_thread(stop):
                return
            loop = asyncio.get_running_loop()
            deadline = loop.time() + RECYCLE_WAIT
            typed = loop.time()
            while loop.time() < deadline:
                await asyncio.sleep(0.1)
                look = await asyncio.to_thread(self._look, session)
                if look is None or not agent_running(look.command):
                    return
                if (
                    loop.time() - typed >= EXIT_RETYPE
                    and screen.read_state(look.text, self.patterns) == "idle"
                ):
                    # Typed while the agent was still starting, the line was lost to the terminal's
                    # line editing; at its prompt now, it takes it.
                    await asyncio.to_thread(self.tmux.type_line, session, "/exit")
                    typed = loop.time()
            log.warning("%s: the agent did not exit; the session is recreated", session)
            await asyncio.to_thread(self.tmux.kill_session, session)
            await asyncio.to_thread(self.ensure_pool_now, 0)
        except TmuxError as exc:
            log.error("%s: %s", session, exc)

    # ----------------------------------------------------------------- file events

    def _wake_later(self, event: asyncio.Event, delay: float) -> None:
        asyncio.get_running_loop().call_later(delay, event.set)

    def _restart_file_watch(self) -> None:
        self._wake_files.set()

    def _becoming_projects(self, projects: Mapping[str, Path]) -> frozenset[str]:
        """Folders under projects_dir that may yet become projects: the folder while it has no
        `.agent-queue`, else its `.agent-queue`. A clone or a copy makes the folder first and its files
        later, and the watch on projects_dir alone sees only the folder."""
        root = self.config.projects_dir
        try:
            entries = list(os.scandir(root)) if root is not None else []
        except OSError:
            return frozenset()
        out: set[str] = set()
        for entry in entries:
            if entry.name.startswith(".") or projects.get(entry.name) == Path(entry.path):
                continue
            try:
                if not entry.is_dir(follow_symlinks=False):
                    continue
            except OSError:
                continue
            queue = os.path.join(entry.path, ".agent-queue")
            if not os.path.isdir(os.path.join(queue, "inbox")):  # one with an inbox was refused
                out.add(queue if os.path.isdir(queue) else entry.path)
        return frozenset(out)

    async def _watch_files(self) -> None:
        """Wake the dispatcher on inbox changes and the watcher on done signals (watchfiles)."""
        from watchfiles import Change, awatch

        self._wake_files = asyncio.Event()
        signals = str(self.config.watcher.done_signal_dir)
        while True:
            self._wake_files.clear()
            paths = [signals] + [str(d / ".agent-queue" / "inbox") for d in self._projects.values()]
            if self.config.projects_dir and self.config.projects_dir.is_dir():
                paths.append(str(self.config.projects_dir))
            paths = [p for p in paths if Path(p).is_dir()]
            becoming = self._becoming
            paths += sorted(becoming)
            # Files that arrived while the watch was (re)starting raise no event: look once it is up.
            for delay in (0.2, 1.0):
                self._wake_later(self._wake_dispatch, delay)
            try:
                async for changes in awatch(
                    *paths,
                    stop_event=self._wake_files,
                    step=10,
                    debounce=30,
                    recursive=False,
                    yield_on_timeout=False,
                ):
                    if any(Path(p).parent == Path(signals) for _, p in changes):
                        self._wake_watch.set()
                    if any(
                        c != Change.deleted
                        and Path(p).parent != Path(signals)
                        # In a folder becoming a project only its queue's next step counts, not the
                        # edits of whoever works there.
                        and (str(Path(p).parent) not in becoming or Path(p).name in (".agent-queue", "inbox"))
                        for c, p in changes
                    ):
                        self._wake_dispatch.set()
            except Exception:
                current = asyncio.current_task()
                if current is not None and current.cancelling():
                    raise  # a cancellation that surfaced as another error: stop, do not watch again
                log.exception("file watch failed; the periodic scan goes on")
                await asyncio.sleep(self.full_scan)
