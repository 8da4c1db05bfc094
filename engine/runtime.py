"""In-memory records of what each session is doing right now (the persisted view lives in state.py)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from engine.config import Account, AgentConfig
from engine.conversations import conversation_for
from engine.launch import CONTINUE, Launch, command_line, render_message, task_marker
from engine.tasks import Task

if TYPE_CHECKING:
    from engine.screen import Stop
    from engine.transcript import Follower

Phase = Literal["launching", "working", "waiting", "finishing"]


@dataclass(frozen=True)
class Look:
    """One look at a session: the foreground command and the last lines of its pane."""

    command: str
    text: str


@dataclass
class Running:
    """A session holding a task, from claim to release."""

    session: str
    task: Task
    claimed: Path
    account: str
    model: str
    started: float
    phase: Phase
    claimed_at: float = 0.0
    continues: int = 0
    retry_at: float | None = None
    quota_seen_at: float | None = None
    # The idle timeout counts from here: the start, or when a swap or a limit reset resumed the task.
    resumed_at: float = 0.0
    # Between looks: the previous capture (only what is new since is judged), the stop the turn ended on,
    # and the conversation file followed for its API-error records (with the account it was found under).
    last_text: str | None = None
    # The capture when "continue" was typed: until the screen changes, the stop and turn end it shows are the
    # answered turn's, not the continued one's.
    continued_from: str | None = None
    # When "continue" was typed (wall clock): an API-error record older than this was answered by it.
    continued_at: float = 0.0
    stop: Stop | None = None
    follower: Follower | None = None
    follower_account: str | None = None

    def answered_with_continue(self) -> None:
        """ "continue" was just typed: the stop on screen, and any record of it still to be written, are
        the answered turn's."""
        self.continued_from, self.continued_at, self.stop = self.last_text, time.time(), None

    def launch(
        self, agent: AgentConfig, account: Account, resume_id: str | None, resumed: bool = False
    ) -> Launch:
        """What to type for this run under `account`: the task's message, or just "continue" when
        `resumed` (the conversation `resume_id` already holds the task)."""
        task = self.task
        # A resume's `continue` goes on the command line: the agent submits it itself as it starts.
        in_line = resumed and resume_id is not None
        return Launch(
            session=self.session,
            line=command_line(
                task.project_dir,
                account.home,
                agent.command,
                agent.args,
                self.model,
                resume_id,
                CONTINUE if in_line else None,
            ),
            message=CONTINUE if resumed else render_message(agent.message_template, task.filename, task.body),
            marker=CONTINUE if resumed else task_marker(task.filename),
            prompt_timeout=agent.prompt_timeout,
            in_line=in_line,
        )

    def conversation_in(self, account_home: Path) -> str | None:
        """The UUID of the conversation under `account_home` that opened with this run's task marker,
        begun after (a minute's slack) the claim."""
        task = self.task
        return conversation_for(
            account_home, task.project_dir, task_marker(task.filename), self.claimed_at - 60
        )
