"""Engine: the composition root — builds the workers around a shared context, runs them, and serves the
commands, the snapshot and the event stream."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Coroutine, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from engine.batch import PaneReader
from engine.clock import Clock, SystemClock
from engine.config import Config
from engine.context import RETRY_MAX, Context
from engine.delegation.manager import DelegationManager
from engine.dispatcher import Dispatcher, lift_holds
from engine.events import Event, EventLog, EventType
from engine.filewatch import FileWatch
from engine.finisher import AUTH_TASK_FAILURES, Finisher, auth_failures
from engine.housekeeping import Housekeeping
from engine.janitor import Janitor
from engine.lock import EngineError, SocketLock, StateLock
from engine.notify import Notifier
from engine.patterns import Patterns, load_patterns
from engine.quota import QuotaMonitor
from engine.recovery import Recovery
from engine.redact import protect
from engine.resumeids import ResumeIds
from engine.runtime import Running
from engine.snapshot import Snapshot, build_snapshot
from engine.state import IDLE, OUT_OF_POOL, SessionState, State
from engine.statusapi import StatusApiError, StatusServer
from engine.statusviews import metrics_text, routes
from engine.stophook import StopHookError, install_stop_hook
from engine.switcher import Switcher, Trigger
from engine.symlinks import ensure_links
from engine.throughput import Throughput
from engine.tmux import TmuxClient, TmuxError
from engine.watchdog import Watchdog
from engine.watcher import Watcher

if TYPE_CHECKING:
    from engine.fleet.worker import Fleet

log = logging.getLogger(__name__)

FULL_SCAN = 10.0  # the safety-net rescan when no file event arrives
DELEGATION_POLL = 5.0  # how often the reaper asks the job service about delegated tasks
WATCHDOG_TICK = 2.0  # how often blocked tasks are looked at between dispatch rounds
JANITOR_PERIOD = 3600.0  # housekeeping runs at start and then hourly
STOP_GRACE = 10.0  # how long a stop waits for workers before saving state anyway
MOVE_RETRY = 5.0  # how often a finished task whose move to done/ or failed/ failed is moved again


class Engine:
    """The UI-free engine; the console and `cfo --no-ui` both drive one of these on one asyncio loop."""

    def __init__(
        self,
        config: Config,
        tmux: TmuxClient,
        clock: Clock | None = None,
        patterns: Patterns | None = None,
        api_error_backoff: float = 10.0,
        full_scan: float = FULL_SCAN,
        delegation_poll: float = DELEGATION_POLL,
        delegation_options: Mapping[str, Any] | None = None,
        watchdog_tick: float = WATCHDOG_TICK,
    ) -> None:
        protect(config)  # before anything can log, record or send a line that names a secret
        ctx = Context(
            config,
            tmux,
            clock or SystemClock(),
            patterns or load_patterns(config.screen.patterns_file),
        )
        self.ctx = ctx
        self.full_scan = full_scan
        self.delegation_poll = delegation_poll
        self.watchdog_tick = watchdog_tick
        self.janitor_period = JANITOR_PERIOD
        self.delegation = DelegationManager.from_config(
            config.delegation, ctx.emit, ctx.clock.now, **(delegation_options or {})
        )
        self.watchdog = Watchdog(config.watchdog, ctx.patterns)
        # File ages and alert windows are wall-clock matters, whatever clock drives the engine's decisions.
        self.notifier = Notifier(config.notifications, SystemClock())
        self.janitor = Janitor.from_config(config, SystemClock(), ctx.emit, event_log=ctx.events)
        self.throughput = Throughput()
        self.resume_ids = ResumeIds(config.agent.resume_dir)
        self.finisher = Finisher(ctx, self.watchdog)
        self.switcher = Switcher(ctx, self.finisher, self.resume_ids)
        self.quota = QuotaMonitor(ctx, self.switcher)
        self.watcher = Watcher(
            ctx, self.finisher, self.quota, self.switcher, self.watchdog, api_error_backoff
        )
        self.files = FileWatch(ctx, full_scan)
        self.dispatcher = Dispatcher(
            ctx, self.finisher, self.quota, self.switcher, self.resume_ids, self.files, self.delegation
        )
        self.recovery = Recovery(ctx, self.finisher)
        self.housekeeping = Housekeeping(ctx, self.watchdog, self.janitor)
        self.status_port: int | None = None
        self.fleet: Fleet | None = None
        if config.fleet is not None:
            from engine.fleet.worker import Fleet  # imports nats only once it runs

            self.fleet = Fleet(ctx, self.switcher, self.snapshot)
            self.switcher.authority = self.fleet
            self.dispatcher.fleet = self.fleet.tasks
        ctx.events.subscribe(self._on_event)

    # ----------------------------------------------------------------- what the workers share

    @property
    def config(self) -> Config:
        return self.ctx.config

    @property
    def tmux(self) -> TmuxClient:
        return self.ctx.tmux

    @property
    def clock(self) -> Clock:
        return self.ctx.clock

    @property
    def patterns(self) -> Patterns:
        return self.ctx.patterns

    @property
    def state(self) -> State:
        return self.ctx.state

    @property
    def events(self) -> EventLog:
        return self.ctx.events

    @property
    def reader(self) -> PaneReader:
        return self.ctx.reader

    @property
    def running(self) -> dict[str, Running]:
        return self.ctx.running

    def subscribe(self, callback: Callable[[Event], None]) -> Callable[[], None]:
        """Call `callback(event)` for every event from now on; returns the unsubscribe function."""
        return self.ctx.events.subscribe(callback)

    def emit(self, kind: EventType, **fields: Any) -> Event:
        return self.ctx.emit(kind, **fields)

    def save(self) -> None:
        self.ctx.save()

    def session_state(self, name: str) -> SessionState:
        return self.ctx.session_state(name)

    def is_drained(self) -> bool:
        """Nothing runs and nothing can be dispatched: the demo's headless run stops here."""
        return self.dispatcher.is_drained()

    def _on_event(self, event: Event) -> None:
        if event.type == "completed":
            seconds = event.extra.get("seconds")
            self.throughput.record(
                event.ts, float(seconds) if isinstance(seconds, int | float) else None, event.account
            )

    def snapshot(self) -> Snapshot:
        """What the console renders: state, running tasks and the last scan of the queues."""
        ctx = self.ctx
        jobs = (
            {k: (v.provider, v.job, v.status) for k, v in self.delegation.jobs.items()}
            if self.delegation
            else None
        )
        now = ctx.clock.now()
        accounts = {
            a.name: (
                (ctx.state.accounts[a.name].usable_again_at, ctx.state.accounts[a.name].last_reset)
                if a.name in ctx.state.accounts
                else (None, None)
            )
            for a in ctx.config.accounts
        }
        return build_snapshot(
            ctx.config,
            ctx.state,
            ctx.last_scan,
            ctx.running,
            now,
            jobs=jobs,
            throughput=self.throughput.view(now, accounts),
            degraded=ctx.degraded,
            fleet=self.fleet.view(time.time()) if self.fleet is not None else None,
            patterns=ctx.patterns,
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
        state = self.ctx.state
        if state.dispatch != "paused":
            state.dispatch = "paused"
            self.save()
            self.emit("paused", reason="operator")

    def resume_dispatch(self) -> None:
        state = self.ctx.state
        if state.dispatch != "running":
            state.dispatch = "running"
            state.paused_until = None
            self.save()
            self.emit("resumed", reason="operator")
            self.ctx.wake_dispatch.set()

    def force_complete(self, name: str) -> bool:
        """Finish the task of session `name` now, as done; False if it runs none."""
        run = self.running.get(name)
        if run is None or run.phase != "working":
            return False
        run.phase = "finishing"
        # The agent is mid-turn: a /exit alone would wait under its input box until the turn ends.
        self.ctx.spawn(self.finisher.complete(run, "forced by operator", interrupt=True))
        return True

    def retry_launches(self) -> list[str]:
        """Lift every hold a failed launch put on a session (the operator fixed the cause)."""
        lifted = lift_holds(self.ctx)
        if lifted:
            self.save()
            self.emit("resumed", reason="launch holds lifted: " + ", ".join(lifted))
            self.ctx.wake_dispatch.set()
        return lifted

    def request_swap(self, reason: str, drain: bool = False) -> str | None:
        """Swap to the next usable account now; returns its name, None if there is none. Running tasks
        move at once, resumed in their conversations, or with `drain` finish where they are."""
        target = self.switcher.target()
        if target is None or self.switcher.swapping:
            return None
        on = self.ctx.state.active_account or self.config.accounts[0].name
        how = f"drain: tasks finish on {on}" if drain else "now: tasks move at once"
        trigger = Trigger(reason=reason, pattern="operator", snippet=how, restart_all=not drain)
        self.ctx.spawn(self.switcher.swap(trigger))
        return target.name

    # ----------------------------------------------------------------- running

    async def run(self, stop: asyncio.Event | None = None) -> None:
        """Start every worker and serve until `stop` is set; state is saved on the way out."""
        stop = stop or asyncio.Event()
        lock = StateLock(self.config.state_dir)
        lock.acquire()
        socket_lock = SocketLock(self.config.tmux.socket_name)
        try:
            socket_lock.acquire()
            try:  # a state_dir that cannot be written at start is the operator's to fix: one line
                self.ctx.store.save(self.ctx.state)
            except OSError as exc:
                raise EngineError(
                    f"state_dir {self.config.state_dir}: cannot write state: {exc.strerror or exc}"
                ) from None
            self.ctx.lock = lock
            await self._run(stop)
        finally:
            self.ctx.lock = None
            socket_lock.release()
            lock.release()
        if self.ctx.halted is not None:
            raise EngineError(self.ctx.halted)

    def _loops(self) -> list[asyncio.Task[None]]:
        ctx = self.ctx
        dispatcher, housekeeping = self.dispatcher, self.housekeeping
        loops = [
            _start(ctx.wake_dispatch, self._dispatch_period, dispatcher.dispatch_once),
            _start(ctx.wake_watch, self.watcher.period, self.watcher.watch_once),
            asyncio.create_task(self.files.run()),
            _start(asyncio.Event(), lambda: self.watchdog_tick, housekeeping.watchdog_once),
            _start(asyncio.Event(), lambda: self.janitor_period, housekeeping.janitor_once),
            _start(ctx.wake_store, self._storage_period, self._storage_once),
        ]
        if self.notifier.enabled:
            loops.append(asyncio.create_task(self.notifier.run()))
        if self.delegation is not None:
            loops.append(_start(ctx.wake_reap, lambda: self.delegation_poll, dispatcher.reap_once))
        if self.fleet is not None:
            loops.append(asyncio.create_task(self.fleet.run()))
        return loops

    async def _run(self, stop: asyncio.Event) -> None:
        # Blocking tmux calls run in threads; the default pool (cores + 4) queues a 20-session swap.
        asyncio.get_running_loop().set_default_executor(
            ThreadPoolExecutor(max_workers=32, thread_name_prefix="cfo")
        )
        self.ctx.reset_wakes()
        await self.startup()
        status_server = await self._start_status_api()
        unsubscribe_notifier = self.subscribe(self.notifier.notify) if self.notifier.enabled else None
        loops = self._loops()
        try:
            waits = [asyncio.create_task(stop.wait()), asyncio.create_task(self.ctx.wake_halt.wait())]
            try:
                await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for task in waits:
                    task.cancel()
        finally:
            pending = [*loops, *self.ctx.spawned()]
            for task in pending:
                task.cancel()
            _, stuck = await asyncio.wait(pending, timeout=STOP_GRACE)
            for task in stuck:
                where = " < ".join(f"{f.f_code.co_name}:{f.f_lineno}" for f in reversed(task.get_stack()))
                log.error("a worker did not stop within %ss: %s, at %s", STOP_GRACE, task.get_name(), where)
            self.save()
            if unsubscribe_notifier is not None:
                unsubscribe_notifier()
            if status_server is not None:
                await status_server.close()
            if self.delegation is not None:
                await self.delegation.aclose()
            self.emit("stopped")

    def _dispatch_period(self) -> float:
        """The safety-net rescan, or sooner when a limit resets or the cooldown after a swap ends before
        it: that is when dispatch may resume after every account ran out, or `prefer_first` may return."""
        ctx = self.ctx
        now = ctx.clock.now()
        due = [ctx.state.paused_until, self.switcher.cooldown_until]
        due += [a.usable_again_at for a in ctx.state.accounts.values()]
        soon = [at - now for at in due if at is not None and at > now]
        return min([self.full_scan, *(s + 0.05 for s in soon)])

    def _storage_period(self) -> float:
        if self.ctx.degraded is not None:
            return self.ctx.retry_delay()
        return MOVE_RETRY if self.ctx.state.finishing else RETRY_MAX

    async def _storage_once(self) -> None:
        """While degraded, try the state write again: the first that works ends it and wakes dispatch.
        Then the moves of finished tasks that did not land."""
        if self.ctx.degraded is not None:
            self.save()
        await self.finisher.retry_moves()

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

    async def startup(self) -> None:
        """Accounts, stop hooks, the pool, and recovery of tasks left claimed by an earlier run."""
        ctx, config, state = self.ctx, self.config, self.state
        names = [a.name for a in config.accounts]
        if state.active_account not in names:
            state.active_account = names[0]
        for name, s in state.sessions.items():
            if s.state == OUT_OF_POOL:
                # A restart is how the operator says the account is logged in again: a fresh chance.
                s.state = IDLE
                state.counters.pop(auth_failures(name), None)
                log.info("%s: back in the pool after the restart", name)
        for key in [k for k in state.counters if k.startswith(AUTH_TASK_FAILURES)]:
            del state.counters[key]  # a restart gives every task a fresh chance too
        for name in lift_holds(ctx):  # whatever made a launch fail may have been fixed for this start
            log.info("%s: held after a failed launch; usable again after the restart", name)
        config.watcher.done_signal_dir.mkdir(parents=True, exist_ok=True)
        if config.agent.install_stop_hook:
            for account in config.accounts:
                try:
                    install_stop_hook(account.home, config.watcher.done_signal_dir)
                except StopHookError as exc:
                    log.error("%s", exc)
        links = await asyncio.to_thread(ensure_links, config)
        for problem in links.problems:
            log.error("%s: %s", problem.key, problem.message)
        await asyncio.to_thread(self.throughput.seed, self.events.path, ctx.clock.now())
        await asyncio.to_thread(ctx.ensure_pool_now, 0)
        await self.recovery.recover()
        self.save()
        self.emit("started", account=state.active_account)


def _start(
    wake: asyncio.Event, period: Callable[[], float], body: Callable[[], Coroutine[Any, Any, None]]
) -> asyncio.Task[None]:
    return asyncio.create_task(worker_loop(wake, period, body), name=getattr(body, "__qualname__", None))


async def worker_loop(
    wake: asyncio.Event, period: Callable[[], float], body: Callable[[], Coroutine[Any, Any, None]]
) -> None:
    """Run `body` now, then whenever `wake` is set or `period()` seconds pass; a failure is logged and the
    loop goes on."""
    me = asyncio.current_task()
    while True:
        try:
            await body()
        except Exception:
            log.exception("worker %s failed; it goes on", body.__name__)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(wake.wait(), timeout=period())
        # Python 3.11's wait_for drops a cancellation that comes as the event is set: the stop must
        # still stop this loop, not leave it for the grace period.
        if me is not None and me.cancelling():
            raise asyncio.CancelledError
        wake.clear()
