"""Driving the real Claude Code CLI by hand: find it, start it in a tmux session, type, wait for a screen."""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from engine.launch import PASTE_SETTLE, command_line
from engine.tmux import LibtmuxClient, find_tmux
from tests.helpers import wait_until
from tests.realcli.homes import VERSION, Account

# Read at import, before a test's tmux fixture points HOME at a temporary folder; scripts/install-realcli.sh
# installs here unless CFO_REALCLI_CACHE says otherwise.
DEFAULT_CACHE = Path.home() / ".cache" / "cfo" / f"claude-code-{VERSION}"
ARGS = ("--dangerously-skip-permissions",)
MODEL = "sonnet"
IDLE_BOX = "❯\xa0"  # the empty input box: the prompt glyph and a no-break space
START_TIMEOUT = 30.0


def claude_path() -> Path:
    """`$CFO_REAL_CLAUDE`, else the CLI in the install script's cache."""
    explicit = os.environ.get("CFO_REAL_CLAUDE")
    if explicit:
        return Path(explicit)
    cache = Path(os.environ.get("CFO_REALCLI_CACHE") or DEFAULT_CACHE)
    return cache / "node_modules" / ".bin" / "claude"


def at_prompt(text: str) -> bool:
    """The empty input box is on screen (idle or working: the box stays while the CLI works)."""
    return any(line.rstrip(" ") == IDLE_BOX for line in text.splitlines())


def spinning(text: str) -> bool:
    """A spinner is up: the footer offers `esc to interrupt` only while a turn runs."""
    return "esc to interrupt" in text


def transcript_dir(home: Path, project: Path) -> Path:
    """Where the CLI keeps the project's conversations: the real path with every character but ASCII
    letters and digits turned into `-` (past 200 characters it would also cut and add a hash)."""
    return home / "projects" / re.sub(r"[^a-zA-Z0-9]", "-", str(project.resolve()))


@dataclass
class Agent:
    """One real CLI in its own tmux session, started the way cfo starts it."""

    tmux: LibtmuxClient
    session: str
    project: Path
    account: Account

    def capture(self) -> str:
        """Exactly what `tmux capture-pane -p` prints: the visible screen, blank lines included."""
        base = [find_tmux(), *(["-L", self.tmux.socket_name] if self.tmux.socket_name else [])]
        result = subprocess.run(
            [*base, "capture-pane", "-p", "-t", f"={self.session}:"],
            capture_output=True,
            text=True,
            check=True,
        )
        return result.stdout

    def wait_for(self, predicate: Callable[[str], bool], timeout: float = 20.0, what: str = "") -> str:
        """Poll the screen until `predicate` holds for it; returns that screen."""
        found: list[str] = []

        def check() -> bool:
            text = self.capture()
            if predicate(text):
                found.append(text)
                return True
            return False

        try:
            wait_until(check, timeout=timeout, interval=0.1, what=what)
        except AssertionError as exc:
            raise AssertionError(f"{exc}; the screen:\n{self.capture()}") from None
        return found[0]

    def paste(self, text: str) -> None:
        self.tmux.send_text(self.session, text)

    def submit(self, text: str) -> None:
        """Paste `text` and press a lone Enter after the CLI's paste window, as cfo does."""
        self.paste(text)
        time.sleep(PASTE_SETTLE)
        self.tmux.send_enter(self.session)

    def type_line(self, line: str) -> None:
        self.tmux.type_line(self.session, line)

    def conversation(self) -> Path | None:
        """The project's most recently written conversation file, if any."""
        folder = transcript_dir(self.account.home, self.project)
        files = sorted(folder.glob("*.jsonl"), key=lambda p: p.stat().st_mtime) if folder.is_dir() else []
        return files[-1] if files else None

    def records(self) -> list[dict[str, object]]:
        path = self.conversation()
        if path is None:
            return []
        return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def start_agent(
    tmux: LibtmuxClient,
    session: str,
    project: Path,
    account: Account,
    claude: Path,
    resume: str | None = None,
    size: tuple[int, int] = (120, 40),
    wait: bool = True,
) -> Agent:
    """A shell session in `project` in which the CLI is started by the line cfo would type."""
    tmux.new_session(session, project, command=["/bin/sh"], width=size[0], height=size[1])
    agent = Agent(tmux, session, project, account)
    # Typed before the shell has drawn its prompt, the line's echo and the CLI's banner share lines.
    agent.wait_for(lambda text: bool(text.strip()), what=f"{session}: the shell's prompt")
    agent.type_line(command_line(project, account.home, str(claude), ARGS, MODEL, resume))
    if wait:
        agent.wait_for(at_prompt, timeout=START_TIMEOUT, what=f"{session}: the CLI's prompt")
    return agent
