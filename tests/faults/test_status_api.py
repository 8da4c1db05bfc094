"""The engine's status API answers only to its own address and answers a malformed request at once."""

from __future__ import annotations

import socket
import threading
import time

import pytest

from engine.core import Engine
from tests.integration.pipeline_support import Workspace, run_engine

pytestmark = pytest.mark.integration

ANSWER_WITHIN = 1.0
"""Seconds: far under the server's 5 s read timeout, which is what a hanging request would take."""


def exchange(port: int, data: bytes) -> tuple[str, float]:
    """Send `data` and keep the connection open; the status line the server answers with, and how long
    that took (a server waiting for more would keep us until its read timeout)."""
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        conn.sendall(data)
        answer = b""
        while b"\r\n" not in answer:
            chunk = conn.recv(4096)
            if not chunk:
                break
            answer += chunk
    return answer.split(b"\r\n", 1)[0].decode(), time.monotonic() - started


def test_a_foreign_host_is_refused_and_malformed_requests_are_answered_at_once(ws: Workspace) -> None:
    engine = Engine(ws.config(status_api__listen="127.0.0.1:0"), ws.tmux, full_scan=1.0)
    answers: dict[str, tuple[str, float]] = {}

    def ask() -> None:
        while engine.status_port is None:
            time.sleep(0.05)
        port = engine.status_port
        requests = {
            # What a DNS-rebinding page sends: the attacker's name, resolved to 127.0.0.1.
            "rebound": f"GET /status HTTP/1.1\r\nHost: evil.example:{port}\r\n\r\n",
            "no port": "GET /status HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
            "no host": "GET /status HTTP/1.1\r\n\r\n",
            "two hosts": f"GET /status HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nHost: evil.example\r\n\r\n",
            "listen address": f"GET /status HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n",
            "localhost": f"GET /metrics HTTP/1.1\r\nHost: LocalHost:{port}\r\n\r\n",
            "ipv6 loopback": f"HEAD /status HTTP/1.1\r\nHost: [::1]:{port}\r\n\r\n",
            "bare line feeds": f"GET /status HTTP/1.1\nHost: 127.0.0.1:{port}\n\n",
            "half a head in bare line feeds": "GET /status HTTP/1.1\n",
            "a header line without a colon": "GET /status HTTP/1.1\r\nHost 127.0.0.1\r\n",
        }
        for name, request in requests.items():
            answers[name] = exchange(port, request.encode())

    client = threading.Thread(target=ask, daemon=True)
    client.start()
    run_engine(engine, lambda: not client.is_alive(), timeout=60)

    assert {name: status for name, (status, _) in answers.items()} == {
        "rebound": "HTTP/1.1 421 Misdirected Request",
        "no port": "HTTP/1.1 421 Misdirected Request",
        "no host": "HTTP/1.1 400 Bad Request",
        "two hosts": "HTTP/1.1 400 Bad Request",
        "listen address": "HTTP/1.1 200 OK",
        "localhost": "HTTP/1.1 200 OK",
        "ipv6 loopback": "HTTP/1.1 200 OK",
        "bare line feeds": "HTTP/1.1 400 Bad Request",
        "half a head in bare line feeds": "HTTP/1.1 400 Bad Request",
        "a header line without a colon": "HTTP/1.1 400 Bad Request",
    }
    assert max(took for _, took in answers.values()) < ANSWER_WITHIN
