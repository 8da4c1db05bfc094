"""Control characters in text bound for a terminal: typed or pasted, they act as keys (Ctrl-U, Enter)."""

from __future__ import annotations

import re

# C0 (with Tab, LF and CR), DEL and C1.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
# The same in multi-line text, where tabs and line ends (LF, or CR LF) are the text's own.
_CONTROL_IN_TEXT = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]|\r(?!\n)")
_NAMES = {"\t": "Tab", "\n": "line feed", "\r": "carriage return (Enter)", "\x1b": "Esc", "\x7f": "DEL"}


def control_in(text: str, multiline: bool = False) -> re.Match[str] | None:
    """The first control character in `text`; with `multiline`, tabs and line ends are allowed."""
    return (_CONTROL_IN_TEXT if multiline else _CONTROL).search(text)


def describe_control(char: str) -> str:
    """`U+0015 (Ctrl-U)`: how an error names a control character."""
    code = ord(char)
    name = _NAMES.get(char) or (f"Ctrl-{chr(code + 64)}" if code < 0x20 else None)
    return f"U+{code:04X}" + (f" ({name})" if name else "")


def visible(text: object) -> str:
    """`text` with its control characters written as escapes, safe to print on one log line."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m[0]):02x}", str(text))
