"""The end of a run: its task to done/, failed/ or back to the inbox, and a pool agent recycled."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path

from engine import moves, screen, sidecars
from engine.clock import iso
from engine.context import Context
from engine.launch import agent_running
from engine.runtime import Running
from engine.state import IDLE, OUT_OF_POOL, RECYCLING, Failure, Finishing
from engine.tasks import VANISHED, TaskError
from engine.tmux import TmuxError
from engine.watchdog import Watchdog

log = logging.getLogger(__name__)

RECYCLE_WAIT = 15.0  # how long an agent has to exit before its session is recreated
EXIT_RETYPE = 2.0  # an agent still at its prompt this long after /exit did not get it
AUTH_TASK_FAILURES = "auth_failures:task:"  # a counter per task, beside the per-session ones


def auth_failures(session: str) -> str:
    """The counter of auth failures in `session`."""
    return f"auth_failures:{session}"


class Finisher:
    """Ends runs: each outcome moves the task file, counts it, emits its event and releases the session."""

    def __init__(self, ctx: Context, watchdog: Watchdog) -> None:
        self.ctx = ctx
        self.watchdog = watchdog

    def _footer(self, run: Running, how: str) -> dict[str, str]:
        fleet = self.ctx.config.fleet
        return {
            "session": run.session,
            "account": run.account,
            "model": run.model,
            "started": iso(run.started),
            "ended": iso(self.ctx.clock.now()),
            "how": how,
            **({"host": fleet.host} if fleet is not None else {}),
        }

    def forget_task(self, key: str) -> None:
        """A task that completed or failed: one queued again under this id gets every retry afresh."""
        self.ctx.state.requeues.pop(key, None)
        self.ctx.state.conversations.pop(key, None)
        self.ctx.state.counters.pop(f"{AUTH_TASK_FAILURES}{key}", None)

    async def complete(self, run: Running, how: str, interrupt: bool = False) -> None:
        ctx = self.ctx
        # A finished turn proves the session's login works: an earlier auth failure no longer counts.
        ctx.state.counters.pop(auth_failures(run.session), None)
        ctx.session_state(run.session).last_done = ctx.clock.now()  # an earlier failure is history now
        seconds = round(ctx.clock.now() - run.started, 1)
        record = Finishing(
            run.task.key, "completed", how, run.session, run.account, seconds, self._footer(run, how)
        )
        await self.finish(run.claimed, record)
        await self.release(run, stop_agent=interrupt)

    async def give_up(self, run: Running, reason: str) -> None:
        record = Finishing(
            run.task.key, "failed", reason, run.session, run.account, footer=self._footer(run, "failed")
        )
        await self.finish(run.claimed, record)
        await self.release(run, stop_agent=True)

    async def finish(self, claimed: Path, record: Finishing) -> bool:
        """Move a finished task to done/ or failed/; True once it has landed there.

        The outcome is recorded in state first: if the move fails (done/ linked out of the project, no
        permission, a full disk) the task stays claimed as finished work — not reported, not run again
        after a restart — and `retry_moves` tries again until the move lands, then reports it.
        """
        ctx = self.ctx
        record.claim = await asyncio.to_thread(moves.claim_token, claimed)
        ctx.state.finishing[str(claimed)] = record
        ctx.save()
        return await self._move(claimed, record, first=True)

    async def retry_moves(self) -> None:
        """Try every pending move again (the storage loop, and recovery at start)."""
        for claimed, record in list(self.ctx.state.finishing.items()):
            await self._move(Path(claimed), record, first=False)

    async def _move(self, claimed: Path, record: Finishing, first: bool) -> bool:
        ctx = self.ctx
        moving = asyncio.ensure_future(asyncio.to_thread(_land, claimed, record))
        try:
            await asyncio.shield(moving)
        except asyncio.CancelledError:
            # A stop came while the move ran in its thread: let it land and report it before stopping,
            # so a task in done/ always has its event (else the next start recognises it by its claim).
            with contextlib.suppress(Exception):
                await moving
                self._landed(claimed, record)
            raise
        except TaskError as exc:
            if exc.reason == VANISHED:
                token = record.claim
                landed = await asyncio.to_thread(moves.landed_with, claimed, token) if token else None
                if landed is None:  # someone took the claimed file away: nothing is left to move
                    log.error("%s: finished as %s, but %s", record.task, record.outcome, exc)
                    del ctx.state.finishing[str(claimed)]
                    ctx.save()
                    return False
                # It landed just before a stop or crash cut this short: report it now.
                return self._landed(claimed, record)
            if first:
                log.error(
                    "%s: finished as %s, but the move failed: %s; it stays claimed and is tried again",
                    record.task,
                    record.outcome,
                    exc,
                )
            return False
        return self._landed(claimed, record)

    def _landed(self, claimed: Path, record: Finishing) -> bool:
        ctx = self.ctx
        del ctx.state.finishing[str(claimed)]
        self.forget_task(record.task)
        extra = {"seconds": record.seconds} if record.seconds is not None else {}
        ctx.emit(
            record.outcome,
            session=record.session,
            task=record.task,
            account=record.account,
            reason=record.reason,
            **extra,
        )  # counted and saved with the event
        return True

    async def requeue(self, run: Running, reason: str) -> None:
        try:
            await asyncio.to_thread(sidecars.clear_sidecar, run.claimed, "stuck")
            await asyncio.to_thread(moves.requeue, run.claimed)
        except TaskError as exc:
            log.error("%s", exc)
        self.ctx.emit("requeued", session=run.session, task=run.task.key, reason=reason)
        await self.release(run, stop_agent=True)

    async def crashed(self, run: Running, what: str) -> None:
        """The agent died or its session vanished: requeued once, failed the second time."""
        run.phase = "finishing"
        state = self.ctx.state
        crashes = state.requeues.get(run.task.key, 0) + 1
        state.requeues[run.task.key] = crashes
        self.ctx.session_state(run.session).last_fail = Failure(self.ctx.clock.now(), what)
        if crashes >= 2:
            await self.give_up(run, f"crashed twice: {what}")
        else:
            await self.requeue(run, f"crashed: {what}")

    async def release(self, run: Running, stop_agent: bool = False) -> None:
        """The session is done with its task: a pool session recycles its agent and returns idle."""
        ctx = self.ctx
        ctx.signal(run.session).unlink(missing_ok=True)
        self.watchdog.forget(run.session)
        s = ctx.session_state(run.session)
        s.task, s.task_path = None, None
        disabled = s.state == OUT_OF_POOL
        if s.kind == "pool":
            s.state = OUT_OF_POOL if disabled else RECYCLING
            ctx.save()
            await self.stop_agent(run.session, interrupt=stop_agent)
        s.state = OUT_OF_POOL if disabled else IDLE
        ctx.running.pop(run.session, None)
        ctx.save()
        ctx.wake_dispatch.set()

    async def stop_agent(self, session: str, interrupt: bool = True) -> None:
        """End the agent in a pool session (context recycle); kill the session if it will not go."""
        ctx = self.ctx

        def stop() -> bool:
            if not ctx.tmux.has_session(session) or not agent_running(ctx.tmux.current_command(session)):
                return True
            if interrupt:
                ctx.tmux.send_keys(session, "Escape")
            ctx.tmux.type_line(session, "/exit")
            return False

        try:
            if await asyncio.to_thread(stop):
                return
            loop = asyncio.get_running_loop()
            deadline = loop.time() + RECYCLE_WAIT
            typed = loop.time()
            while loop.time() < deadline:
                await asyncio.sleep(0.1)
                look = await asyncio.to_thread(ctx.look, session)
                if look is None or not agent_running(look.command):
                    return
                if (
                    loop.time() - typed >= EXIT_RETYPE
                    and screen.read_state(look.text, ctx.patterns) == "idle"
                ):
                    # Typed while the agent was still starting, the line was lost to the terminal's
                    # line editing; at its prompt now, it takes it.
                    await asyncio.to_thread(ctx.tmux.type_line, session, "/exit")
                    typed = loop.time()
            log.warning("%s: the agent did not exit; the session is recreated", session)
            await asyncio.to_thread(ctx.tmux.kill_session, session)
            await asyncio.to_thread(ctx.ensure_pool_now, 0)
        except TmuxError as exc:
            log.error("%s: %s", session, exc)


def _land(claimed: Path, record: Finishing) -> None:
    """The move itself; a crash after an earlier move wrote done/ or failed/ is recognised, not redone."""
    if moves.reconcile_claim(claimed) is not None:
        return
    if record.outcome == "completed":
        moves.complete(claimed, record.footer)
    else:
        moves.fail(claimed, record.reason, record.footer)
