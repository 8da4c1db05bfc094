"""Recovery at start: every task left claimed by an earlier run is adopted by the agent still on it, or
requeued."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from pathlib import Path

from engine import moves, screen
from engine.context import Context
from engine.conversations import answers_match, conversation_file, conversation_for, recent_answers
from engine.finisher import Finisher
from engine.launch import agent_running, echoed, task_marker
from engine.lifecycle import live_pool
from engine.runtime import Look, Running
from engine.state import IDLE, WORKING
from engine.tasks import TaskError, read_task, task_id_of
from engine.tmux import TmuxError

log = logging.getLogger(__name__)

SCROLLBACK_LINES = 100_000  # the deeper look: everything tmux kept


class Recovery:
    """Reconciles the `.dispatched` files with tmux and the state file."""

    def __init__(self, ctx: Context, finisher: Finisher) -> None:
        self.ctx = ctx
        self.finisher = finisher

    async def recover(self) -> None:
        """Reconcile every `.dispatched` file with tmux and state: adopt what still runs, requeue the rest."""
        ctx = self.ctx
        ctx.projects = await asyncio.to_thread(ctx.discover)
        projects = ctx.projects
        # Runs that finished before the restart but whose move did not land: moved now or kept claimed,
        # never run again.
        await self.finisher.retry_moves()
        scan = await asyncio.to_thread(ctx.queue.scan, projects)
        holders = {s.task: name for name, s in ctx.state.sessions.items() if s.task}
        adopted: set[str] = set()
        for claimed in scan.claimed:
            if str(claimed) in ctx.state.finishing:
                continue  # finished: its move is retried, it is not run again
            if await asyncio.to_thread(moves.reconcile_claim, claimed):
                continue
            project = next((p for p, d in projects.items() if claimed.parent.parent.parent == d), None)
            task_id = task_id_of(claimed.name)
            if project is None or task_id is None:
                continue
            key = f"{project}:{task_id}"
            session = await asyncio.to_thread(
                self._find_holder, task_id, holders.get(key), claimed, projects[project], adopted
            )
            if session is not None and await self._adopt(session, claimed, project):
                adopted.add(session)
                continue
            await asyncio.to_thread(moves.requeue, claimed)
            ctx.emit("requeued", task=key, reason="recovered after restart: no agent was working on it")
        for name, s in ctx.state.sessions.items():
            if name not in adopted and s.state != IDLE:
                s.state, s.task, s.task_path = IDLE, None, None
        for name in await asyncio.to_thread(live_pool, ctx.config, ctx.tmux):
            if name not in adopted:
                await self.finisher.stop_agent(name)

    def _find_holder(
        self, task_id: str, hint: str | None, claimed: Path, project_dir: Path, taken: set[str]
    ) -> str | None:
        """The session whose agent took this task: the recorded holder if its message went in, else
        any managed session whose pane echoes the `[<id>.md]` prompt (the state file may be lost) —
        in the usual capture, then in the whole scrollback, then by the task's transcript."""
        ctx = self.ctx
        marker = task_marker(f"{task_id}.md")
        candidates = [hint] if hint and hint not in taken else []
        candidates += [
            n for n in ctx.tmux.list_sessions() if ctx.config.is_managed(n) and n != hint and n not in taken
        ]
        looks: dict[str, Look] = {}
        for name in candidates:
            look = ctx.look(name)
            if look is None or not agent_running(look.command):
                continue
            recorded = ctx.state.sessions.get(name)
            if (name == hint and recorded is not None and recorded.state == WORKING) or echoed(
                look.text, marker, ctx.patterns
            ):
                return name
            looks[name] = look
        for name in looks:  # a long answer may have pushed the echo out of the usual capture
            try:
                if echoed(ctx.tmux.capture(name, SCROLLBACK_LINES), marker, ctx.patterns):
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
        for account in self.ctx.config.accounts:
            uuid = conversation_for(account.home, project_dir, marker, since)
            if uuid is not None:
                answers = recent_answers(conversation_file(account.home, project_dir, uuid))
                break
        if not answers:
            return None
        matches = []
        for name, look in looks.items():
            shown = screen.shown_answers(look.text, self.ctx.patterns)
            if shown and answers_match(shown[-1], answers):
                matches.append(name)
        if len(matches) != 1:
            return None
        log.info("%s: holds the task of %s by its transcript (the echo scrolled away)", matches[0], marker)
        return matches[0]

    async def _adopt(self, session: str, claimed: Path, project: str) -> bool:
        ctx = self.ctx
        try:
            task = await asyncio.to_thread(
                read_task, claimed, project, ctx.projects[project], ctx.config.tasks.max_bytes
            )
        except TaskError as exc:
            log.error("%s", exc)
            return False
        prior = ctx.session_state(session)
        run = Running(
            session=session,
            task=task,
            claimed=claimed,
            account=prior.account or ctx.state.active_account or "",
            model=prior.model or ctx.config.agent.model_for(task.priority),
            started=prior.assigned_at or ctx.clock.now(),
            phase="working",
        )
        ctx.running[session] = run
        prior.state, prior.task, prior.task_path = WORKING, task.key, str(claimed)
        ctx.emit("recovered", session=session, task=task.key)
        return True
