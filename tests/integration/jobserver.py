"""A small real AI job service on 127.0.0.1 for tests, with scripted failures, delays and job outcomes."""

from __future__ import annotations

import json
import threading
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal

Route = Literal["submit", "get"]
JOBS_PATH = "/v1/jobs"


@dataclass(frozen=True)
class Canned:
    """A scripted answer: sent instead of the normal one, after `delay` seconds.

    With `drip` the whole answer, status line first, goes out one byte every `drip` seconds: each read the
    client makes succeeds quickly while the answer as a whole takes minutes.
    """

    status: int
    body: str | dict[str, Any] = ""
    delay: float = 0.0
    drip: float = 0.0


@dataclass(frozen=True)
class Plan:
    """How the next submitted job behaves: it reports queued/running for `polls` GETs, then finishes.

    A job with `status` reports that status on every GET instead, and never finishes.
    """

    polls: int = 0
    result: str = "done"
    error: str | None = None
    cost_usd: float | None = 0.01
    status: str | None = None


@dataclass
class Job:
    id: str
    request: dict[str, Any]
    plan: Plan
    polls: int = 0

    def view(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id, "provider": self.request.get("provider", "")}
        if self.plan.status is not None:
            out["status"] = self.plan.status
        elif self.polls < self.plan.polls:
            out["status"] = "queued" if self.polls == 0 else "running"
        elif self.plan.error is not None:
            out |= {"status": "failed", "error": self.plan.error}
        else:
            out |= {"status": "completed", "result": self.plan.result}
            if self.plan.cost_usd is not None:
                out["cost_usd"] = self.plan.cost_usd
        self.polls += 1
        return out


@dataclass(frozen=True)
class Seen:
    """One request as the server received it."""

    route: Route | None
    method: str
    path: str
    authorization: str | None
    body: dict[str, Any] | None


@dataclass
class JobServer:
    """`POST /v1/jobs` → `{id}`, `GET /v1/jobs/{id}` → the job; a bearer token is checked when set."""

    token: str | None = "secret"
    requests: list[Seen] = field(default_factory=list)
    jobs: dict[str, Job] = field(default_factory=dict)
    _canned: dict[Route, deque[Canned]] = field(default_factory=dict)
    _plans: deque[Plan] = field(default_factory=deque)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _stopping: threading.Event = field(default_factory=threading.Event)
    _httpd: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self._httpd is not None, "server not started"
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    def script(self, route: Route, *answers: Canned) -> None:
        """Queue answers for `route`; once used up the route answers normally again."""
        with self._lock:
            self._canned.setdefault(route, deque()).extend(answers)

    def plan(self, *plans: Plan) -> None:
        """Queue outcomes for the next submitted jobs; unplanned jobs complete on the first GET."""
        with self._lock:
            self._plans.extend(plans)

    def count(self, route: Route) -> int:
        with self._lock:
            return sum(1 for seen in self.requests if seen.route == route)

    def start(self) -> None:
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._httpd.daemon_threads = True
        # A short poll interval keeps shutdown, and so each test's teardown, quick.
        threading.Thread(
            target=self._httpd.serve_forever, args=(0.02,), name="jobserver", daemon=True
        ).start()

    def stop(self) -> None:
        self._stopping.set()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()

    def _next_canned(self, route: Route) -> Canned | None:
        with self._lock:
            queue = self._canned.get(route)
            return queue.popleft() if queue else None

    def _submit(self, body: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            job = Job(f"job-{len(self.jobs) + 1}", body, self._plans.popleft() if self._plans else Plan())
            self.jobs[job.id] = job
            return {"id": job.id}

    def _get(self, job_id: str) -> dict[str, Any] | None:
        with self._lock:
            job = self.jobs.get(job_id)
            return job.view() if job is not None else None


def _route(method: str, path: str) -> tuple[Route | None, str]:
    if method == "POST" and path == JOBS_PATH:
        return "submit", ""
    prefix = JOBS_PATH + "/"
    if method == "GET" and path.startswith(prefix) and "/" not in path[len(prefix) :]:
        return "get", path[len(prefix) :]
    return None, ""


def _handler(server: JobServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            # Quiet: pytest output should show test failures, not access logs.
            pass

        def do_GET(self) -> None:
            self._handle()

        def do_POST(self) -> None:
            self._handle()

        def _read_body(self) -> dict[str, Any] | None:
            length = int(self.headers.get("Content-Length") or 0)
            if not length:
                return None
            try:
                data = json.loads(self.rfile.read(length))
            except ValueError:
                return None
            return data if isinstance(data, dict) else None

        def _send(self, status: int, body: str | dict[str, Any]) -> None:
            raw = (json.dumps(body) if isinstance(body, dict) else body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json" if isinstance(body, dict) else "text/plain")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

        def _drip(self, status: int, body: str | dict[str, Any], every: float) -> None:
            raw = (json.dumps(body) if isinstance(body, dict) else body).encode()
            head = (
                f"HTTP/1.1 {status} {HTTPStatus(status).phrase}\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(raw)}\r\n\r\n"
            )
            for byte in head.encode() + raw:
                if server._stopping.wait(every):
                    return
                try:
                    self.wfile.write(bytes([byte]))
                except OSError:
                    return  # the client gave up on the answer: what a deadline should do

        def _handle(self) -> None:
            route, job_id = _route(self.command, self.path)
            body = self._read_body()
            auth = self.headers.get("Authorization")
            with server._lock:
                server.requests.append(Seen(route, self.command, self.path, auth, body))
            if route is None:
                self._send(404, {"error": f"no route {self.command} {self.path}"})
                return
            if server.token is not None and auth != f"Bearer {server.token}":
                self._send(401, {"error": "invalid bearer token"})
                return
            canned = server._next_canned(route)
            if canned is not None:
                if server._stopping.wait(canned.delay):
                    return
                if canned.drip:
                    self._drip(canned.status, canned.body, canned.drip)
                else:
                    self._send(canned.status, canned.body)
                return
            if route == "submit":
                if body is None or not isinstance(body.get("prompt"), str):
                    self._send(400, {"error": "body must be a JSON object with a prompt"})
                    return
                self._send(201, server._submit(body))
                return
            job = server._get(job_id)
            if job is None:
                self._send(404, {"error": f"no job {job_id}"})
            else:
                self._send(200, job)

    return Handler


@contextmanager
def running(token: str | None = "secret") -> Iterator[JobServer]:
    """A started server, stopped on exit."""
    server = JobServer(token=token)
    server.start()
    try:
        yield server
    finally:
        server.stop()
