"""The text the simulated agent draws: banner, echoes, answers, error lines, spinner, box, footer, menu."""

from __future__ import annotations

import math
from unicodedata import east_asian_width

VERSION = "2.0.0"
FRAMES = "·✢✳✶✻✽✻✶✳✢"  # forward then back, as the real spinner breathes
VERBS = ("Thinking", "Pondering", "Cogitating", "Brewing", "Noodling", "Percolating", "Musing", "Simmering")
DONE_VERBS = ("Worked", "Cooked", "Crunched", "Brewed", "Churned", "Baked")
COMPACTING = "Compacting conversation"
FOOTERS = {
    "bypass": "⏵⏵ bypass permissions on (shift+tab to cycle)",
    "default": "? for shortcuts",
    "accept": "⏵⏵ accept edits on (shift+tab to cycle)",
    "plan": "⏸ plan mode on (shift+tab to cycle)",
}
MENU_TITLE = "What do you want to do?"
MENU_OPTIONS = ("Stop and wait for limit to reset", "Upgrade your plan")
MENU_HINT = "Enter to confirm · Esc to cancel"
MENU_COMMAND = "/rate-limit-options"
PLACEHOLDERS = ('Try "refactor <filepath>"', 'Try "write a test for <filepath>"', 'Try "fix lint errors"')
# The real agent puts a no-break space after the ⎿ of its result lines and after the ❯ of its box.
ERROR, ERROR_INDENT = "  ⎿ \u00a0", "     "
BOX = "❯\u00a0"
API_ERROR_PREFIX = "API Error"
SERVER_SIDE = "This is a server-side issue, usually temporary — try again in a moment."


class Failure:
    """A request that fails: its record's status and `error`, what the retry line calls it on the last
    attempt (`API error` before that), its final text."""

    __slots__ = ("error", "label", "status", "text")

    def __init__(self, status: int, error: str, label: str, text: str) -> None:
        self.status = status
        self.error = error
        self.label = label
        self.text = text


RATE_LIMIT = "This request would exceed your account's rate limit. Please try again later."
RETRY_LABEL = "API error"
# As version 2.1 words them; its transcript calls 500 and 529 alike a server error.
API_FAILURES = {
    "529": Failure(529, "server_error", "529 Overloaded", f"API Error: 529 Overloaded. {SERVER_SIDE}"),
    "500": Failure(
        500,
        "server_error",
        "500 Internal server error",
        f"API Error: 500 Internal server error. {SERVER_SIDE}",
    ),
    "429": Failure(
        429, "rate_limit", f"429 {RATE_LIMIT}", f"API Error: Request rejected (429) · {RATE_LIMIT}"
    ),
    "throttle": Failure(
        429,
        "rate_limit",
        "429 Rate limited",
        "API Error: Server is temporarily limiting requests (not your usage limit) · Rate limited",
    ),
}


def cell_width(text: str) -> int:
    if text.isascii():
        return len(text)
    return sum(2 if east_asian_width(ch) in "WF" else 1 for ch in text)


def _fit(text: str, width: int) -> int:
    """How many leading characters of `text` fit in `width` cells (at least one)."""
    used = 0
    for i, ch in enumerate(text):
        used += cell_width(ch)
        if used > width:
            return max(i, 1)
    return len(text)


def wrap(line: str, width: int) -> list[str]:
    """One line cut into rows of at most `width` cells, at spaces where possible (as Ink wraps)."""
    width = max(width, 1)
    rows: list[str] = []
    while cell_width(line) > width:
        cut = _fit(line, width)
        space = line.rfind(" ", 0, cut + 1)
        if space > 0:
            rows.append(line[:space].rstrip())
            line = line[space + 1 :]
        else:
            rows.append(line[:cut])
            line = line[cut:]
    rows.append(line)
    return rows


def block(prefix: str, text: str, width: int, indent: str) -> list[str]:
    """`text` wrapped under a hanging `prefix`: the first row starts with it, the others with `indent`."""
    rows: list[str] = []
    for line in text.split("\n"):
        rows.extend(wrap(line, width - cell_width(prefix)))
    return [(prefix if i == 0 else indent) + row for i, row in enumerate(rows)]


def duration(seconds: float) -> str:
    """`42s`, `1m 42s`, `2h 3m 4s`."""
    total = int(seconds)
    if total < 60:
        return f"{total}s"
    minutes, secs = divmod(total, 60)
    if minutes < 60:
        return f"{minutes}m {secs}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes}m {secs}s"


def tokens(count: int) -> str:
    return str(count) if count < 1000 else f"{count / 1000:.1f}k"


