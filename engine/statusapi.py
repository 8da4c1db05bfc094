"""Read-only status server: JSON routes and Prometheus metrics over minimal HTTP/1.1 on the engine's loop."""

from __future__ import annotations

import asyncio
import json
import logging
import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from http import HTTPStatus
from typing import Final, Literal

from engine.config import is_loopback

logger = logging.getLogger(__name__)

METRICS_PATH: Final = "/metrics"
METRICS_CONTENT_TYPE: Final = "text/plain; version=0.0.4; charset=utf-8"
JSON_CONTENT_TYPE: Final = "application/json"
ALLOWED_METHODS: Final = ("GET", "HEAD")
METRIC_PREFIX: Final = "cfo_"

_METRIC_NAME: Final = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_LABEL_NAME: Final = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
_FIELD_NAME: Final = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
LOOPBACK_NAMES: Final = ("localhost", "127.0.0.1", "::1")


class StatusApiError(Exception):
    """The status server cannot listen where `status_api.listen` says; the message says what to change."""


@dataclass(frozen=True)
class Metric:
    """One metric family: its samples share the name, help text and type."""

    name: str
    help: str
    type: Literal["gauge", "counter"]
    samples: Sequence[tuple[Mapping[str, str], float]]


def render_metrics(families: Iterable[Metric]) -> str:
    """Prometheus text exposition (0.0.4) of `families`, each name prefixed `cfo_`.

    Counters are exposed with the `_total` suffix Prometheus expects, added once if the name lacks it.
    Raises ValueError for a name Prometheus would reject or a family named twice, since a scraper drops
    the whole page on either.
    """
    lines: list[str] = []
    seen: set[str] = set()
    for family in families:
        name = METRIC_PREFIX + family.name
        if family.type == "counter" and not name.endswith("_total"):
            name += "_total"
        if not _METRIC_NAME.fullmatch(name):
            raise ValueError(f"invalid metric name {name!r}")
        if name in seen:
            raise ValueError(f"metric {name!r} appears twice")
        seen.add(name)
        lines.append(f"# HELP {name} {_escape_help(family.help)}")
        lines.append(f"# TYPE {name} {family.type}")
        lines.extend(
            f"{name}{_render_labels(labels)} {_format_value(value)}" for labels, value in family.samples
        )
    return "".join(line + "\n" for line in lines)


