"""A local stand-in for the Anthropic Messages API that the real Claude Code CLI is pointed at in tests."""

from __future__ import annotations

import functools
import json
import re
import threading
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal

from engine.launch import CONTINUE

Kind = Literal[
    "normal",  # answers at once
    "slow",  # answers, `chunk_delay` seconds between streamed chunks
    "subscriber_limit",  # 429 with the unified rate-limit headers a subscriber's exhausted quota gets
    "rate_limit",  # 429 without them: an API key's rate limit
    "throttle",  # 429 without them either, as the API sheds load: a subscriber reads "not your usage limit"
    "server_error",  # 500
    "overloaded",  # 529
    "unauthorized",  # 401
]
Auth = Literal["api_key", "oauth", "none"]
RequestKind = Literal["prompt", "tool_result", "title", "other"]

# Each line a directive for the mock, in the prompt of the task: `mock: bash CMD` has the CLI run CMD with
# its own Bash tool (one tool call per line, in order) before the final answer; `mock: stream 5s` spreads
# the final answer over that long.
DIRECTIVE = re.compile(r"^\s*mock:\s*(?P<verb>bash|stream)\s+(?P<arg>.+?)\s*$")
DURATION = re.compile(r"^(?P<n>\d+(?:\.\d+)?)(?P<unit>ms|s)?$")
STREAM_CHUNKS = 10
ANSWER_PREFIX = "Done: "
# Each error kind's status, error type and message: the CLI shows the message in its `API Error` line.
ERRORS: Mapping[Kind, tuple[int, str, str]] = {
    "subscriber_limit": (429, "rate_limit_error", "Rate limited"),
    "rate_limit": (
        429,
        "rate_limit_error",
        "This request would exceed your account's rate limit. Please try again later.",
    ),
    "throttle": (429, "rate_limit_error", "Too many requests; please retry shortly."),
    "server_error": (500, "api_error", "Internal server error"),
    "overloaded": (529, "overloaded_error", "Overloaded"),
    "unauthorized": (401, "authentication_error", "invalid x-api-key"),
}


@dataclass(frozen=True)
class Behaviour:
    """How the mock answers one account.

    `times` limits an error to that many prompt or tool-result requests, after which the account answers
    normally again (title requests get the error too while it lasts, but never use it up). `reset_in` is
    how far ahead a subscriber limit resets and `claim` which limit it is (`five_hour`, `seven_day`,
    `seven_day_opus`, `seven_day_sonnet`; None for none); `retry_after` (seconds) is sent with errors to
    pace the CLI's own retries, which without it back off 0.5 s, 1 s, 2 s… up to 32 s; `headers` are added
    to every error response (e.g. the overage headers behind the CLI's other limit wordings).
    """

    kind: Kind = "normal"
    chunk_delay: float = 0.3
    times: int | None = None
    reset_in: float = 300.0
    claim: str | None = "five_hour"
    retry_after: float | None = None
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Request:
    """One request the mock received, for assertions."""

    at: float
    method: str
    path: str
    credential: str | None
    auth: Auth
    kind: RequestKind
    status: int
    prompt: str  # the first line of the turn's prompt, "" when there is none
    answered: bool = False  # answered with the turn's final answer (not a tool call, a title or an error)
    continued: bool = False  # the turn's latest prompt was `continue`
    ended: float | None = None  # when the response's last byte went out; None while it streams


@dataclass
class _Account:
    behaviour: Behaviour
    used: int = 0  # error responses spent from `behaviour.times`


def parse_duration(text: str) -> float:
    match = DURATION.match(text.strip())
    if match is None:
        raise ValueError(f"not a duration: {text!r} (use 500ms or 5s)")
    value = float(match["n"])
    return value / 1000 if match["unit"] == "ms" else value


def _text_of(block: Any) -> str:
    if isinstance(block, str):
        return block
    if isinstance(block, dict) and block.get("type") == "text" and isinstance(block.get("text"), str):
        return str(block["text"])
    return ""


