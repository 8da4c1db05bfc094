"""The status server on 127.0.0.1: JSON routes, metrics, errors, bind refusals and misbehaving clients."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest

from engine.statusapi import Metric, StatusApiError, StatusServer, render_metrics

STATUS = {"sessions": [{"name": "cfo-1", "state": "working"}], "queues": {"inbox": 2}, "accounts": ["a"]}
DELEGATED = [{"task": "p:t1", "job": "j-1", "status": "running"}]
METRICS = [Metric("sessions", "Sessions by state.", "gauge", [({"state": "working"}, 1)])]


def boom() -> object:
    raise RuntimeError("state is broken")


ROUTES: dict[str, Callable[[], object]] = {
    "/status": lambda: STATUS,
    "/delegated": lambda: DELEGATED,
    "/boom": boom,
}


def metrics() -> str:
    return render_metrics(METRICS)


Check = Callable[[StatusServer, httpx.AsyncClient], Awaitable[None]]


def serve(check: Check, **opts: Any) -> None:
    """Runs `check` against a started loopback server on a free port, then closes the server."""

    async def main() -> None:
        server = StatusServer(("127.0.0.1", 0), False, ROUTES, metrics, **opts)
        await server.start()
        try:
            base = f"http://127.0.0.1:{server.port}"
            async with httpx.AsyncClient(base_url=base, trust_env=False, timeout=2.0) as client:
                await check(server, client)
        finally:
            await server.close()

    asyncio.run(main())


async def raw_exchange(port: int, data: bytes) -> bytes:
    """Sends `data` on a bare connection and returns everything the server sends back until it closes."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(data)
    await writer.drain()
    answer = await asyncio.wait_for(reader.read(), 2.0)
    writer.close()
    return answer


def test_json_routes_answer_200_with_their_payload_and_ignore_the_query_string() -> None:
    async def check(server: StatusServer, client: httpx.AsyncClient) -> None:
        status = await client.get("/status?pretty=1")
        delegated = await client.get("/delegated")

        assert status.status_code == 200
        assert status.headers["content-type"] == "application/json"
        assert status.headers["connection"] == "close"
        assert status.json() == STATUS
        assert delegated.status_code == 200
        assert delegated.json() == DELEGATED

    serve(check)


def test_head_answers_the_get_headers_without_a_body() -> None:
    async def check(server: StatusServer, client: httpx.AsyncClient) -> None:
        get = await client.get("/status")
        head = await client.head("/status")

        assert head.status_code == 200
        assert head.headers["content-length"] == get.headers["content-length"]
        assert head.content == b""

    serve(check)


def test_metrics_answer_prometheus_text() -> None:
    async def check(server: StatusServer, client: httpx.AsyncClient) -> None:
        response = await client.get("/metrics")

        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
        assert response.text == (
            "# HELP cfo_sessions Sessions by state.\n"
            "# TYPE cfo_sessions gauge\n"
            'cfo_sessions{state="working"} 1\n'
        )

    serve(check)


def test_unknown_path_is_404_listing_the_known_paths() -> None:
    async def check(server: StatusServer, client: httpx.AsyncClient) -> None:
        response = await client.get("/nope")

        assert response.status_code == 404
        assert response.json() == {
            "error": "no such path: /nope",
            "paths": ["/boom", "/delegated", "/metrics", "/status"],
        }

    serve(check)


def test_methods_other_than_get_and_head_are_405_with_allow() -> None:
    async def check(server: StatusServer, client: httpx.AsyncClient) -> None:
        for method in ("POST", "PUT", "DELETE"):
            response = await client.request(method, "/status", content=b"{}")

            assert response.status_code == 405
            assert response.headers["allow"] == "GET, HEAD"
            assert "read-only" in response.json()["error"]

    serve(check)


def test_a_raising_route_gives_500_is_logged_and_the_server_goes_on(caplog: pytest.LogCaptureFixture) -> None:
    async def check(server: StatusServer, client: httpx.AsyncClient) -> None:
        failed = await client.get("/boom")
        after = await client.get("/status")

        assert failed.status_code == 500
        assert failed.json() == {"error": "building /boom failed"}
        assert after.status_code == 200
        assert after.json() == STATUS

    with caplog.at_level(logging.ERROR, logger="engine.statusapi"):
        serve(check)

    [record] = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert "/boom" in record.getMessage()
    assert record.exc_info is not None
    assert str(record.exc_info[1]) == "state is broken"


