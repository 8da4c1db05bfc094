"""Log lines an operator reads: secrets redacted, control and bidi characters escaped, repeats summarised."""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from engine.redact import readable, redact
from engine.safetext import visible

REPEAT_EVERY = 60.0
"""A warning or error repeated word for word is shown again at most this often (seconds), with a count."""
REMEMBERED = 1000
"""Distinct warnings and errors remembered for that; the least recently seen is forgotten first."""
_VERDICT = "cfo_line"
"""The record attribute holding the filter's verdict, so that every handler it is on agrees."""


@dataclass
class _Seen:
    shown_at: float
    since: int = 0
    """Times it came again since it was last shown."""


class LogLines(logging.Filter):
    """Put one instance on every handler a person reads. It rewrites each record's message into its safe
    form, and drops a warning or error that was shown less than `every` seconds ago; the next one shown
    after that says how many times it came meanwhile (`… (again 12 times in the last 61 s)`)."""

    def __init__(
        self,
        every: float = REPEAT_EVERY,
        remembered: int = REMEMBERED,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        self.every = every
        self.remembered = remembered
        self._clock = clock
        self._lock = threading.Lock()
        self._seen: OrderedDict[tuple[str, int, str], _Seen] = OrderedDict()

    def filter(self, record: logging.LogRecord) -> bool:
        verdict = getattr(record, _VERDICT, None)
        if verdict is None:
            verdict = self._judge(record)
            setattr(record, _VERDICT, verdict)
        return bool(verdict)

    def _judge(self, record: logging.LogRecord) -> bool:
        line = readable(record.getMessage())
        if record.exc_info and not record.exc_text:
            # Formatted here so that the traceback's own text (an exception's message) is cleaned too.
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = visible(redact(record.exc_text), multiline=True)
        if record.stack_info:
            record.stack_info = visible(redact(record.stack_info), multiline=True)
        record.msg, record.args = line, None
        if record.levelno < logging.WARNING:
            return True
        key = (record.name, record.levelno, line)
        now = self._clock()
        with self._lock:
            seen = self._seen.get(key)
            if seen is None:
                self._seen[key] = _Seen(now)
                if len(self._seen) > self.remembered:
                    self._seen.popitem(last=False)
                return True
            self._seen.move_to_end(key)
            seen.since += 1
            if now - seen.shown_at < self.every:
                return False
            times = f"{seen.since:,} time" + ("s" if seen.since > 1 else "")
            record.msg = f"{line} (again {times} in the last {now - seen.shown_at:.0f} s)"
            seen.shown_at, seen.since = now, 0
        return True


def guard(*handlers: logging.Handler) -> None:
    """Put one shared `LogLines` on `handlers`: what one of them drops as a repeat, all drop."""
    lines = LogLines()
    for handler in handlers:
        handler.addFilter(lines)