def _blocks(message: Mapping[str, Any]) -> list[Any]:
    content = message.get("content")
    return [content] if isinstance(content, str) else list(content or [])


def _own_texts(message: Mapping[str, Any]) -> list[str]:
    """The user's own text blocks in a user message, in order.

    The CLI sends its context as `<system-reminder>` text blocks in the same message as the prompt.
    """
    texts = [_text_of(b) for b in _blocks(message)]
    return [t for t in texts if t.strip() and not t.lstrip().startswith("<system-reminder>")]


@dataclass(frozen=True)
class Turn:
    """What a main request asks for: the turn's prompt, and how many tool results it already carries."""

    prompt: str
    tool_results: int
    last_is_tool_result: bool
    continued: bool = False

    @property
    def first_line(self) -> str:
        return next((line.strip() for line in self.prompt.splitlines() if line.strip()), "")

    def commands(self) -> list[str]:
        return [m["arg"] for m in map(DIRECTIVE.match, self.prompt.splitlines()) if m and m["verb"] == "bash"]

    def stream_for(self) -> float | None:
        for match in map(DIRECTIVE.match, self.prompt.splitlines()):
            if match and match["verb"] == "stream":
                return parse_duration(match["arg"])
        return None


def read_turn(body: Mapping[str, Any]) -> Turn:
    """The turn a main request continues. A `continue` (what cfo types into a turn a limit or an error
    stopped, resumed or not: a message of its own, or a last text block the CLI adds to the stopped
    prompt's message) goes on with the prompt before it, as a model picks the task up where it stopped:
    that prompt's commands, its tool calls counted across both."""
    messages = [m for m in body.get("messages") or [] if isinstance(m, dict)]
    results = 0
    last_is_result = False
    continued = False
    for index in range(len(messages) - 1, -1, -1):
        message = messages[index]
        if message.get("role") != "user":
            continue
        blocks = _blocks(message)
        found = sum(1 for b in blocks if isinstance(b, dict) and b.get("type") == "tool_result")
        if index == len(messages) - 1:
            last_is_result = found > 0
        results += found
        texts = _own_texts(message)
        if texts and texts[-1].strip().lower() == CONTINUE:
            continued, texts = True, texts[:-1]
        if found == 0 and texts:
            return Turn("\n".join(texts), results, last_is_result, continued)
    return Turn(CONTINUE if continued else "", results, last_is_result, continued)


def title_prompt(body: Mapping[str, Any]) -> str:
    """The text a title request asks a title for, which the CLI wraps in `<session>` tags."""
    messages = body.get("messages") or []
    text = "\n".join(_text_of(b) for m in messages if isinstance(m, dict) for b in _blocks(m))
    match = re.search(r"<session>\s*(.*?)\s*</session>", text, re.S)
    inner = match.group(1) if match else text
    return next((line.strip() for line in inner.splitlines() if line.strip()), "")


def _sse(event: str, data: Mapping[str, Any]) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data)}\n\n".encode()


