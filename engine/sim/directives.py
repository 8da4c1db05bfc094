"""The `sim:` lines of a task, parsed into the steps the simulated agent runs in order."""

from __future__ import annotations

import math

# Steps that take time and show the spinner; the others happen at once, but for a failing request
# (`error`), which takes time showing its retry line instead (it is no work: see `Directive.timed`).
TIMED = frozenset({"work", "compact", "hang"})
# Steps that end the turn (or, for a recovered error, hold it up) before any answer is shown.
STOPS = frozenset({"quota", "exhaust", "error", "auth"})
DEFAULT_LIMIT_MESSAGE = "You've hit your limit · resets 3am"
SESSION_WINDOW = 5 * 3600.0  # how long a subscriber's session limit lasts at most
# `error` failures the simulator knows (keys of render.API_FAILURES); any other status is a 500.
ERROR_STATUSES = ("429", "500", "529")


class Directive:
    """One step: `kind` plus its argument; `source` is the line it came from, kept for --resume."""

    __slots__ = ("kind", "path", "recovered", "seconds", "source", "text")

    def __init__(
        self,
        kind: str,
        source: str,
        seconds: float = 0.0,
        text: str = "",
        path: str = "",
        recovered: bool = False,
    ) -> None:
        self.kind = kind
        self.source = source
        self.seconds = seconds
        self.text = text
        self.path = path
        self.recovered = recovered

    @property
    def timed(self) -> bool:
        """Work that takes time: a turn without any is given some, a failing request's retries aside."""
        return self.kind in TIMED

    def __repr__(self) -> str:
        return f"Directive({self.source!r})"


def parse_duration(text: str) -> float | None:
    """Seconds in `500ms`, `3s`, `2m`, `1h` or a bare number of seconds; None if unreadable."""
    text = text.strip()
    number, scale = text, 1.0
    for suffix, factor in (("ms", 0.001), ("s", 1.0), ("m", 60.0), ("h", 3600.0)):
        if text.endswith(suffix):
            number, scale = text[: -len(suffix)], factor
            break
    try:
        value = float(number) * scale
    except ValueError:
        return None
    return value if math.isfinite(value) and value >= 0 else None


def unquote(text: str) -> str:
    """`"a \\"b\\""` -> `a "b"`; text without surrounding double quotes is taken as it is."""
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] == '"':
        import json

        try:
            value = json.loads(text)
        except ValueError:
            return text[1:-1]
        return value if isinstance(value, str) else text[1:-1]
    return text


def _split_path(rest: str) -> tuple[str, str]:
    """`PATH TEXT` where PATH may be double-quoted to hold spaces."""
    rest = rest.strip()
    if rest.startswith('"'):
        end = rest.find('"', 1)
        if end > 0:
            return rest[1:end], rest[end + 1 :]
    path, _, text = rest.partition(" ")
    return path, text


def parse_line(line: str) -> Directive | None:
    """The directive on `line`, or None when it is not a `sim:` line or not one the simulator knows."""
    source = line.strip()
    if not source.startswith("sim:"):
        return None
    verb, _, rest = source[4:].strip().partition(" ")
    verb, rest = verb.lower(), rest.strip()
    if verb in ("work", "compact"):
        seconds = parse_duration(rest) if rest else 1.0
        return Directive(verb, source, seconds=seconds) if seconds is not None else None
    if verb == "hang":
        return Directive("hang", source, seconds=math.inf)
    if verb == "say":
        return Directive("say", source, text=unquote(rest))
    if verb == "quota":
        return Directive("quota", source, text=unquote(rest) or DEFAULT_LIMIT_MESSAGE)
    if verb == "exhaust":
        return _exhaust(rest, source)
    if verb in ("error", "throttle"):
        return _failure(verb, rest, source)
    if verb in ("auth", "crash"):
        return Directive(verb, source)
    if verb == "append":
        path, text = _split_path(rest)
        return Directive("append", source, path=path, text=unquote(text)) if path else None
    return None


def _exhaust(rest: str, source: str) -> Directive | None:
    """`exhaust [DURATION] ["MSG"]`: `seconds` until the account's limit resets (a session window,
    5 hours, by default), `text` the message (empty: the account-limit default)."""
    after, message = ("", rest) if rest.startswith('"') else rest.partition(" ")[::2]
    seconds = parse_duration(after) if after else SESSION_WINDOW
    return (
        Directive("exhaust", source, seconds=seconds, text=unquote(message)) if seconds is not None else None
    )


def _failure(verb: str, rest: str, source: str) -> Directive:
    """`error [429|500|529] [recovered]` or `throttle [recovered]`: `text` names the failure."""
    words = rest.lower().split()
    if verb == "throttle":
        failure = "throttle"
    else:
        failure = words[0] if words and words[0] in ERROR_STATUSES else "500"
    return Directive("error", source, text=failure, recovered="recovered" in words)


def parse_task(text: str) -> list[Directive]:
    """Every directive in `text`, in order; other lines are the task's prose."""
    found = (parse_line(line) for line in text.splitlines())
    return [d for d in found if d is not None]