def test_malformed_request_line_is_400() -> None:
    async def check(server: StatusServer, client: httpx.AsyncClient) -> None:
        answer = await raw_exchange(server.port, b"GARBAGE\r\n\r\n")

        assert answer.startswith(b"HTTP/1.1 400 Bad Request\r\n")

    serve(check)


def test_request_head_over_the_size_limit_is_431() -> None:
    async def check(server: StatusServer, client: httpx.AsyncClient) -> None:
        request = b"GET /status HTTP/1.1\r\nX-Filler: " + b"a" * 1500 + b"\r\n\r\n"

        answer = await raw_exchange(server.port, request)

        assert answer.startswith(b"HTTP/1.1 431 Request Header Fields Too Large\r\n")

    serve(check, max_header_bytes=1024)


def test_a_silent_client_does_not_block_others_and_is_dropped_after_the_read_timeout() -> None:
    read_timeout = 0.6

    async def check(server: StatusServer, client: httpx.AsyncClient) -> None:
        loop = asyncio.get_running_loop()
        idle_reader, idle_writer = await asyncio.open_connection("127.0.0.1", server.port)
        opened = loop.time()

        # Well inside the read timeout: the idle connection must not serialise other requests behind it.
        response = await asyncio.wait_for(client.get("/status"), read_timeout / 2)
        assert response.status_code == 200

        assert await asyncio.wait_for(idle_reader.read(), read_timeout + 1.0) == b""
        assert loop.time() - opened >= read_timeout * 0.9
        idle_writer.close()

    serve(check, read_timeout=read_timeout)


def test_close_drops_open_connections_without_waiting_for_their_timeout() -> None:
    async def main() -> None:
        server = StatusServer(("127.0.0.1", 0), False, ROUTES, metrics, read_timeout=30.0)
        await server.start()
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        await asyncio.sleep(0.05)  # let the server accept the connection before closing

        await asyncio.wait_for(server.close(), 1.0)

        assert await asyncio.wait_for(reader.read(), 1.0) == b""
        writer.close()

    asyncio.run(main())


def test_a_non_loopback_address_is_refused_before_binding_unless_allow_remote() -> None:
    async def main() -> None:
        server = StatusServer(("0.0.0.0", 0), False, ROUTES, metrics)

        with pytest.raises(StatusApiError) as refused:
            await server.start()

        message = str(refused.value)
        assert "status_api.listen" in message
        assert "0.0.0.0:0" in message
        assert "127.0.0.1" in message
        assert "status_api.allow_remote: true" in message
        with pytest.raises(RuntimeError, match="not started"):
            _ = server.port

    asyncio.run(main())


def test_allow_remote_binds_a_non_loopback_address() -> None:
    async def main() -> None:
        server = StatusServer(("0.0.0.0", 0), True, ROUTES, metrics)
        await server.start()
        try:
            async with httpx.AsyncClient(trust_env=False, timeout=2.0) as client:
                response = await client.get(f"http://127.0.0.1:{server.port}/status")
            assert response.status_code == 200
            assert response.json() == STATUS
        finally:
            await server.close()

    asyncio.run(main())


def test_a_port_in_use_is_a_status_api_error_naming_the_key_and_address() -> None:
    async def main() -> None:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as holder:
            holder.bind(("127.0.0.1", 0))
            holder.listen()
            port = holder.getsockname()[1]
            server = StatusServer(("127.0.0.1", port), False, ROUTES, metrics)

            with pytest.raises(StatusApiError) as failed:
                await server.start()

        message = str(failed.value)
        assert "status_api.listen" in message
        assert f"127.0.0.1:{port}" in message
        assert "in use" in message

    asyncio.run(main())


def test_metrics_cannot_also_be_a_json_route() -> None:
    with pytest.raises(ValueError, match="/metrics"):
        StatusServer(("127.0.0.1", 0), False, {"/metrics": dict}, metrics)
