"""Quota monitor: decides whether a limit stop is a real quota hit that swaps, for pool runs and dedicated
sessions alike, and returns dispatch (or the first account) once a limit has reset."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import datetime

from engine import screen, transcript
from engine.accounts import next_usable
from engine.context import Context
from engine.conversations import conversation_file, conversation_on_screen
from engine.launch import CONTINUE, agent_running
from engine.patterns import Patterns
from engine.resets import local_tz, parse_reset
from engine.runtime import Look, Running
from engine.switcher import SETTLED, Switcher, Trigger

log = logging.getLogger(__name__)

SECOND_LOOK = 2.0  # a limit seen on screen alone swaps when it is still there this much later

Evidence = tuple[float | None, bool]
"""(the reset time a limit names, whether the transcript confirms a usage limit)."""


def prefer_stop(fresh: screen.Stop | None, from_record: screen.Stop | None) -> screen.Stop | None:
    """The stop a turn ended on, from what is new on screen and the transcript's record: a server error new
    on screen vetoes; else the record's typed fields decide, named as the screen reads the same stop (the
    pattern a person recognises); else the screen."""
    if fresh is not None and fresh.kind == "server_error":
        return fresh
    if from_record is not None:
        return fresh if fresh is not None and fresh.kind == from_record.kind else from_record
    return fresh


def decide(
    evidence: Evidence, seen_at: float | None, now: float, swapping: bool, cooldown_until: float
) -> tuple[str, float | None]:
    """(decision, when the limit was first seen): swap at once on strong evidence, else on a second look
    at least SECOND_LOOK later; nothing during a swap or the cooldown after one."""
    reset, confirmed = evidence
    if swapping:
        return "swap under way", seen_at
    if now < cooldown_until:
        return "ignored: within the cooldown after a swap", seen_at
    if reset is not None or confirmed:
        return "swap: " + ("reset time shown" if reset is not None else "transcript 429"), seen_at
    if seen_at is None:
        return "first look: confirm on a second look", now
    if now - seen_at >= SECOND_LOOK:
        return "swap: seen twice", seen_at
    return "waiting for the second look", seen_at


def reset_of(message: str, now: float, patterns: Patterns) -> float | None:
    """The reset time a limit message names, in local time; None if it names none."""
    local = local_tz()
    reset = parse_reset(message, datetime.fromtimestamp(now, local), local, patterns)
    return reset.timestamp() if reset else None


def limit_evidence(
    stop: screen.Stop, ended_on: transcript.ApiError | None, now: float, patterns: Patterns
) -> Evidence:
    """(reset time if the message, or else the record the turn ended on, names one; whether that record
    is a usage limit: a server throttling requests answers 429 too, and is no confirmation)."""
    by_record = screen.classify_record(ended_on, patterns) if ended_on is not None else None
    confirmed = by_record is not None and by_record.kind == "quota"
    reset = reset_of(stop.message, now, patterns)
    if reset is None and ended_on is not None and confirmed:
        reset = reset_of(ended_on.text, now, patterns)
    return reset, confirmed


@dataclass
class Watched:
    """What the monitor keeps per session between looks."""

    logged: tuple[str, str, str] | None = None
    """The last forensic line: (pattern, snippet, decision)."""
    text: str | None = None
    """Dedicated: the previous capture; only what is new since is judged."""
    seen_at: float | None = None
    """Dedicated: when a limit awaiting its second look was first seen."""
    answer: str | None = None
    """Dedicated: the latest answer its screen showed, by which `follower` was found."""
    follower: transcript.Follower | None = None
    """Dedicated: its own conversation, followed for API-error records."""


class QuotaMonitor:
    """Judges limit stops (pool runs as the watcher reports them, dedicated sessions on its own looks)."""

    def __init__(self, ctx: Context, switcher: Switcher) -> None:
        self.ctx = ctx
        self.switcher = switcher
        self.watched: dict[str, Watched] = {}

    def _watched(self, session: str) -> Watched:
        return self.watched.setdefault(session, Watched())

    def clear(self, session: str) -> None:
        """The session's turn shows no stop: a later limit is a new detection."""
        known = self.watched.get(session)
        if known is not None:
            known.logged = None

    def _decide(self, evidence: Evidence, seen_at: float | None, now: float) -> tuple[str, float | None]:
        return decide(evidence, seen_at, now, self.switcher.swapping, self.switcher.cooldown_until)

    # ----------------------------------------------------------------- pool runs

    def evidence(self, run: Running, stop: screen.Stop, now: float) -> Evidence:
        """The limit evidence of a pool run: its conversation's latest API-error record."""
        ended_on = run.follower.stop if run.follower is not None else None
        return limit_evidence(stop, ended_on, now, self.ctx.patterns)

    async def on_pool_stop(self, run: Running, stop: screen.Stop, now: float) -> None:
        """A pool run's turn ended on a limit: swap now, or once a second look confirms it; a run still on
        an account a swap has left moves alone."""
        if self.switcher.left_behind(run.account):
            self._log(run.session, stop, f"move: {run.account} was left by a swap")
            self.switcher.start_move(run)
            return
        evidence = self.evidence(run, stop, now)
        decision, run.quota_seen_at = self._decide(evidence, run.quota_seen_at, now)
        self._hit(run.session, stop, decision, evidence[0], run.task.key, run.account)

    def _hit(
        self,
        session: str,
        stop: screen.Stop,
        decision: str,
        reset: float | None,
        task: str | None,
        account: str,
    ) -> None:
        self._log(session, stop, decision)
        if not decision.startswith("swap:"):
            return
        self.ctx.emit("quota_hit", session=session, task=task, account=account, reason=stop.snippet)
        trigger = Trigger(
            reason=f"quota: {self.ctx.patterns.label(stop.pattern)}",
            session=session,
            pattern=stop.pattern,
            snippet=stop.snippet,
            reset_at=reset,
        )
        self.switcher.start_swap(trigger)

    def _log(self, session: str, stop: screen.Stop, decision: str) -> None:
        """The forensic line, once per detection and decision, not every look."""
        line = (stop.pattern, stop.snippet, decision)
        known = self._watched(session)
        if known.logged != line:
            known.logged = line
            log.warning(
                "quota: session=%s pattern=%s snippet=%r decision=%s",
                session,
                stop.pattern,
                stop.snippet,
                decision,
            )

    # ----------------------------------------------------------------- dedicated sessions

    def awaiting_second_look(self, name: str) -> bool:
        known = self.watched.get(name)
        return known is not None and known.seen_at is not None

    def has_looked(self, name: str) -> bool:
        """The dedicated session has been seen running its agent (its first look is the baseline)."""
        known = self.watched.get(name)
        return known is not None and known.text is not None

    def conversation(self, name: str) -> transcript.Follower | None:
        """The dedicated session's own conversation, once its screen identified it."""
        known = self.watched.get(name)
        return known.follower if known is not None else None

    def _dedicated_record(self, name: str, text: str) -> transcript.ApiError | None:
        """Read what the dedicated session's own conversation appended since the last look; the API-error
        record that ended its turn if it arrived now.

        The conversation is the one whose latest answer the screen shows, looked for again only when that
        answer changes. A conversation met for the first time is read to its end as the baseline: an error
        already in it is history, never a fresh stop.
        """
        dedicated = self.ctx.config.dedicated_session(name)
        account = self.ctx.config.account(self.ctx.state.active_account or "")
        if dedicated is None or account is None:
            return None
        shown = screen.shown_answers(text, self.ctx.patterns)
        last = shown[-1] if shown else ""
        known = self._watched(name)
        if known.answer != last:
            uuid, _ = conversation_on_screen(
                account.home, dedicated.project, shown, self.ctx.followed_conversations()
            )
            path = conversation_file(account.home, dedicated.project, uuid) if uuid else None
            known.answer = last
            # No match (an answer not written yet, say): the conversation followed so far stays followed.
            if path is not None and (
                known.follower is None or known.follower.path.resolve() != path.resolve()
            ):
                known.follower = transcript.Follower(path)
                known.follower.poll()
                known.follower.stop = None
                return None
        return known.follower.poll() if known.follower is not None else None

    async def watch_dedicated(self, looks: dict[str, Look], looked_before: set[str], now: float) -> None:
        """Dedicated sessions are never dispatched into, but a limit shown there swaps like any other.

        Only text that is new since the previous look is judged, so an old limit already answered in
        the scrollback never triggers a swap; once the session's conversation is known, its API-error
        records are judged first, as for pool runs. `looked_before` holds those looked at in an earlier
        round: one of them missing from `looks` printed nothing since.
        """
        for name in self.ctx.config.dedicated_names:
            look = looks.get(name)
            if look is None and name in looked_before and not self.awaiting_second_look(name):
                continue  # nothing printed since the last look
            if look is None or not agent_running(look.command):
                known = self.watched.pop(name, None)
                if known is not None and known.logged is not None:
                    self.watched[name] = Watched(logged=known.logged)
                continue
            if self.switcher.left_behind(self.ctx.session_state(name).account):
                if screen.read_state(look.text, self.ctx.patterns) in SETTLED:
                    self.watched.pop(name, None)  # a new agent, a new baseline
                    self.ctx.spawn(self.switcher.move_dedicated(name))
                continue
            await self._judge_dedicated(name, look, now)

    async def _judge_dedicated(self, name: str, look: Look, now: float) -> None:
        known = self._watched(name)
        previous, known.text = known.text, look.text
        awaiting = known.seen_at is not None  # the second look judges the whole turn again
        if previous is not None and previous == look.text and not awaiting:
            return  # unchanged panes cost one string compare
        record = await asyncio.to_thread(self._dedicated_record, name, look.text)
        if previous is None:
            return  # first sight is the baseline
        patterns = self.ctx.patterns
        fresh = screen.classify(look.text, patterns, since=None if awaiting else previous)
        from_record = screen.classify_record(record, patterns) if record is not None else None
        stop = prefer_stop(fresh, from_record)
        if stop is None or stop.kind != "quota":
            known.seen_at, known.logged = None, None
            return
        ended_on = known.follower.stop if known.follower is not None else None
        evidence = limit_evidence(stop, ended_on, now, patterns)
        decision, seen = self._decide(evidence, known.seen_at, now)
        if seen is not None:
            known.seen_at = seen
        self._hit(name, stop, decision, evidence[0], None, self.ctx.state.active_account or "")

    # ----------------------------------------------------------------- resets

    def prefer_first_due(self) -> bool:
        """quota.prefer_first: return to the first account once the limit it hit has reset, outside the
        cooldown and when no task would be moved. An account left without a recorded limit (the operator
        swapped) is not returned to."""
        ctx = self.ctx
        if not ctx.config.quota.prefer_first or ctx.running or ctx.state.dispatch == "paused":
            return False
        now = ctx.clock.now()
        first = ctx.config.accounts[0].name
        if ctx.state.active_account in (None, first) or self.switcher.in_cooldown(now):
            return False
        usable = ctx.state.accounts.get(first)
        return usable is not None and usable.usable_again_at is not None and usable.usable_at(now)

    async def return_to_first(self) -> None:
        first = self.ctx.config.accounts[0].name
        why = f"{first}'s limit has reset"
        reason = f"back to {first}: {why}"
        await self.switcher.swap(Trigger(reason, pattern="back_to_first", snippet=why, target=first))

    def reset_due(self) -> bool:
        """Every account was exhausted and the earliest limit has reset by now."""
        until = self.ctx.state.paused_until
        return until is not None and self.ctx.clock.now() >= until

    async def limit_reset(self) -> None:
        """The earliest limit has reset: resume dispatch, and the waiting conversations where they can run."""
        ctx = self.ctx
        now = ctx.clock.now()
        ctx.state.dispatch, ctx.state.paused_until = "running", None
        for account in ctx.state.accounts.values():
            account.reset_if_passed(now)
        ctx.save()
        ctx.emit("resumed", reason="limit reset", account=ctx.state.active_account)
        waiting = [r for r in ctx.running.values() if r.phase == "waiting"]
        usable = next_usable(ctx.config, ctx.state, None, now)
        if usable is not None and usable.name != ctx.state.active_account:
            why = f"{usable.name}'s limit has reset"
            await self.switcher.swap(Trigger(reason="limit reset", pattern="limit_reset", snippet=why))
            return
        for run in waiting:
            run.phase, run.quota_seen_at, run.resumed_at = "working", None, now
            await asyncio.to_thread(ctx.tmux.type_line, run.session, CONTINUE)
            run.answered_with_continue()
