"""Watcher: one look at every session a round, judging each run (crash, stop, turn end, timeout, stall),
and keeping the pool at its minimum."""

from __future__ import annotations

import asyncio
import logging
import time

from engine import screen, sidecars, transcript
from engine.context import CAPTURE_LINES, Context
from engine.conversations import conversation_file
from engine.durations import format_duration
from engine.finisher import AUTH_TASK_FAILURES, Finisher, auth_failures
from engine.launch import CONTINUE, agent_running
from engine.quota import QuotaMonitor, prefer_stop
from engine.runtime import Look, Running
from engine.state import OUT_OF_POOL, STALLED, WORKING, Failure
from engine.switcher import Switcher
from engine.tasks import TaskError
from engine.tmux import TmuxError
from engine.watchdog import Watchdog

log = logging.getLogger(__name__)

API_ERROR_RETRIES = 3  # a server error gets "continue" this often before its task is requeued
# While a task runs its pane is looked at this many times per watcher.interval (every 250 ms by default), so
# a turn's end is seen within a quarter second without the Stop hook; an idle pool once per interval.
WORKING_LOOKS = 4


class Watcher:
    """Judges every working run on each look and hands each outcome to the finisher or the quota monitor."""

    def __init__(
        self,
        ctx: Context,
        finisher: Finisher,
        quota: QuotaMonitor,
        switcher: Switcher,
        watchdog: Watchdog,
        api_error_backoff: float = 10.0,
    ) -> None:
        self.ctx = ctx
        self.finisher = finisher
        self.quota = quota
        self.switcher = switcher
        self.watchdog = watchdog
        self.api_error_backoff = api_error_backoff
        self._activity_seen: dict[str, int] = {}

    # ----------------------------------------------------------------- one round

    def period(self) -> float:
        """Seconds to the next round when nothing wakes the watcher earlier."""
        interval = self.ctx.config.watcher.interval
        if any(r.phase == "working" for r in self.ctx.running.values()):
            return interval / WORKING_LOOKS
        return interval

    def _look_all(self, names: list[str], quiet: list[str]) -> tuple[dict[str, Look], set[str]]:
        """One look at every session in `names`, and at those in `quiet` whose window printed something
        since the last look (idle agents print nothing, so they cost nothing): three tmux calls at most.
        Also the names of every live session, from the same listing."""
        tmux = self.ctx.tmux
        commands = tmux.pane_commands()
        wanted = [n for n in names if n in commands]
        if quiet:
            activity = tmux.pane_activity()
            for name in quiet:
                stamp = activity.get(name)
                # Seconds resolution: anything in the second of the last look counts as new again.
                if name in commands and stamp is not None and stamp >= self._activity_seen.get(name, 0):
                    wanted.append(name)
                    self._activity_seen[name] = int(time.time())
        texts = tmux.capture_many(wanted, CAPTURE_LINES)
        return {n: Look(command=commands[n], text=texts[n]) for n in wanted if n in texts}, set(commands)

    async def watch_once(self) -> None:
        ctx = self.ctx
        working = [r for r in ctx.running.values() if r.phase == "working"]
        dedicated = list(ctx.config.dedicated_names)
        if not working and not dedicated:
            await self._keep_pool(await asyncio.to_thread(ctx.tmux.list_sessions))
            return
        # Those due a second look are looked at whether they printed or not.
        awaiting = [n for n in dedicated if self.quota.awaiting_second_look(n)]
        quiet = [n for n in dedicated if n not in awaiting]
        looks, live = await asyncio.to_thread(self._look_all, [r.session for r in working] + awaiting, quiet)
        await asyncio.gather(*(self.check(r, looks.get(r.session)) for r in working))
        if dedicated and not self.switcher.swapping:
            await self.quota.watch_dedicated(looks, set(self._activity_seen), ctx.clock.now())
        await self._keep_pool(live)

    async def _keep_pool(self, live: set[str] | list[str]) -> None:
        """Recreate pool sessions when fewer than `min` are alive (one was killed or its shell exited);
        `live` is a listing this round already made, so a round where nothing vanished costs no call."""
        auto = self.ctx.config.pool.autonomous
        alive = sum(1 for name in auto.names() if name in live)
        if alive >= auto.min or self.switcher.swapping:
            return
        log.warning("only %d of at least %d pool sessions are alive; recreating", alive, auto.min)
        try:
            await asyncio.to_thread(self.ctx.ensure_pool_now, 0)
        except TmuxError as exc:
            log.error("recreating pool sessions: %s", exc)

    # ----------------------------------------------------------------- judging a run

    async def check(self, run: Running, look: Look | None) -> None:
        """Judge one look at a working run: crashed, stopped, finished, timed out, stalled, or at work."""
        ctx = self.ctx
        if look is None:  # gone, or vanished between the two calls: make sure before calling it a crash
            look = await asyncio.to_thread(ctx.look, run.session)
        if run.phase != "working":
            return
        if look is None:
            await self.finisher.crashed(run, "its tmux session vanished")
            return
        if not agent_running(look.command):
            await self.finisher.crashed(run, f"the agent exited ({look.command} is in the foreground)")
            return
        now = ctx.clock.now()
        if run.continued_from is not None:
            if look.text == run.continued_from:
                await self._timeout_or_observe(run, look.text, now)
                return
            run.continued_from = None
        signal = ctx.signal(run.session)
        signalled = signal.exists()
        # The transcript is read only when something happened: the pane changed or the turn ended.
        record = (
            await asyncio.to_thread(self.follow, run) if signalled or look.text != run.last_text else None
        )
        if (
            record is not None
            and record.timestamp is not None
            and record.timestamp.timestamp() < run.continued_at
        ):
            record = None  # written late, but the stop it records was already answered with "continue"
        stop = self.turn_stop(run, look.text, record)
        run.last_text = look.text
        if stop is not None:
            if signalled:
                signal.unlink(missing_ok=True)  # a turn that ended on a stop is not a completion
            await self._on_stop(run, stop, now)
            return
        run.retry_at = run.quota_seen_at = None
        self.quota.clear(run.session)
        ended = (
            screen.turn_ended(look.text, ctx.patterns)
            and screen.read_state(look.text, ctx.patterns) == "idle"
        )
        if (ended or signalled) and run.follower is not None and run.follower.stop is not None:
            # The transcript says the turn ended on an API error whose wording is unknown: not a completion.
            signal.unlink(missing_ok=True)
        elif ended or signalled:
            run.phase = "finishing"
            await self.finisher.complete(run, "done signal" if signalled and not ended else "turn ended")
        else:
            await self._timeout_or_observe(run, look.text, now)

    async def _timeout_or_observe(self, run: Running, text: str, now: float) -> None:
        """A run still at work: failed once past the idle timeout, else watched for a stall."""
        ctx = self.ctx
        if now - max(run.started, run.resumed_at) > ctx.config.watcher.idle_timeout:
            run.phase = "finishing"
            limit = format_duration(ctx.config.watcher.idle_timeout)
            await self.finisher.give_up(run, f"timed out: not finished within {limit}")
        else:
            await self._observe(run, text, now)

    def follow(self, run: Running) -> transcript.ApiError | None:
        """Read what the run's conversation appended since the last look; the API-error record that ended
        the turn if it arrived now. The file is found once per account (a swap may move it)."""
        if run.follower is None or run.follower_account != run.account:
            account = self.ctx.config.account(run.account)
            if account is None:
                return None
            uuid = run.conversation_in(account.home)
            if uuid is None:
                return None
            path = conversation_file(account.home, run.task.project_dir, uuid)
            opened = transcript.opened_at(path)
            if run.claimed_at and opened is not None and opened.timestamp() < run.claimed_at - 1:
                return None  # an earlier run of the same task: this one's conversation is not written yet
            # Account homes share `projects`: the same file under the new home is read on from where it was.
            if run.follower is None or run.follower.path.resolve() != path.resolve():
                run.follower = transcript.Follower(path)
            run.follower_account = run.account
        return run.follower.poll()

    def turn_stop(self, run: Running, text: str, record: transcript.ApiError | None) -> screen.Stop | None:
        """The stop that ended the run's turn, judged on what is new since the previous look, and on the
        transcript's API-error record first (its structured fields beat screen wording).

        A server error in the new screen text vetoes whatever came with it; an error already on screen at an
        earlier look neither hits again nor vetoes. A stop found earlier holds while the turn still shows one
        (on screen or as the transcript's latest record), so a second look and a back-off see it again.
        """
        patterns = self.ctx.patterns
        fresh = screen.classify(text, patterns, since=run.last_text) if text != run.last_text else None
        from_record = screen.classify_record(record, patterns) if record is not None else None
        stop = prefer_stop(fresh, from_record)
        if stop is None and (
            (run.follower is not None and run.follower.stop is not None)
            or screen.classify(text, patterns) is not None
        ):
            stop = run.stop
        run.stop = stop
        return stop

    async def _on_stop(self, run: Running, stop: screen.Stop, now: float) -> None:
        if stop.kind == "server_error":
            await self._on_server_error(run, stop, now)
        elif stop.kind == "quota":
            await self.quota.on_pool_stop(run, stop, now)
        else:
            await self.on_auth(run, stop)

    async def _on_server_error(self, run: Running, stop: screen.Stop, now: float) -> None:
        """A 5xx stop: "continue" after a growing back-off, API_ERROR_RETRIES times, then requeued."""
        if run.retry_at is None:
            if run.continues >= API_ERROR_RETRIES:
                run.phase = "finishing"
                await self.finisher.requeue(run, f"API error {API_ERROR_RETRIES + 1} times: {stop.snippet}")
                return
            run.retry_at = now + self.api_error_backoff * (2**run.continues)
            self.ctx.emit("api_error", session=run.session, task=run.task.key, reason=stop.snippet)
        elif now >= run.retry_at:
            run.continues += 1
            run.retry_at = None
            await asyncio.to_thread(self.ctx.tmux.type_line, run.session, CONTINUE)
            run.answered_with_continue()

    async def on_auth(self, run: Running, stop: screen.Stop) -> None:
        """Not a quota hit: restart the session once (a fresh agent re-reads its credentials) and
        requeue the task; a second failure of the session takes it out of the pool, and a second failure
        of the task (in whichever session) fails it."""
        ctx = self.ctx
        run.phase = "finishing"
        key, task_key = auth_failures(run.session), f"{AUTH_TASK_FAILURES}{run.task.key}"
        ctx.state.count(key)
        ctx.state.count(task_key)
        s = ctx.session_state(run.session)
        s.last_fail = Failure(ctx.clock.now(), f"auth: {stop.snippet}")
        ctx.emit(
            "auth_failed", session=run.session, task=run.task.key, reason=stop.snippet, account=run.account
        )
        session_out, task_out = ctx.state.counters[key] >= 2, ctx.state.counters[task_key] >= 2
        if not session_out and not task_out:
            await self.finisher.requeue(run, f"auth failure ({stop.pattern}); the session restarts")
            return
        ctx.state.counters.pop(task_key, None)
        if session_out:
            s.state = OUT_OF_POOL
            ctx.emit(
                "session_disabled",
                session=run.session,
                account=run.account,
                reason=f"auth failed twice: log the account in again ({stop.snippet})",
            )
            await self.finisher.give_up(run, f"auth failure twice in {run.session}: {stop.snippet}")
        else:
            reason = f"auth failure twice for this task, last in {run.session}: {stop.snippet}"
            await self.finisher.give_up(run, reason)

    async def _observe(self, run: Running, text: str, now: float) -> None:
        """A working session whose pane has not changed for `watchdog.stalled_after` is stalled."""
        verdict = self.watchdog.observe(run.session, text, now)
        if verdict is None:
            return
        ctx = self.ctx
        s = ctx.session_state(run.session)
        if verdict == "stalled":
            reason = f"no output for {format_duration(ctx.config.watchdog.stalled_after)}"
            s.state = STALLED
            try:
                await asyncio.to_thread(sidecars.mark_stuck, run.claimed, f"{run.session}: {reason}")
            except TaskError as exc:
                log.error("%s", exc)
            log.warning("%s: stalled on %s: %s", run.session, run.task.key, reason)
            ctx.emit("stalled", session=run.session, task=run.task.key, account=run.account, reason=reason)
        else:
            s.state = WORKING
            try:
                await asyncio.to_thread(sidecars.clear_sidecar, run.claimed, "stuck")
            except TaskError as exc:
                log.error("%s", exc)
            ctx.emit("unstalled", session=run.session, task=run.task.key)
        ctx.save()
