"""Fixtures shared by all test layers: a private tmux server and a sandboxed HOME."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.tmux import LibtmuxClient


@pytest.fixture
def tmux(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[LibtmuxClient]:
    """A LibtmuxClient on a unique socket, with HOME and SHELL sandboxed; the server dies afterwards."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("SHELL", "/bin/sh")
    monkeypatch.delenv("TMUX", raising=False)
    monkeypatch.delenv("CLAUDE_CONFIG_DIR", raising=False)
    client = LibtmuxClient(socket_name=f"cfo-test-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    try:
        yield client
    finally:
        client.kill_server()
