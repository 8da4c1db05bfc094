"""Fixtures of the real-CLI lane: the pinned Claude Code CLI (or one loud skip), the mock API, a clean env."""

from __future__ import annotations

import os
import subprocess
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.realcli.driver import claude_path
from tests.realcli.homes import VERSION
from tests.realcli.mockapi import MockApi

CLAUDE = claude_path()
MISSING = (
    None
    if CLAUDE.is_file() and os.access(CLAUDE, os.X_OK)
    else (
        f"REAL-CLI LANE SKIPPED: no Claude Code CLI at {CLAUDE} "
        "(run scripts/install-realcli.sh, which needs npm, or set CFO_REAL_CLAUDE)"
    )
)
if MISSING is not None:
    warnings.warn(MISSING, stacklevel=1)


def pytest_runtest_setup(item: pytest.Item) -> None:
    """Without the CLI each test of the lane skips from this one place, which `pytest -ra` folds into one
    line (a skip from a fixture would be reported at each test's own line)."""
    if MISSING is not None:
        pytest.skip(MISSING)


@pytest.fixture(scope="session")
def claude() -> Path:
    """The pinned real CLI, checked to be that version."""
    version = subprocess.run([str(CLAUDE), "--version"], capture_output=True, text=True, timeout=60).stdout
    if not version.startswith(f"{VERSION} "):
        pytest.fail(f"{CLAUDE} is Claude Code {version.strip()!r}, the lane is pinned to {VERSION}")
    return CLAUDE


@pytest.fixture(autouse=True)
def clean_agent_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No credential, endpoint or setting of the person running the tests reaches a CLI under test:
    each account's settings.json is the only source of them."""
    for name in list(os.environ):
        if name.startswith(("ANTHROPIC_", "CLAUDE_")):
            monkeypatch.delenv(name)


@pytest.fixture
def mock_api() -> Iterator[MockApi]:
    with MockApi() as api:
        yield api
