"""Fleet fixtures: a real NATS server with JetStream, and a second and third private tmux server so that
two or three engines stand for hosts."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.tmux import LibtmuxClient
from tests.conftest import assert_nothing_left
from tests.fleet.natsserver import NatsServer


@pytest.fixture
def nats_server(tmp_path: Path) -> Iterator[NatsServer]:
    server = NatsServer(tmp_path / "nats")
    server.start()
    try:
        yield server
    finally:
        server.stop()


def _private_tmux() -> LibtmuxClient:
    return LibtmuxClient(socket_name=f"cfo-test-{os.getpid()}-{uuid.uuid4().hex[:8]}")


@pytest.fixture
def tmux2(tmux: LibtmuxClient) -> Iterator[LibtmuxClient]:
    """Another private tmux server (the `tmux` fixture has sandboxed HOME and SHELL already)."""
    client = _private_tmux()
    try:
        yield client
    finally:
        client.kill_server()
    assert_nothing_left(client)
