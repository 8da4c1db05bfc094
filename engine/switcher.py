"""Switcher: moves every session to the next usable account and resumes each conversation there."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from engine import queue as q
from engine.config import Account, Config
from engine.conversations import conversation_for, latest_conversation
from engine.launch import (
    LaunchError,
    agent_running,
    command_line,
    paste_and_submit,
    start_agent,
)
from engine.lifecycle import create_sessions
from engine.runtime import Running
from engine.state import AccountState, State, SwapRecord
from engine.symlinks import ensure_links
from engine.tasks import TaskError
from engine.tmux import TmuxError

if TYPE_CHECKING:
    from engine.core import Engine

log = logging.getLogger(__name__)

# When a limit message names no reset time, the account is tried again after the usual window.
DEFAULT_LIMIT_WINDOW = 5 * 3600.0


@dataclass(frozen=True)
class Trigger:
    """Why a swap happens: the session and pattern that showed the limit, or the operator."""

    reason: str
    session: str | None = None
    pattern: str | None = None
    snippet: str | None = None
    reset_at: float | None = None
    target: str | None = None  # a named account (prefer_first's return); else the next usable one


def next_usable(config: Config, state: State, current: str | None, now: float) -> Account | None:
    """The first account after `current`, in config order and wrapping round, usable at `now`."""
    names = [a.name for a in config.accounts]
    start = names.index(current) + 1 if current in names else 0
    for i in range(len(names)):
        account = config.accounts[(start + i) % len(names)]
        if account.name == current:
            continue
        usable = state.accounts.get(account.name)
        if usable is None or usable.usable_again_at is None or usable.usable_again_at <= now:
            return account
    return None


def earliest_reset(state: State) -> float | None:
    times = [a.usable_again_at for a in state.accounts.values() if a.usable_again_at is not None]
    return min(times) if times else None


def mark_exhausted(state: State, account: str, until: float) -> None:
    state.accounts.setdefault(account, AccountState(name=account)).usable_again_at = until


def _conversation_of(run: Running, old: Account) -> str | None:
    """The UUID of the run's conversation: the file the quota monitor follows, else found by its marker."""
    if run.follower is not None and run.follower.path.exists():
        return run.follower.path.name[: -len(".jsonl")].lower()
    return conversation_for(old.home, run.task.project_dir, f"[{run.task.filename}]", run.claimed_at - 60)


async def _resume_pool_task(engine: Engine, run: Running, account: Account, uuid: str | None) -> bool:
    """Relaunch `run` in its (new) session under `account`: resumed with "continue", or afresh."""
    task = run.task
    launch = engine.make_launch(run, account, uuid, resumed=uuid is not None)
    try:
        await start_agent(engine.tmux, engine.reader, launch, engine.patterns)
        await paste_and_submit(engine.tmux, engine.reader, launch, engine.patterns)
    except (LaunchError, TmuxError) as exc:
        log.error("swap: %s could not be resumed in %s: %s", task.key, run.session, exc)
        return False
    run.account, run.phase, run.retry_at, run.quota_seen_at = account.name, "working", None, None
    run.last_text, run.stop = None, None  # a new pane: its first look judges the whole turn
    run.resumed_at = engine.clock.now()
    s = engine.session_state(run.session)
    s.state, s.account = "working", account.name
    return True


async def _resume_dedicated(engine: Engine, name: str, old: Account, new: Account) -> bool:
    """Exit a dedicated session's agent (menu closed first) and resume its conversation under `new`."""
    dedicated = engine.config.dedicated_session(name)
    if dedicated is None or not await asyncio.to_thread(engine.tmux.has_session, name):
        return False
    if not agent_running(await asyncio.to_thread(engine.tmux.current_command, name)):
        return False  # nothing running there: leave the shell alone
    path = await asyncio.to_thread(latest_conversation, old.home, dedicated.project)
    await asyncio.to_thread(engine.tmux.send_keys, name, "Escape")  # Enter on the limit menu buys usage
    await asyncio.sleep(0.2)
    await asyncio.to_thread(engine.tmux.type_line, name, "/exit")
    deadline = time.monotonic() + 15
    while agent_running(await asyncio.to_thread(engine.tmux.current_command, name)):
        if time.monotonic() > deadline:
            log.error("swap: the agent in dedicated session %s did not exit; left as it is", name)
            return False
        await asyncio.sleep(0.1)
    if path is None:
        log.warning("swap: no conversation found for dedicated session %s; left at its shell", name)
        return False
    uuid = path.name[: -len(".jsonl")]
    line = command_line(
        dedicated.project,
        new.home,
        engine.config.agent.command,
        engine.config.agent.args,
        engine.config.agent.models.default,
        uuid,
    )
    await asyncio.to_thread(engine.tmux.type_line, name, line, True)
    return True


