"""Shared test helpers: retry-until instead of sleeps, a free loopback port, and the lock a killed engine
leaves."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_until(
    predicate: Callable[[], T], timeout: float = 10.0, interval: float = 0.05, what: str = ""
) -> T:
    """Poll `predicate` until it returns a truthy value; fail with `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last: T = predicate()
    while not last:
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or predicate}")
        time.sleep(interval)
        last = predicate()
    return last


def free_port() -> int:
    """A loopback TCP port nothing listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def drop_killed_engine_lock(socket_name: str | None) -> None:
    """A SIGKILLed engine cannot remove its tmux socket's lock file (the next engine there would take it
    over): the test that killed it removes it, as the fixtures check nothing is left behind."""
    from engine.lock import socket_lock_path

    socket_lock_path(socket_name).unlink(missing_ok=True)
