"""Messages that carry engine events into the app; routine ones coalesce, notable ones never do."""

from __future__ import annotations

from dataclasses import dataclass

from textual.message import Message

from engine.events import Event

NOTABLE = frozenset(
    {
        "completed",
        "failed",
        "launch_failed",
        "auth_failed",
        "swap",
        "all_exhausted",
        "stalled",
        "blocked_too_long",
    }
)
"""Events the app shows on their own (recent list, toasts); every other one only means "re-render"."""


@dataclass
class EngineEvent(Message):
    """One engine event, posted from whichever thread emitted it."""

    event: Event

    def can_replace(self, message: Message) -> bool:
        # A routine event waiting in the queue is superseded by any later engine event: both only
        # ask for a re-render, so a burst of 100 dispatches costs one.
        return isinstance(message, EngineEvent) and self.event.type not in NOTABLE


@dataclass
class EngineLog(Message):
    """An error the engine logged (it carries on); the app shows it as a toast."""

    text: str
