"""In-memory records of what each session is doing right now (the persisted view lives in state.py)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

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
    stop: Stop | None = None
    follower: Follower | None = None
    follower_account: str | None = None
