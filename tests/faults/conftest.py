"""Fault tests: a workspace on a private tmux server, local HTTP receivers, and no proxy in between."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.tmux import LibtmuxClient
from tests.integration.pipeline_support import Workspace, make_workspace
from tests.integration.test_notify import no_proxy, receiver  # noqa: F401  (fixtures)


@pytest.fixture
def ws(tmp_path: Path, tmux: LibtmuxClient) -> Workspace:
    return make_workspace(tmp_path / "ws", tmux, agents=2)