def rule(width: int) -> str:
    return "─" * max(width, 1)


def banner(cwd: str, model: str, width: int) -> list[str]:
    """The rounded welcome box printed once at start."""
    inner = max(min(width - 2, max(51, len(cwd) + 12)), 20)

    def row(text: str) -> str:
        if cell_width(text) > inner:
            text = text[: inner - 1] + "…"
        return "│" + text + " " * (inner - cell_width(text)) + "│"

    return [
        "╭" + "─" * inner + "╮",
        row(" ✻ Welcome to Claude Code!"),
        row(""),
        row("   /help for help, /status for your current setup"),
        row(""),
        row(f"   cwd: {cwd}"),
        row(f"   model: {model}"),
        "╰" + "─" * inner + "╯",
    ]


def echo(text: str, width: int, mark: str) -> list[str]:
    """A submitted prompt above the box, every line of it."""
    return block(mark, text.strip("\n"), width, "  ")


def answer(text: str, width: int, glyph: str = "⏺") -> list[str]:
    return block(glyph + " ", text, width, "  ")


def error(text: str, width: int) -> list[str]:
    """An error line hanging under the answer above it: `  ⎿  <text>`."""
    return block(ERROR, text, width, ERROR_INDENT)


def stop(text: str, width: int, glyph: str) -> list[str]:
    """The agent's own message that ended a turn: a failed request in the answer's place (`● API Error:
    …`, after a blank line), a limit or login message as an error line right under what is above it."""
    return ["", *answer(text, width, glyph)] if text.startswith(API_ERROR_PREFIX) else error(text, width)


def spinner(elapsed: float, verb: str, token_count: int | None, esc_hint: bool, arrow: str = "↑") -> str:
    """`✻ Thinking… (3s · ↑ 120 tokens · esc to interrupt)`; the glyph turns five times a second."""
    glyph = FRAMES[int(elapsed * 5) % len(FRAMES)]
    parts = [duration(elapsed)]
    if token_count is not None:
        parts.append(f"{arrow} {tokens(token_count)} tokens")
    if esc_hint:
        parts.append("esc to interrupt")
    return f"{glyph} {verb}… ({' · '.join(parts)})"


def retry(elapsed: float, failure: Failure, wait_left: float, attempt: int, attempts: int) -> str:
    """`✻ API error · Retrying in 1s · attempt 1/2`, `✻ 529 Overloaded · Retrying in 1s · attempt 2/2`: the
    spinner while a failed request waits to be sent again, naming the error on the last attempt; no
    ellipsis, no timer."""
    glyph = FRAMES[int(elapsed * 5) % len(FRAMES)]
    label = failure.label if attempt == attempts else RETRY_LABEL
    return f"{glyph} {label} · Retrying in {math.ceil(wait_left)}s · attempt {attempt}/{attempts}"


def turn_end(verb: str, elapsed: float) -> str:
    return f"✻ {verb} for {duration(elapsed)}"


def compacted(width: int) -> str:
    text = " Conversation compacted · ctrl+o for history "
    side = max((width - cell_width(text)) // 2, 2)
    return "═" * side + text + "═" * side


def box(text: str, width: int, max_rows: int) -> list[str]:
    """The input box: a rule, `❯` and the text (wrapped, newest rows kept), a rule.

    `text` may be a placeholder: capture-pane text loses its grey, so it reads like typed text.
    """
    rows = block(BOX, text, width - 1, "  ")
    return [rule(width), *rows[-max(max_rows, 1) :], rule(width)]


def queued(text: str, width: int) -> str:
    """One message waiting under the box for the turn to end."""
    first = text.strip("\n").split("\n", 1)[0]
    return wrap("  > " + first, width - 1)[0]


def footer(text: str) -> str:
    return "  " + text


def menu(selected: int, width: int) -> list[str]:
    """The limit menu that takes the place of the box and footer; its `❯` marks an option, not a prompt."""
    options = [
        ("  ❯ " if i == selected else "    ") + f"{i + 1}. {label}" for i, label in enumerate(MENU_OPTIONS)
    ]
    return [rule(width), "  " + MENU_TITLE, "", *options, "", "  " + MENU_HINT]


def status(session_id: str, cwd: str, model: str, account: str, mode: str, width: int) -> list[str]:
    """What `/status` prints under its echo."""
    text = "\n".join(
        [
            f"Claude Code v{VERSION}",
            f"Session ID: {session_id}",
            f"cwd: {cwd}",
            f"Model: {model}",
            f"Account: {account} (CLAUDE_CONFIG_DIR)",
            f"Permission mode: {mode}",
        ]
    )
    return error(text, width)