def _escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def _escape_label_value(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _render_labels(labels: Mapping[str, str]) -> str:
    if not labels:
        return ""
    for key in labels:
        # Names starting with __ are reserved for Prometheus itself.
        if not _LABEL_NAME.fullmatch(key) or key.startswith("__"):
            raise ValueError(f"invalid label name {key!r}")
    return "{" + ",".join(f'{key}="{_escape_label_value(value)}"' for key, value in labels.items()) + "}"


def _format_value(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    # Whole numbers print without ".0" so counts read as counts; beyond 2**53 a float is no longer exact.
    if float(value).is_integer() and abs(value) < 2**53:
        return str(int(value))
    return repr(float(value))


def _format_address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


@dataclass(frozen=True)
class _Head:
    """A request's line and header fields (names lower-cased), read and checked line by line."""

    method: str
    target: str
    fields: tuple[tuple[str, str], ...]


class StatusServer:
    """Serves `routes` as JSON and `metrics` as Prometheus text to GET/HEAD, one request per connection."""

    def __init__(
        self,
        listen: tuple[str, int],
        allow_remote: bool,
        routes: Mapping[str, Callable[[], object]],
        metrics: Callable[[], str] | None = None,
        *,
        read_timeout: float = 5.0,
        max_header_bytes: int = 16384,
    ) -> None:
        if metrics is not None and METRICS_PATH in routes:
            raise ValueError(f"{METRICS_PATH} is served by `metrics`; it cannot also be a JSON route")
        self.listen = listen
        self.allow_remote = allow_remote
        self._routes = dict(routes)
        self._metrics = metrics
        self._read_timeout = read_timeout
        self._max_header_bytes = max_header_bytes
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[object]] = set()

    @property
    def paths(self) -> list[str]:
        """Every path that answers, sorted."""
        paths = set(self._routes)
        if self._metrics is not None:
            paths.add(METRICS_PATH)
        return sorted(paths)

    @property
    def port(self) -> int:
        """The port actually bound, which differs from the configured one when that is 0."""
        if self._server is None:
            raise RuntimeError("the status server is not started")
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    async def start(self) -> None:
        host, port = self.listen
        address = _format_address(host, port)
        if not self.allow_remote and not is_loopback(host):
            raise StatusApiError(
                f"status_api.listen: {address} is not a loopback address; use 127.0.0.1, "
                "or set status_api.allow_remote: true to serve other machines"
            )
        try:
            self._server = await asyncio.start_server(self._serve, host, port, limit=self._max_header_bytes)
        except OSError as exc:
            raise StatusApiError(
                f"status_api.listen: cannot listen on {address}: {exc.strerror or exc}; "
                "choose another port or stop what holds it"
            ) from exc
        logger.info("status API listening on %s", _format_address(host, self.port))

    async def close(self) -> None:
        if self._server is None:
            return
        self._server.close()
        # Connections still reading would otherwise keep the server open until their timeout.
        connections = list(self._connections)
        for task in connections:
            task.cancel()
        await asyncio.gather(*connections, return_exceptions=True)
        await self._server.wait_closed()
        self._server = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._connections.add(task)
        try:
            try:
                async with asyncio.timeout(self._read_timeout):
                    head = await self._read_head(reader)
            except (TimeoutError, asyncio.IncompleteReadError, ConnectionError):
                # Silent, too slow or gone: nobody is waiting for an answer.
                writer.close()
                return
            if isinstance(head, bytes):
                response = head
            else:
                response = self._respond(head, str(writer.get_extra_info("sockname")[0]))
            await self._send(writer, response)
        finally:
            if not writer.is_closing():
                # Cancelled by close(): drop the connection rather than leak its transport.
                writer.transport.abort()
            if task is not None:
                self._connections.discard(task)

    async def _send(self, writer: asyncio.StreamWriter, response: bytes) -> None:
        writer.write(response)
        try:
            async with asyncio.timeout(self._read_timeout):
                await writer.drain()
                writer.close()
                await writer.wait_closed()
        except (TimeoutError, ConnectionError):
            # A client that does not read must not keep the connection and its buffer alive.
            writer.transport.abort()

    async def _read_head(self, reader: asyncio.StreamReader) -> _Head | bytes:
        """The request's head, or the error to answer with: a bad line is answered as soon as it arrives,
        not after waiting for the blank line that ends a head (a client sending bare LFs never sends one)."""
        size = 0
        request: list[str] | None = None
        fields: list[tuple[str, str]] = []
        while True:
            try:
                raw = await reader.readuntil(b"\n")
                size += len(raw)
            except asyncio.LimitOverrunError:
                size = self._max_header_bytes + 1  # one line alone is over the limit
            if size > self._max_header_bytes:
                return self._error(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, "request head too large")
            if not raw.endswith(b"\r\n"):
                return self._error(HTTPStatus.BAD_REQUEST, "lines must end with CR LF")
            line = raw[:-2].decode("latin-1")
            if request is None:
                request = line.split(" ")
                if len(request) != 3 or not request[2].startswith("HTTP/1."):
                    return self._error(HTTPStatus.BAD_REQUEST, "malformed request line")
            elif not line:
                return _Head(request[0], request[1], tuple(fields))
            else:
                name, colon, value = line.partition(":")
                if not colon or not _FIELD_NAME.fullmatch(name):
                    return self._error(HTTPStatus.BAD_REQUEST, "malformed header line")
                fields.append((name.lower(), value.strip(" \t")))

    def _hosts(self, local: str) -> frozenset[str]:
        """The `Host` values answered: the listen address, the address the connection reached (a wildcard
        listen's own) and the loopback names, each with the port. Any other name may be a DNS-rebinding
        page in a browser on this machine, reading `/status` under a name it controls."""
        port = self.port
        names = {self.listen[0], local, *LOOPBACK_NAMES}
        hosts = {_format_address(name, port) for name in names}
        if port == 80:  # a client leaves the default port out
            hosts |= {_format_address(name, port).rsplit(":", 1)[0] for name in names}
        return frozenset(host.lower() for host in hosts)

    def _respond(self, head: _Head, local: str) -> bytes:
        hosts = [value for name, value in head.fields if name == "host"]
        if len(hosts) != 1:
            return self._error(HTTPStatus.BAD_REQUEST, "a request needs exactly one Host header")
        if hosts[0].lower() not in self._hosts(local):
            return self._error(
                HTTPStatus.MISDIRECTED_REQUEST,
                f"this server answers to {_format_address('127.0.0.1', self.port)} or "
                f"{_format_address('localhost', self.port)}, not to the Host this request names",
            )
        method, target = head.method, head.target
        head_only = method == "HEAD"
        if method not in ALLOWED_METHODS:
            return self._error(
                HTTPStatus.METHOD_NOT_ALLOWED,
                f"method {method} not allowed; the status API is read-only",
                extra_headers={"Allow": ", ".join(ALLOWED_METHODS)},
            )
        path = target.split("?", 1)[0]
        if path == METRICS_PATH and self._metrics is not None:
            try:
                text = self._metrics()
            except Exception:
                logger.exception("status API: building %s failed", path)
                return self._error(HTTPStatus.INTERNAL_SERVER_ERROR, f"building {path} failed", head_only)
            return _response(HTTPStatus.OK, METRICS_CONTENT_TYPE, text.encode(), head_only)
        route = self._routes.get(path)
        if route is None:
            return self._error(HTTPStatus.NOT_FOUND, f"no such path: {path}", head_only, paths=self.paths)
        try:
            body = _json_body(route())
        except Exception:
            logger.exception("status API: building %s failed", path)
            return self._error(HTTPStatus.INTERNAL_SERVER_ERROR, f"building {path} failed", head_only)
        return _response(HTTPStatus.OK, JSON_CONTENT_TYPE, body, head_only)

    @staticmethod
    def _error(
        status: HTTPStatus,
        message: str,
        head_only: bool = False,
        *,
        paths: list[str] | None = None,
        extra_headers: Mapping[str, str] | None = None,
    ) -> bytes:
        payload: dict[str, object] = {"error": message}
        if paths is not None:
            payload["paths"] = paths
        return _response(status, JSON_CONTENT_TYPE, _json_body(payload), head_only, extra_headers)


def _json_body(payload: object) -> bytes:
    return (json.dumps(payload, ensure_ascii=False) + "\n").encode()


def _response(
    status: HTTPStatus,
    content_type: str,
    body: bytes,
    head_only: bool,
    extra_headers: Mapping[str, str] | None = None,
) -> bytes:
    headers = {
        "Content-Type": content_type,
        "Content-Length": str(len(body)),
        "Cache-Control": "no-store",
        "Connection": "close",
        **(extra_headers or {}),
    }
    head = f"HTTP/1.1 {status.value} {status.phrase}\r\n" + "".join(
        f"{k}: {v}\r\n" for k, v in headers.items()
    )
    return head.encode("latin-1") + b"\r\n" + (b"" if head_only else body)
