"""Switcher: owns swapping — the next usable account for new runs, and each stopped run resumed there."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from engine import moves, screen
from engine.accounts import earliest_reset, mark_exhausted, next_usable
from engine.config import Account
from engine.context import CAPTURE_LINES, Context
from engine.conversations import conversation_file, conversation_on_screen
from engine.finisher import Finisher
from engine.launch import LaunchError, agent_running, command_line, start_and_submit
from engine.lifecycle import restart_session
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
# The screens on which a dedicated session's agent may be exited to move it: never one at work, one with
# the operator's draft in its box, or one asking a question.
SETTLED = ("idle", "menu")


@dataclass(frozen=True)
class Trigger:
    """Why a swap happens: the session and pattern that showed the limit, or the operator."""

    reason: str
    session: str | None = None
    pattern: str | None = None
    snippet: str | None = None
    reset_at: float | None = None
    target: str | None = None  # a named account (prefer_first's return); else the next usable one
    restart_all: bool = False
    """The operator's "now": every running task moves at once. Otherwise only those the limit stopped move,
    and a healthy turn finishes on the old account."""


@dataclass(frozen=True)
class Agreement:
    """The account a swap moves to, as the fleet agreed it, and how (for the swap's record)."""

    account: str
    how: str


class Authority(Protocol):
    """Who else must agree on a swap: the fleet (engine.fleet), when the config has one."""

    async def agree(self, old: str, proposed: str, reason: str) -> Agreement: ...


class Switcher:
    """One swap at a time. A swap changes the account new runs start under and moves, each in its own
    conversation, the runs the limit stopped; the others move when they stop on the old account's limit."""

    def __init__(self, ctx: Context, finisher: Finisher, resume_ids: ResumeIds) -> None:
        self.ctx = ctx
        self.finisher = finisher
        self.resume_ids = resume_ids
        self.swapping = False
        self.cooldown_until = 0.0
        self.authority: Authority | None = None
        self._moving: set[str] = set()

    def target(self) -> Account | None:
        """The account a swap now would move to; None if no other is usable."""
        state = self.ctx.state
        return next_usable(self.ctx.config, state, state.active_account, self.ctx.clock.now())

    def in_cooldown(self, now: float) -> bool:
        return now < self.cooldown_until

    def left_behind(self, account: str | None) -> bool:
        """A session on `account` ran into a limit the pool has already left (a swap made another account
        active, maybe while still under way): it moves, no new swap."""
        active = self.ctx.state.active_account
        known = account is not None and self.ctx.config.account(account) is not None
        return known and active is not None and account != active

    def start_swap(self, trigger: Trigger) -> None:
        """Swap in the background (the caller goes on judging the other sessions meanwhile); nothing if a
        swap is under way."""
        if not self.swapping:
            self.swapping = True  # at once: a second limit seen before the swap starts must not start another
            self.ctx.spawn(self.swap(trigger, claimed=True))

    async def swap(self, trigger: Trigger, claimed: bool = False) -> None:
        """Swap unless one is under way (`claimed`: this one, by start_swap); the cooldown starts when it
        ends, and the workers are woken."""
        if self.swapping and not claimed:
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
        """Make the next usable account the active one and move what must move; returns its name or None."""
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
        fleet: str | None = None
        if self.authority is not None:
            agreed = await self.authority.agree(old_name, target.name, trigger.reason)
            target, fleet = config.account(agreed.account) or target, agreed.how
            if target.name == old_name:  # the fleet is still on it: nothing to move
                return None
        arrived = state.accounts.get(target.name)
        if arrived is not None:
            arrived.reset_if_passed(now)  # its limit is history
        result = await asyncio.to_thread(ensure_links, config)
        for problem in result.problems:
            log.error("swap: %s: %s", problem.key, problem.message)
        state.active_account = target.name  # every launch from now on starts under the new account
        ctx.save()
        # A finishing run is being completed, requeued or failed: its file is on its way out of inbox/.
        runs = [r for r in ctx.running.values() if r.phase in ("working", "waiting")]
        runs = [r for r in runs if r.session in config.pool_names]
        moving = [r for r in runs if trigger.restart_all or _stopped(r, trigger)]
        for run in moving:  # before any await: the watcher must not start moving these alone too
            self._hold(run)
        dedicated = [d.name for d in config.pool.dedicated]
        pool_outcomes, dedicated_outcomes = await asyncio.gather(
            asyncio.gather(*(self._move(r, old, target) for r in moving)),
            asyncio.gather(*(self._resume_dedicated(n, old, target, trigger.restart_all) for n in dedicated)),
        )
        resumed = [r.session for r, ok in zip(moving, pool_outcomes, strict=True) if ok]
        resumed += [name for name, (ok, _) in zip(dedicated, dedicated_outcomes, strict=True) if ok]
        not_resumed = {name: why for name, (_, why) in zip(dedicated, dedicated_outcomes, strict=True) if why}
        staying = sorted(r.session for r in runs if r not in moving)
        staying += [n for n in dedicated if ctx.session_state(n).account == old_name and n not in resumed]
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
            fleet=fleet,
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
            finishing=staying,
            duration=record.duration,
            **({"fleet": fleet} if fleet is not None else {}),
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

    def start_move(self, run: Running) -> None:
        """A run left on an earlier account stopped on that account's limit: it alone moves to the active
        account, in its own conversation, in the background (the watcher leaves it alone meanwhile)."""
        old = self.ctx.config.account(run.account)
        if old is None or run.session in self._moving:
            return
        self._hold(run)
        self.ctx.spawn(self._move_alone(run, old))

    def _hold(self, run: Running) -> None:
        """The run is moving: the watcher leaves it alone, and nothing starts moving it a second time."""
        run.phase = "finishing"
        self._moving.add(run.session)

    async def _move_alone(self, run: Running, old: Account) -> None:
        new = self.ctx.active_account()
        log.info(
            "%s: stopped on %s's limit after the swap; resumed under %s", run.session, old.name, new.name
        )
        if await self._move(run, old, new):
            self.ctx.save()
            self.ctx.emit(
                "moved", session=run.session, task=run.task.key, account=new.name, from_account=old.name
            )

    # ----------------------------------------------------------------- pool runs

    async def _move(self, run: Running, old: Account, new: Account) -> bool:
        """Restart the run's session (held by `_hold`) and resume its conversation under `new`; back to the
        queue if not."""
        uuid: str | None = None
        try:
            uuid = await asyncio.to_thread(self._conversation_of, run, old)
            # A fresh shell in the session: its agent stopped at a limit has nothing left to write.
            await asyncio.to_thread(restart_session, self.ctx.config, self.ctx.tmux, run.session)
            if await self._resume_pool_task(run, new, uuid):
                return True
        except TmuxError as exc:
            log.error("swap: %s could not be restarted: %s", run.session, exc)
        finally:
            self._moving.discard(run.session)
        await self._requeue(run, uuid)
        return False

    async def _requeue(self, run: Running, uuid: str | None) -> None:
        """A run that could not be resumed goes back to the inbox, keeping its conversation for its next
        run; its session is idle again and takes work."""
        ctx = self.ctx
        try:
            await asyncio.to_thread(moves.requeue, run.claimed)
        except TaskError as exc:
            log.error("swap: %s", exc)
        if uuid is not None:
            ctx.state.conversations[run.task.key] = uuid
        ctx.running.pop(run.session, None)
        s = ctx.session_state(run.session)
        s.state, s.task, s.task_path = IDLE, None, None
        ctx.save()
        ctx.emit("requeued", session=run.session, task=run.task.key, reason="not resumed after swap")
        await self.finisher.stop_agent(run.session)
        ctx.wake_dispatch.set()

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
        if uuid is None:
            # Stopped before its conversation was written: it starts afresh, and the conversation to
            # follow is the new one, never the earlier attempt's that ended on the old account's limit.
            run.follower, run.claimed_at = None, time.time()
        # The old agent's Stop hook may have signalled the turn that ended on the limit after the watcher
        # saw the limit: left there, it would pass for the end of the resumed turn.
        ctx.signal(run.session).unlink(missing_ok=True)
        try:
            await start_and_submit(ctx.tmux, ctx.reader, launch, ctx.patterns)
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
        if not conversation_file(old.home, project, status).exists():
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

    async def move_dedicated(self, name: str) -> None:
        """A dedicated session left on an earlier account (it was working at the swap) is done with its
        turn or stopped on that account's limit: it moves to the active account in its own conversation."""
        ctx = self.ctx
        s = ctx.session_state(name)
        old = ctx.config.account(s.account or "")
        if old is None or name in self._moving or self.swapping:
            return
        new = ctx.active_account()
        self._moving.add(name)
        try:
            ok, why = await self._resume_dedicated(name, old, new, restart_all=True)
        finally:
            self._moving.discard(name)
        if ok:
            ctx.emit("moved", session=name, account=new.name, from_account=old.name)
        else:
            s.account = None  # not this engine's to move again
            log.warning("%s: not moved from %s: %s", name, old.name, why or "its agent is gone")
        ctx.save()

    async def _resume_dedicated(
        self, name: str, old: Account, new: Account, restart_all: bool
    ) -> tuple[bool, str | None]:
        """Exit a dedicated session's agent (menu closed first) and resume its own conversation under `new`;
        one still at work is left to finish its turn on `old` (unless `restart_all`) and moves after.

        Returns (resumed, why not). The conversation is identified before the agent
        exits and its id saved, so a crash mid-swap does not lose it; without one the agent is not
        relaunched, as a fresh or someone else's conversation would be worse than none.
        """
        ctx = self.ctx
        tmux, agent = ctx.tmux, ctx.config.agent
        dedicated = ctx.config.dedicated_session(name)
        if dedicated is None or not await asyncio.to_thread(tmux.has_session, name):
            return False, None
        if not agent_running(await asyncio.to_thread(tmux.current_command, name)):
            return False, None  # nothing running there: leave the shell alone
        s = ctx.session_state(name)
        if not restart_all and not await asyncio.to_thread(self._settled, name):
            # At work, or a draft in its box, or a question asked: it moves once its turn is over and
            # its box empty (see QuotaMonitor.watch_dedicated).
            s.account = old.name
            return False, None
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
        s.account = new.name
        return True, None

    def _settled(self, name: str) -> bool:
        """Its turn is over and its box empty, or the limit menu is up: it may be exited and resumed."""
        text = self.ctx.tmux.capture(name, CAPTURE_LINES)
        return screen.read_state(text, self.ctx.patterns) in SETTLED


def _stopped(run: Running, trigger: Trigger) -> bool:
    """The run's turn ended on the limit (or it waited for one to reset): it moves with the swap."""
    limited = run.stop is not None and run.stop.kind == "quota"
    return run.phase == "waiting" or run.session == trigger.session or limited
