"""The terminal: raw mode with bracketed paste, and Ink-style output (static lines, a redrawn bottom)."""

from __future__ import annotations

import os
from types import TracebackType

from engine.sim.render import cell_width

ENTER_MODES = "\x1b[?2004h\x1b[?25l"  # bracketed paste on, cursor hidden (the box draws its own prompt)
LEAVE_MODES = "\x1b[?2004l\x1b[?25h"
CLEAR_ALL = "\x1b[H\x1b[2J\x1b[3J"


class Terminal:
    """Raw mode on stdin for the life of the `with` block; the previous settings come back on exit."""

    def __init__(self, fd_in: int = 0, fd_out: int = 1) -> None:
        self.fd_in = fd_in
        self.fd_out = fd_out
        self._saved: list[int | list[bytes | int]] | None = None

    def __enter__(self) -> Terminal:
        if os.isatty(self.fd_in):
            import termios
            import tty

            self._saved = termios.tcgetattr(self.fd_in)
            tty.setraw(self.fd_in)
        self.write(ENTER_MODES)
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.write("\r\n" + LEAVE_MODES)
        if self._saved is not None:
            import termios

            termios.tcsetattr(self.fd_in, termios.TCSADRAIN, self._saved)

    def size(self) -> tuple[int, int]:
        try:
            size = os.get_terminal_size(self.fd_out)
        except OSError:
            return 80, 24
        return max(size.columns, 20), max(size.lines, 8)

    def write(self, text: str) -> None:
        data = text.encode()
        while data:
            try:
                written = os.write(self.fd_out, data)
            except BlockingIOError:
                continue
            except OSError:
                return  # the terminal is gone (pane closed): nothing left to draw on
            data = data[written:]


class Display:
    """Prints static lines above a dynamic bottom region that is redrawn in place.

    Like Ink: nothing is cleared but the previous bottom region — the cursor goes back up over it,
    the screen below is erased, new static lines are printed (they scroll into the history), and the
    region is drawn again. The cursor stays at the end of the region between frames.
    """

    def __init__(self, terminal: Terminal) -> None:
        self._terminal = terminal
        self.width, self.height = terminal.size()
        self._static: list[str] = []
        self._region: list[str] = []
        self._stale = True

    def print(self, lines: list[str]) -> None:
        self._static.extend(lines)

    def resize(self) -> None:
        self.width, self.height = self._terminal.size()
        self._stale = True

    def clear(self) -> None:
        """Empty the screen and its history, as `/clear` does; static lines not yet shown go too."""
        self._terminal.write(CLEAR_ALL)
        self._static = []
        self._region = []
        self._stale = True

    def show(self, region: list[str]) -> None:
        if not self._static and region == self._region and not self._stale:
            return
        parts = [self._erase()]
        parts.extend(line + "\r\n" for line in self._static)
        parts.append("\r\n".join(region))
        self._terminal.write("".join(parts))
        self._static = []
        self._region = region
        self._stale = False

    def _erase(self) -> str:
        # Rows under the current width: after a resize the terminal has re-wrapped the old region.
        rows = sum(max(1, -(-cell_width(line) // self.width)) for line in self._region)
        if rows == 0:
            return ""
        return "\r" + (f"\x1b[{rows - 1}A" if rows > 1 else "") + "\x1b[J"