def pieces_of(text: str, count: int) -> list[str]:
    """`text` cut into `count` pieces of about equal length (fewer for a shorter text)."""
    count = max(1, min(count, len(text)))
    return [text[i * len(text) // count : (i + 1) * len(text) // count] for i in range(count)]


def message_events(
    model: str, pieces: Sequence[str], tool: tuple[str, Mapping[str, Any]] | None
) -> Iterator[bytes]:
    """The SSE events of one streamed answer: a text block of `pieces` (if any), then the tool call."""
    usage = {
        "input_tokens": 120,
        "output_tokens": 1,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
    }
    message: dict[str, Any] = {
        "id": f"msg_{uuid.uuid4().hex[:24]}",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": usage,
    }
    yield _sse("message_start", {"type": "message_start", "message": message})
    index = 0
    if pieces:
        start = {"type": "content_block_start", "index": index, "content_block": {"type": "text", "text": ""}}
        yield _sse("content_block_start", start)
        for piece in pieces:
            delta = {"type": "text_delta", "text": piece}
            yield _sse("content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta})
        yield _sse("content_block_stop", {"type": "content_block_stop", "index": index})
        index += 1
    if tool is not None:
        name, arguments = tool
        block = {"type": "tool_use", "id": f"toolu_{uuid.uuid4().hex[:24]}", "name": name, "input": {}}
        start = {"type": "content_block_start", "index": index, "content_block": block}
        yield _sse("content_block_start", start)
        delta = {"type": "input_json_delta", "partial_json": json.dumps(arguments)}
        yield _sse("content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta})
        yield _sse("content_block_stop", {"type": "content_block_stop", "index": index})
    final = {
        "type": "message_delta",
        "delta": {"stop_reason": "tool_use" if tool else "end_turn", "stop_sequence": None},
        "usage": {"output_tokens": 12},
    }
    yield _sse("message_delta", final)
    yield _sse("message_stop", {"type": "message_stop"})


class MockApi:
    """The mock server: start it, point ANTHROPIC_BASE_URL at `url`, set each account's behaviour.

    Accounts are told apart by their credential (an API key, or a subscriber's OAuth token); one never
    configured answers normally.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self._lock = threading.Lock()
        self._accounts: dict[str | None, _Account] = {}
        self._requests: list[Request] = []
        self._server = ThreadingHTTPServer((host, port), _handler_for(self))
        self._server.daemon_threads = True
        # Polled this often for shutdown: the default half second would be added to every test.
        serve = functools.partial(self._server.serve_forever, poll_interval=0.05)
        self._thread = threading.Thread(target=serve, name="mockapi", daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> MockApi:
        self._thread.start()
        return self

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> MockApi:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def behave(self, credential: str, behaviour: Behaviour | Kind = "normal") -> None:
        """From the next request on, answer `credential`'s account as `behaviour` says (budget reset)."""
        chosen = Behaviour(behaviour) if isinstance(behaviour, str) else behaviour
        with self._lock:
            self._accounts[credential] = _Account(chosen)

    def requests(self, credential: str | None = None) -> list[Request]:
        with self._lock:
            return [r for r in self._requests if credential is None or r.credential == credential]

    def _record(self, request: Request) -> None:
        with self._lock:
            self._requests.append(request)

    def _ended(self, request: Request) -> None:
        with self._lock:
            index = next(i for i, r in enumerate(self._requests) if r is request)
            self._requests[index] = replace(request, ended=time.time())

    def _decide(self, credential: str | None, title: bool) -> Behaviour:
        """The behaviour for this request, spending one unit of the error budget unless it is a title."""
        with self._lock:
            account = self._accounts.setdefault(credential, _Account(Behaviour()))
            behaviour = account.behaviour
            if behaviour.kind in ("normal", "slow") or behaviour.times is None:
                return behaviour
            if account.used >= behaviour.times:
                return replace(behaviour, kind="normal")
            if not title:
                account.used += 1
            return behaviour


def _handler_for(api: MockApi) -> type[BaseHTTPRequestHandler]:
    class Handler(_Handler):
        mock = api

    return Handler


class _Handler(BaseHTTPRequestHandler):
    mock: MockApi
    protocol_version = "HTTP/1.1"
    server_version = "cfo-mockapi"

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the recorded requests are the log."""

    def _credential(self) -> tuple[str | None, Auth]:
        key = self.headers.get("x-api-key")
        if key:
            return key, "api_key"
        bearer = self.headers.get("authorization", "")
        if bearer.lower().startswith("bearer "):
            return bearer[7:].strip(), "oauth"
        return None, "none"

    def _plain(self, status: int, body: bytes = b"", headers: Mapping[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("request-id", f"req_{uuid.uuid4().hex[:24]}")
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        if body:
            self.send_header("Content-Type", "application/json")
        self.end_headers()
        if body and self.command != "HEAD":
            self.wfile.write(body)

    def _other(self) -> None:
        credential, auth = self._credential()
        status = 200 if self.command == "HEAD" and self.path.split("?")[0] == "/" else 404
        request = Request(time.time(), self.command, self.path, credential, auth, "other", status, "")
        self.mock._record(request)
        self._plain(status)

    do_HEAD = _other
    do_GET = _other
    do_PUT = _other
    do_DELETE = _other

    def do_POST(self) -> None:
        if self.path.split("?")[0] != "/v1/messages":
            self._drain()
            self._other()
            return
        credential, auth = self._credential()
        try:
            body = json.loads(self._drain() or b"{}")
        except json.JSONDecodeError:
            body = {}
        title = not body.get("tools")  # the title request comes with an empty tool list
        turn = read_turn(body)
        kind: RequestKind = "title" if title else ("tool_result" if turn.last_is_tool_result else "prompt")
        prompt = title_prompt(body) if title else turn.first_line
        commands = turn.commands()
        final = not title and turn.tool_results >= len(commands)
        continued = not title and turn.continued
        behaviour = self.mock._decide(credential, title)
        failing = behaviour.kind in ERRORS
        status = ERRORS[behaviour.kind][0] if failing else 200
        answered = final and not failing
        at = time.time()
        request = Request(at, "POST", self.path, credential, auth, kind, status, prompt, answered, continued)
        self.mock._record(request)
        try:
            self._respond(body, behaviour, turn, request)
        finally:
            self.mock._ended(request)

    def _respond(self, body: Mapping[str, Any], behaviour: Behaviour, turn: Turn, request: Request) -> None:
        if behaviour.kind in ERRORS:
            self._error(behaviour)
            return
        model = str(body.get("model") or "claude-mock")
        if request.kind == "title":
            title = json.dumps({"title": request.prompt[:60] or "Task"})
            self._stream(message_events(model, [title], None), 0.0)
            return
        slow = behaviour.chunk_delay if behaviour.kind == "slow" else 0.0
        if not request.answered:
            commands = turn.commands()
            tool = ("Bash", {"command": commands[turn.tool_results], "description": "Run the task's command"})
            self._stream(message_events(model, [], tool), slow)
            return
        answer = ANSWER_PREFIX + (turn.first_line or "(empty prompt)")
        stream = turn.stream_for()
        pieces = pieces_of(answer, STREAM_CHUNKS) if slow or stream is not None else [answer]
        self._stream(message_events(model, pieces, None), slow if stream is None else stream / len(pieces))

    def _drain(self) -> bytes:
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _error(self, behaviour: Behaviour) -> None:
        status, kind, message = ERRORS[behaviour.kind]
        headers = dict(behaviour.headers)
        if behaviour.kind == "subscriber_limit":
            headers.setdefault("anthropic-ratelimit-unified-status", "rejected")
            if behaviour.claim is not None:
                headers.setdefault("anthropic-ratelimit-unified-representative-claim", behaviour.claim)
            reset = int(time.time() + behaviour.reset_in)
            headers.setdefault("anthropic-ratelimit-unified-reset", str(reset))
        if behaviour.retry_after is not None:
            headers.setdefault("retry-after", f"{behaviour.retry_after:g}")
        body = json.dumps({"type": "error", "error": {"type": kind, "message": message}}).encode()
        self._plain(status, body, headers)

    def _stream(self, events: Iterator[bytes], delay: float) -> None:
        """Send the events as server-sent events, `delay` seconds before each text or tool delta."""
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("request-id", f"req_{uuid.uuid4().hex[:24]}")
        # No length is known in advance: the end of the stream is the end of the connection.
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True
        try:
            for event in events:
                if delay and event.startswith(b"event: content_block_delta"):
                    time.sleep(delay)
                self.wfile.write(event)
                self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            pass  # the CLI went away mid-answer (interrupted, or killed by a swap)
