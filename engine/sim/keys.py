"""Raw terminal input decoded into keys: typed text, bracketed pastes, Enter, Esc and control keys."""

from __future__ import annotations

import codecs

PASTE_START = "\x1b[200~"
PASTE_END = "\x1b[201~"
# CSI and SS3 sequences the simulator reacts to; any other complete sequence is dropped.
SEQUENCES = {
    "\x1b[A": "up",
    "\x1b[B": "down",
    "\x1bOA": "up",
    "\x1bOB": "down",
    "\x1b[Z": "shift_tab",
}
CONTROLS = {
    "\r": "enter",
    "\n": "newline",  # Ctrl-J inserts a line break; only CR submits
    "\x7f": "backspace",
    "\x08": "backspace",
    "\x03": "ctrl_c",
    "\x04": "ctrl_d",
    "\x15": "ctrl_u",
}


class Key:
    """One decoded key; `text` holds the characters of a `text` or `paste` key."""

    __slots__ = ("name", "text")

    def __init__(self, name: str, text: str = "") -> None:
        self.name = name
        self.text = text

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Key) and (self.name, self.text) == (other.name, other.text)

    def __hash__(self) -> int:
        return hash((self.name, self.text))

    def __repr__(self) -> str:
        return f"Key({self.name!r}, {self.text!r})" if self.text else f"Key({self.name!r})"


def _sequence_length(rest: str) -> int:
    """Length of the escape sequence opening `rest`: 0 if it is still incomplete, -1 if it is none."""
    if len(rest) < 2:
        return 0
    if rest[1] == "O":
        return 3 if len(rest) >= 3 else 0
    if rest[1] != "[":
        return -1
    for i in range(2, len(rest)):
        if "\x40" <= rest[i] <= "\x7e":
            return i + 1
    return 0


def _partial_suffix(text: str, marker: str) -> int:
    """How many trailing characters of `text` could be the start of `marker`."""
    for n in range(min(len(marker) - 1, len(text)), 0, -1):
        if marker.startswith(text[-n:]):
            return n
    return 0


class KeyDecoder:
    """Turns bytes read from the terminal into keys; keeps an incomplete sequence for the next read."""

    def __init__(self) -> None:
        self._utf8 = codecs.getincrementaldecoder("utf-8")("replace")
        self._buf = ""
        self._paste: list[str] | None = None

    @property
    def pending_escape(self) -> bool:
        """A lone ESC (or the start of a sequence) waits: Esc if nothing follows soon."""
        return self._paste is None and self._buf.startswith("\x1b")

    def feed(self, data: bytes) -> list[Key]:
        self._buf += self._utf8.decode(data)
        return self._parse(final=False)

    def flush(self) -> list[Key]:
        """Settle a waiting ESC as the Esc key: no sequence followed it in time."""
        return self._parse(final=True)

    def _parse(self, final: bool) -> list[Key]:
        keys: list[Key] = []
        text: list[str] = []

        def flush_text() -> None:
            if text:
                keys.append(Key("text", "".join(text)))
                text.clear()

        def emit(key: Key) -> None:
            flush_text()
            keys.append(key)

        buf, i = self._buf, 0
        while i < len(buf):
            if self._paste is not None:
                end = buf.find(PASTE_END, i)
                if end < 0:
                    keep = _partial_suffix(buf[i:], PASTE_END)
                    self._paste.append(buf[i : len(buf) - keep])
                    i = len(buf) - keep
                    break
                self._paste.append(buf[i:end])
                emit(Key("paste", "".join(self._paste)))
                self._paste = None
                i = end + len(PASTE_END)
                continue
            ch = buf[i]
            if ch == "\x1b":
                rest = buf[i:]
                if rest.startswith(PASTE_START):
                    flush_text()
                    self._paste = []
                    i += len(PASTE_START)
                    continue
                length = _sequence_length(rest)
                if length == 0 and not final:
                    break
                if length > 0:
                    name = SEQUENCES.get(rest[:length])
                    if name:
                        emit(Key(name))
                    i += length
                    continue
                emit(Key("esc"))
                i += 1
                continue
            name = CONTROLS.get(ch)
            if name:
                emit(Key(name))
            elif ch >= " ":
                text.append(ch)
            i += 1
        flush_text()
        self._buf = buf[i:]
        return keys
