"""Control characters in text bound for a terminal: typed or pasted, they act as keys (Ctrl-U, Enter);
printed, they and the bidi and invisible characters can make a line read as something it is not."""

from __future__ import annotations

import re

# C0 (with Tab, LF and CR), DEL and C1.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
# The same in multi-line text, where tabs and line ends (LF, or CR LF) are the text's own.
_CONTROL_IN_TEXT = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]|\r(?!\n)")
# What `visible` escapes besides those: format characters (bidi overrides and isolates, zero-width
# characters, tags), line and paragraph separators, lone surrogates (undecodable names), and the Hangul
# fillers that draw as nothing. A name holding them can look like another name, or reorder the line.
_HIDDEN = (
    "\u00ad\u0600-\u0605\u061c\u06dd\u070f\u0890\u0891\u08e2\u115f\u1160\u180e\u200b-\u200f"
    "\u2028-\u202e\u2060-\u206f\u3164\ud800-\udfff\ufeff\uffa0\ufff9-\ufffb\U000110bd\U000110cd"
    "\U00013430-\U0001343f\U0001bca0-\U0001bca3\U0001d173-\U0001d17a\U000e0001\U000e0020-\U000e007f"
)
_UNSEEN = re.compile(f"[\\x00-\\x1f\\x7f-\\x9f{_HIDDEN}]")
_UNSEEN_IN_TEXT = re.compile(f"[\\x00-\\x09\\x0b-\\x1f\\x7f-\\x9f{_HIDDEN}]")
_NAMES = {"\t": "Tab", "\n": "line feed", "\r": "carriage return (Enter)", "\x1b": "Esc", "\x7f": "DEL"}


def control_in(text: str, multiline: bool = False) -> re.Match[str] | None:
    """The first control character in `text`; with `multiline`, tabs and line ends are allowed."""
    return (_CONTROL_IN_TEXT if multiline else _CONTROL).search(text)


def describe_control(char: str) -> str:
    """`U+0015 (Ctrl-U)`: how an error names a control character."""
    code = ord(char)
    name = _NAMES.get(char) or (f"Ctrl-{chr(code + 64)}" if code < 0x20 else None)
    return f"U+{code:04X}" + (f" ({name})" if name else "")


def visible(text: object, multiline: bool = False) -> str:
    """`text` with its control, bidi and invisible characters written as escapes (`\\x1b`, `\\u202e`), safe
    to print on one log line; with `multiline`, line feeds are kept (a traceback)."""
    return (_UNSEEN_IN_TEXT if multiline else _UNSEEN).sub(_escape, str(text))


def _escape(match: re.Match[str]) -> str:
    code = ord(match[0])
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"
