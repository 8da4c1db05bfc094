"""Engines with delegation on against the test job server: their workspace, the engine, a task's events."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from engine.core import Engine
from engine.tmux import LibtmuxClient
from tests.integration.jobserver import JobServer
from tests.integration.pipeline_support import Workspace, make_workspace

KEY_ENV = "CFO_TEST_JOB_KEY"
GPU: dict[str, Any] = {"allow_delegation": True, "preferred_ai": "gpu"}


def delegation_workspace(
    root: Path, tmux: LibtmuxClient, monkeypatch: pytest.MonkeyPatch, agents: int = 2
) -> Workspace:
    """A workspace whose engines find the job service's key (`secret`) in `KEY_ENV`."""
    monkeypatch.setenv(KEY_ENV, "secret")
    return make_workspace(root, tmux, agents=agents)


def engine_for(ws: Workspace, server: JobServer, **overrides: Any) -> Engine:
    """An engine delegating to `server` and polling its jobs every 100 ms; `overrides` as in `ws.config`."""
    config = ws.config(delegation__url=server.url, delegation__api_key_env=KEY_ENV, **overrides)
    # Only the back-offs are shortened: the timeouts come from the config, as a user's would.
    return Engine(
        config,
        ws.tmux,
        api_error_backoff=0.2,
        full_scan=1.0,
        delegation_poll=0.1,
        delegation_options={"backoff": 0.01, "backoff_max": 0.05},
    )


def types(ws: Workspace, task: str) -> list[str]:
    """The task's life as events (a local launch's `submitted` step left out)."""
    return [e["type"] for e in ws.events() if e.get("task") == task and e["type"] != "submitted"]