async def swap(engine: Engine, trigger: Trigger) -> str | None:
    """Move the pool (and dedicated sessions) to the next usable account; returns its name or None."""
    config, state = engine.config, engine.state
    now = engine.clock.now()
    started = time.monotonic()
    old_name = state.active_account or config.accounts[0].name
    old = config.account(old_name) or config.accounts[0]
    if trigger.session is not None:  # an operator's swap leaves the account usable
        mark_exhausted(state, old_name, trigger.reset_at or now + DEFAULT_LIMIT_WINDOW)
    target = config.account(trigger.target) if trigger.target else next_usable(config, state, old_name, now)
    if target is None:
        until = earliest_reset(state)
        state.dispatch, state.paused_until = "paused", until
        for run in engine.running.values():
            run.phase = "waiting" if run.phase == "working" else run.phase
        engine.save()
        engine.emit("all_exhausted", account=old_name, reason=trigger.reason, until=until)
        log.error("every account is exhausted; dispatch paused until %s", until)
        return None
    arrived = state.accounts.get(target.name)
    if arrived is not None and arrived.usable_again_at is not None and arrived.usable_again_at <= now:
        arrived.last_reset, arrived.usable_again_at = arrived.usable_again_at, None  # its limit is history
    result = await asyncio.to_thread(ensure_links, config)
    for problem in result.problems:
        log.error("swap: %s: %s", problem.key, problem.message)
    # A finishing run is being completed, requeued or failed: its file is on its way out of inbox/, so it
    # is not resumed; its session is recreated like the others and its release carries on.
    moving = [r for r in engine.running.values() if r.phase in ("working", "waiting")]
    moving = [r for r in moving if r.session in config.pool_names]
    for run in moving:
        run.phase = "finishing"  # the watcher leaves them alone while they move
    uuids = await asyncio.gather(*(asyncio.to_thread(_conversation_of, r, old) for r in moving))
    live = set(await asyncio.to_thread(engine.tmux.list_sessions))
    await asyncio.gather(
        *(asyncio.to_thread(engine.tmux.kill_session, name) for name in config.pool_names if name in live)
    )
    state.active_account = target.name
    engine.save()
    await asyncio.to_thread(create_sessions, config, engine.tmux, [r.session for r in moving])
    await asyncio.to_thread(engine.ensure_pool_now, len(moving))
    dedicated = [d.name for d in config.pool.dedicated]
    outcomes = await asyncio.gather(
        *(_resume_pool_task(engine, r, target, u) for r, u in zip(moving, uuids, strict=True)),
        *(_resume_dedicated(engine, name, old, target) for name in dedicated),
    )
    resumed: list[str] = []
    for run, ok in zip(moving, outcomes[: len(moving)], strict=True):
        if ok:
            resumed.append(run.session)
        else:
            try:
                await asyncio.to_thread(q.requeue, run.claimed)
            except TaskError as exc:
                log.error("swap: %s", exc)
            engine.running.pop(run.session, None)
            engine.session_state(run.session).state = "idle"
            engine.emit("requeued", session=run.session, task=run.task.key, reason="not resumed after swap")
    resumed += [name for name, ok in zip(dedicated, outcomes[len(moving) :], strict=True) if ok]
    record = SwapRecord(
        at=now,
        from_account=old_name,
        to_account=target.name,
        trigger_session=trigger.session,
        pattern=trigger.pattern,
        snippet=trigger.snippet,
        sessions_resumed=resumed,
        duration=round(time.monotonic() - started, 3),
    )
    state.add_swap(record)
    engine.save()
    engine.emit(
        "swap",
        session=trigger.session,
        account=target.name,
        reason=trigger.reason,
        from_account=old_name,
        pattern=trigger.pattern,
        snippet=trigger.snippet,
        resumed=resumed,
        duration=record.duration,
    )
    return target.name
