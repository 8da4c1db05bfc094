"""Routing precedence: needs_claude_code > claude-code > allow_delegation > preferred_ai > fail-safe local."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from engine.delegation.router import AUTO_BY_COMPLEXITY, Decision, decide
from engine.tasks import Task


def task(**fields: Any) -> Task:
    return Task(project="p", project_dir=Path("/p"), id="t", path=Path("/p/t.md"), title="t", **fields)


ON = {"allow_delegation": True}

CASES: list[tuple[str, dict[str, Any], str, str]] = [
    ("plain task stays local", {}, "local", "allow_delegation is absent"),
    (
        "needs_claude_code beats everything",
        {"needs_claude_code": True, "preferred_ai": "gpu", **ON},
        "local",
        "needs_claude_code",
    ),
    (
        "needs_claude_code false does not force local",
        {"needs_claude_code": False, "preferred_ai": "gpu", **ON},
        "gpu",
        "preferred_ai is gpu",
    ),
    ("claude-code beats allow_delegation", {"preferred_ai": "claude-code", **ON}, "local", "claude-code"),
    ("claude-code is case-insensitive", {"preferred_ai": " Claude-Code ", **ON}, "local", "claude-code"),
    ("provider without allow_delegation", {"preferred_ai": "gemini"}, "local", "allow_delegation is absent"),
    (
        "provider with allow_delegation false",
        {"preferred_ai": "gemini", "allow_delegation": False},
        "local",
        "allow_delegation is false",
    ),
    ("allowed but no preference", dict(ON), "local", "no preferred_ai"),
    ("allowed but empty preference", {"preferred_ai": "  ", **ON}, "local", "no preferred_ai"),
    ("gpu", {"preferred_ai": "gpu", **ON}, "gpu", "preferred_ai is gpu"),
    ("gemini", {"preferred_ai": "gemini", **ON}, "gemini", "preferred_ai is gemini"),
    ("claude-api", {"preferred_ai": "claude-api", **ON}, "claude-api", "preferred_ai is claude-api"),
    ("provider ignores complexity", {"preferred_ai": "gpu", "complexity_hint": "high", **ON}, "gpu", "gpu"),
    ("auto trivial", {"preferred_ai": "auto", "complexity_hint": "trivial", **ON}, "gpu", "trivial"),
    ("auto low", {"preferred_ai": "auto", "complexity_hint": "low", **ON}, "gpu", "low"),
    ("auto medium", {"preferred_ai": "auto", "complexity_hint": "Medium", **ON}, "gemini", "medium"),
    ("auto high", {"preferred_ai": "auto", "complexity_hint": "high", **ON}, "claude-api", "high"),
    ("auto without hint", {"preferred_ai": "auto", **ON}, "claude-api", "no complexity_hint"),
    (
        "auto with unknown hint",
        {"preferred_ai": "auto", "complexity_hint": "epic", **ON},
        "claude-api",
        "unknown complexity_hint 'epic'",
    ),
    ("auto not allowed", {"preferred_ai": "auto", "complexity_hint": "low"}, "local", "allow_delegation"),
    (
        "unknown provider is fail-safe local",
        {"preferred_ai": "gpt-7", **ON},
        "local",
        "unknown preferred_ai 'gpt-7': staying local (fail-safe)",
    ),
    (
        "needs_claude_code beats unknown provider",
        {"needs_claude_code": True, "preferred_ai": "gpt-7", **ON},
        "local",
        "needs_claude_code",
    ),
]


@pytest.mark.parametrize(("fields", "provider", "reason"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_precedence(fields: dict[str, Any], provider: str, reason: str) -> None:
    decision = decide(task(**fields))
    assert decision.provider == provider
    assert reason in decision.reason
    assert decision.delegated is (provider != "local")


def test_auto_mapping_only_names_known_providers() -> None:
    assert set(AUTO_BY_COMPLEXITY.values()) <= {"gpu", "gemini", "claude-api"}


def test_decision_is_a_value() -> None:
    assert decide(task()) == Decision("local", "allow_delegation is absent")
