"""Fixtures shared by all test layers: a private tmux server and a sandboxed HOME."""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.lock import socket_lock_path
from engine.tmux import LibtmuxClient, socket_path


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
    assert_nothing_left(client)


def assert_nothing_left(client: LibtmuxClient) -> None:
    """A test leaves neither its tmux server's socket file nor an engine's lock on it behind."""
    assert client.socket_name is not None
    left = [p for p in (socket_path(client.socket_name), socket_lock_path(client.socket_name)) if p.exists()]
    assert not left, f"left behind in tmux's folder: {', '.join(map(str, left))}"


@pytest.fixture
def keep_root_logging() -> Iterator[None]:
    """A test that installs cfo's own log handlers (as `cfo --no-ui` or the console do) gets pytest's back."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
