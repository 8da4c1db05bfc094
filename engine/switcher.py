"""Switcher: owns swapping — moves every session to the next usable account and resumes each conversation."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from pathlib import Path

from engine import queue as q
from engine import screen
from engine.accounts import earliest_reset, mark_exhausted, next_usable
from engine.config import Account
from engine.context import Context
from engine.conversations import conversation_dir, conversation_on_screen
from engine.launch import LaunchError, agent_running, command_line, paste_and_submit, start_agent
from engine.lifecycle import create_sessions
from engine.resumeids import ResumeIds
from engine.runtime import Running
from engine.state import IDLE, WORKING, SwapRecord
from engine.symlinks import ensure_links
from engine.tasks import TaskError
from engine.tmux import TmuxError

log = logging.getLogger(__name__)

# When a limit message names no reset time, the account is tried again after the usual window.
DEFAULT_LIMIT_WINDOW = 5 * 3600.0
STATUS_WAIT = 5.0  # how long a dedicated agent's `/status` answer is waited for
DEDICATED_EXIT_WAIT = 15.0  # how long a dedicated agent has to exit before it is left as it is
# The whole scrollback: the more answers shown, the better two conversations are told apart, and counting
# `/status` echoes needs all of them.
SCROLLBACK = 100_000


@dataclass(frozen=True)
class Trigger:
    """Why a swap happens: the session and pattern that showed the limit, or the operator."""

    reason: str
    session: str | None = None
    pattern: str | None = None
    snippet: str | None = None
    reset_at: float | None = None
    target: str | None = None  # a named account (prefer_first's return); else the next usable one


class Switcher:
    """One swap at a time, then a cooldown in which limits seen are taken for the old account's."""

    def __init__(self, ctx: Context, resume_ids: ResumeIds) -> None:
        self.ctx = ctx
        self.resume_ids = resume_ids
        self.swapping = False
        self.cooldown_until = 0.0

    def target(self) -> Account | None:
        """The account a swap now would move to; None if no other is usable."""
        state = self.ctx.state
        return next_usable(self.ctx.config, state, state.active_account, self.ctx.clock.now())

    def in_cooldown(self, now: float) -> bool:
        return now < self.cooldown_until

    async def swap(self, trigger: Trigger) -> None:
        """Swap unless one is under way; the cooldown starts when it ends, and the workers are woken."""
        if self.swapping:
            return
        self.swapping = True
        try:
            await self._swap(trigger)
            self.cooldown_until = self.ctx.clock.now() + self.ctx.config.quota.reactivate_cooldown
        finally:
            self.swapping = False
            self.ctx.wake_dispatch.set()
            self.ctx.wake_watch.set()

    async def _swap(self, trigger: Trigger) -> str | None:
        """Move the pool (and dedicated sessions) to the next usable account; returns its name or None."""
        ctx = self.ctx
        config, state = ctx.config, ctx.state
        now = ctx.clock.now()
        started = time.monotonic()
        old_name = state.active_account or config.accounts[0].name
        old = config.account(old_name) or config.accounts[0]
        if trigger.session is not None:  # an operator's swap leaves the account usable
            mark_exhausted(state, old_name, trigger.reset_at or now + DEFAULT_LIMIT_WINDOW)
        target = (
            config.account(trigger.target) if trigger.target else next_usable(config, state, old_name, now)
        )
        if target is None:
            self._all_exhausted(old_name, trigger)
            return None
        arrived = state.accounts.get(target.name)
        if arrived is not None:
            arrived.reset_if_passed(now)  # its limit is history
        result = await asyncio.to_thread(ensure_links, config)
        for problem in result.problems:
            log.error("swap: %s: %s", problem.key, problem.message)
        # A finishing run is being completed, requeued or failed: its file is on its way out of inbox/, so
        # it is not resumed; its session is recreated like the others and its release carries on.
        moving = [r for r in ctx.running.values() if r.phase in ("working", "waiting")]
        moving = [r for r in moving if r.session in config.pool_names]
        for run in moving:
            run.phase = "finishing"  # the watcher leaves them alone while they move
        uuids = await asyncio.gather(*(asyncio.to_thread(self._conversation_of, r, old) for r in moving))
        await self._restart_pool(target, [r.session for r in moving])
        dedicated = [d.name for d in config.pool.dedicated]
        pairs = zip(moving, uuids, strict=True)
        pool_outcomes, dedicated_outcomes = await asyncio.gather(
            asyncio.gather(*(self._resume_pool_task(r, target, u) for r, u in pairs)),
            asyncio.gather(*(self._resume_dedicated(name, old, target) for name in dedicated)),
        )
        resumed: list[str] = []
        for run, ok in zip(moving, pool_outcomes, strict=True):
            if ok:
                resumed.append(run.session)
            else:
                await self._requeue(run)
        resumed += [name for name, (ok, _) in zip(dedicated, dedicated_outcomes, strict=True) if ok]
        not_resumed = {name: why for name, (_, why) in zip(dedicated, dedicated_outcomes, strict=True) if why}
        record = SwapRecord(
            at=now,
            from_account=old_name,
            to_account=target.name,
            trigger_session=trigger.session,
            pattern=trigger.pattern,
            snippet=trigger.snippet,
            sessions_resumed=resumed,
            sessions_not_resumed=not_resumed,
            duration=round(time.monotonic() - started, 3),
        )
        state.add_swap(record)
        ctx.save()
        ctx.emit(
            "swap",
            session=trigger.session,
            account=target.name,
            reason=trigger.reason,
            from_account=old_name,
            pattern=trigger.pattern,
            snippet=trigger.snippet,
            resumed=resumed,
            not_resumed=not_resumed,
            duration=record.duration,
        )
        return target.name

    def _all_exhausted(self, old_name: str, trigger: Trigger) -> None:
        """No account to move to: dispatch pauses until the earliest reset and running tasks wait."""
        ctx = self.ctx
        until = earliest_reset(ctx.state)
        ctx.state.dispatch, ctx.state.paused_until = "paused", until
        for run in ctx.running.values():
            run.phase = "waiting" if run.phase == "working" else run.phase
        ctx.save()
        ctx.emit("all_exhausted", account=old_name, reason=trigger.reason, until=until)
        log.error("every account is exhausted; dispatch paused until %s", until)

    async def _restart_pool(self, target: Account, moving: list[str]) -> None:
        """Every pool session is killed and made again, the moving ones first, on the new account."""
        ctx = self.ctx
        live = set(await asyncio.to_thread(ctx.tmux.list_sessions))
        await asyncio.gather(
            *(
                asyncio.to_thread(ctx.tmux.kill_session, name)
                for name in ctx.config.pool_names
                if name in live
            )
        )
        ctx.state.active_account = target.name
        ctx.save()
        await asyncio.to_thread(create_sessions, ctx.config, ctx.tmux, moving)
        await asyncio.to_thread(ctx.ensure_pool_now, len(moving))

    async def _requeue(self, run: Running) -> None:
        """A run that could not be resumed goes back to the inbox; its fresh session is idle."""
        try:
            await asyncio.to_thread(q.requeue, run.claimed)
        except TaskError as exc:
            log.error("swap: %s", exc)
        self.ctx.running.pop(run.session, None)
        self.ctx.session_state(run.session).state = IDLE
        self.ctx.emit("requeued", session=run.session, task=run.task.key, reason="not resumed after swap")

    # ----------------------------------------------------------------- pool runs

    @staticmethod
    def _conversation_of(run: Running, old: Account) -> str | None:
        """The UUID of the run's conversation: the file the watcher follows, else found by its marker."""
        if run.follower is not None and run.follower.path.exists():
            return run.follower.uuid
        return run.conversation_in(old.home)

    async def _resume_pool_task(self, run: Running, account: Account, uuid: str | None) -> bool:
        """Relaunch `run` in its (new) session under `account`: resumed with "continue", or afresh."""
        ctx = self.ctx
        launch = run.launch(ctx.config.agent, account, uuid, resumed=uuid is not None)
        try:
            await start_agent(ctx.tmux, ctx.reader, launch, ctx.patterns)
            await paste_and_submit(ctx.tmux, ctx.reader, launch, ctx.patterns)
        except (LaunchError, TmuxError) as exc:
            log.error("swap: %s could not be resumed in %s: %s", run.task.key, run.session, exc)
            return False
        run.account, run.phase, run.retry_at, run.quota_seen_at = account.name, "working", None, None
        run.last_text, run.stop = None, None  # a new pane: its first look judges the whole turn
        run.resumed_at = ctx.clock.now()
        s = ctx.session_state(run.session)
        s.state, s.account = WORKING, account.name
        return True

    # ----------------------------------------------------------------- dedicated sessions

    def _on_screen(self, name: str, project: Path, old: Account) -> tuple[str | None, int]:
        """The dedicated session's conversation as its screen shows it: (UUID or None, how many matched).
        Conversations that pool runs follow are someone else's."""
        text = self.ctx.tmux.capture(name, SCROLLBACK)
        shown = screen.shown_answers(text, self.ctx.patterns)
        return conversation_on_screen(old.home, project, shown, self.ctx.followed_conversations())

    async def _ask_status(self, name: str) -> str | None:
        """Type `/status` (the agent is idle: its turn ended on the limit, or Esc ended it) and read the
        session id it prints; None if none shows within STATUS_WAIT."""
        tmux, patterns = self.ctx.tmux, self.ctx.patterns
        before = screen.status_echoes(await asyncio.to_thread(tmux.capture, name, SCROLLBACK), patterns)
        await asyncio.to_thread(tmux.type_line, name, "/status")
        deadline = time.monotonic() + STATUS_WAIT
        while time.monotonic() < deadline:
            text = await asyncio.to_thread(tmux.capture, name, SCROLLBACK)
            found = screen.status_session_id(text, before, patterns)
            if found is not None:
                return found
            await asyncio.sleep(0.1)
        return None

    async def _identify(self, name: str, project: Path, old: Account) -> tuple[str | None, str]:
        """(the UUID of the dedicated session's own conversation, how it was found or why it was not)."""
        uuid, matched = await asyncio.to_thread(self._on_screen, name, project, old)
        if uuid is not None:
            return uuid, "its latest answer on screen"
        status = await self._ask_status(name)
        if status is None:
            why = (
                f"{matched} conversations match its screen"
                if matched > 1
                else "no conversation matches its screen"
            )
            return None, f"{why} and /status showed no session id"
        if not (conversation_dir(old.home, project) / f"{status}.jsonl").exists():
            return None, f"/status shows {status}, which has no conversation file in {project}"
        return status, "/status"

    async def _identify_before_exit(self, name: str, project: Path, old: Account) -> tuple[str | None, str]:
        """Close any menu (Enter on the limit menu buys usage) or end the turn, identify the conversation,
        and save its id where the operator finds it after a crash."""
        await asyncio.to_thread(self.ctx.tmux.send_keys, name, "Escape")
        await asyncio.sleep(0.2)
        uuid, how = await self._identify(name, project, old)
        if uuid is not None:
            log.info("swap: dedicated session %s is in conversation %s (by %s)", name, uuid, how)
            await asyncio.to_thread(self.resume_ids.save, name, uuid)
        else:  # an id saved at an earlier swap is no longer known to be this session's
            await asyncio.to_thread(self.resume_ids.forget, name)
        return uuid, how

    async def _resume_dedicated(self, name: str, old: Account, new: Account) -> tuple[bool, str | None]:
        """Exit a dedicated session's agent (menu closed first) and resume its own conversation under `new`.

        Returns (resumed, why not). The conversation is identified before the agent
        exits and its id saved, so a crash mid-swap does not lose it; without one the agent is not
        relaunched, as a fresh or someone else's conversation would be worse than none.
        """
        tmux, agent = self.ctx.tmux, self.ctx.config.agent
        dedicated = self.ctx.config.dedicated_session(name)
        if dedicated is None or not await asyncio.to_thread(tmux.has_session, name):
            return False, None
        if not agent_running(await asyncio.to_thread(tmux.current_command, name)):
            return False, None  # nothing running there: leave the shell alone
        uuid, how = await self._identify_before_exit(name, dedicated.project, old)
        await asyncio.to_thread(tmux.type_line, name, "/exit")
        deadline = time.monotonic() + DEDICATED_EXIT_WAIT
        while agent_running(await asyncio.to_thread(tmux.current_command, name)):
            if time.monotonic() > deadline:
                log.error("swap: the agent in dedicated session %s did not exit; left as it is", name)
                return False, "its agent did not exit; left as it is"
            await asyncio.sleep(0.1)
        if uuid is None:
            log.warning("swap: dedicated session %s left at its shell: %s", name, how)
            return False, f"left at its shell: {how}"
        line = command_line(
            dedicated.project, new.home, agent.command, agent.args, agent.models.default, uuid
        )
        await asyncio.to_thread(tmux.type_line, name, line, True)
        return True, None
