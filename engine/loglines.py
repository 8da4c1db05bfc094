"""Log lines an operator reads: secrets redacted, control and bidi characters escaped."""

from __future__ import annotations

import logging

from engine.redact import readable, redact
from engine.safetext import visible


class LogLines(logging.Filter):
    """Put one on every handler a person reads: it rewrites each record's message into its safe form."""

    def filter(self, record: logging.LogRecord) -> bool:
        line = readable(record.getMessage())
        if record.exc_info and not record.exc_text:
            # Formatted here so that the traceback's own text (an exception's message) is cleaned too.
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = visible(redact(record.exc_text), multiline=True)
        if record.stack_info:
            record.stack_info = visible(redact(record.stack_info), multiline=True)
        record.msg, record.args = line, None
        return True


def guard(*handlers: logging.Handler) -> None:
    """Put one shared `LogLines` on `handlers`."""
    lines = LogLines()
    for handler in handlers:
        handler.addFilter(lines)
