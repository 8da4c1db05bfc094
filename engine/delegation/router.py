"""Routing: whether a task runs locally in Claude Code or goes to an HTTP AI provider, and why."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal, Protocol

Provider = Literal["local", "gpu", "gemini", "claude-api"]

LOCAL: Final = "local"
PROVIDERS: Final[tuple[Provider, ...]] = ("gpu", "gemini", "claude-api")

# `preferred_ai: auto` picks by `complexity_hint`: the cheapest provider that can handle the stated
# difficulty. A missing or unknown hint is treated as hard, so an unclear task never lands on the weakest
# provider.
AUTO_BY_COMPLEXITY: Final[dict[str, Provider]] = {
    "trivial": "gpu",
    "low": "gpu",
    "medium": "gemini",
    "high": "claude-api",
}
AUTO_DEFAULT: Final[Provider] = "claude-api"


class Routable(Protocol):
    """The task fields routing reads; `engine.tasks.Task` satisfies it."""

    @property
    def needs_claude_code(self) -> bool | None: ...
    @property
    def preferred_ai(self) -> str | None: ...
    @property
    def allow_delegation(self) -> bool | None: ...
    @property
    def complexity_hint(self) -> str | None: ...


@dataclass(frozen=True)
class Decision:
    """Where a task runs (`local` or a provider name) and a one-line reason for logs and the CLI."""

    provider: Provider
    reason: str

    @property
    def delegated(self) -> bool:
        return self.provider != LOCAL


def _norm(value: str | None) -> str | None:
    if value is None:
        return None
    return value.strip().lower() or None


def decide(task: Routable) -> Decision:
    """Apply the precedence rules in order; the first that matches wins."""
    preferred = _norm(task.preferred_ai)
    if task.needs_claude_code is True:
        return Decision(LOCAL, "needs_claude_code is true")
    if preferred == "claude-code":
        return Decision(LOCAL, "preferred_ai is claude-code")
    if task.allow_delegation is not True:
        state = "absent" if task.allow_delegation is None else "false"
        return Decision(LOCAL, f"allow_delegation is {state}")
    if preferred is None:
        return Decision(LOCAL, "delegation allowed but no preferred_ai")
    for provider in PROVIDERS:
        if preferred == provider:
            return Decision(provider, f"preferred_ai is {provider}")
    if preferred == "auto":
        hint = _norm(task.complexity_hint)
        if hint is None:
            return Decision(AUTO_DEFAULT, f"preferred_ai is auto, no complexity_hint: {AUTO_DEFAULT}")
        chosen = AUTO_BY_COMPLEXITY.get(hint)
        if chosen is None:
            return Decision(
                AUTO_DEFAULT, f"preferred_ai is auto, unknown complexity_hint {hint!r}: {AUTO_DEFAULT}"
            )
        return Decision(chosen, f"preferred_ai is auto, complexity_hint {hint}: {chosen}")
    return Decision(LOCAL, f"unknown preferred_ai {task.preferred_ai!r}: staying local (fail-safe)")
