"""Starting an agent in a pool session and handing it a task: command line, message, paste and confirm."""

from __future__ import annotations

import asyncio
import logging
import os
import re
import shlex
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from engine import screen
from engine.batch import PaneReader
from engine.patterns import Patterns
from engine.safetext import control_in, describe_control, visible
from engine.tmux import TmuxClient

log = logging.getLogger(__name__)

# Shells whose current-command name means "no agent is running in this pane".
SHELLS = frozenset({"sh", "bash", "zsh", "dash", "ksh", "mksh", "fish", "tcsh", "csh", "login"})
POSIX_SHELLS = frozenset({"sh", "bash", "zsh", "dash", "ksh", "mksh"})
# The agent swallows an Enter that arrives within ~100 ms of a paste; wait well past that.
PASTE_SETTLE = 0.3
SUBMIT_ATTEMPTS = 3
SUBMIT_CONFIRM = 2.0
EXIT_GRACE = 0.3  # a shell prompt this long after the line was typed is not the one it was typed at
EXIT_LINES = 3  # how much of what an agent printed as it exited goes into the launch failure
_PROMPT_PREFIX = re.compile(r"^[\w.@:~/+-]*[$#%] ")  # the shell's prompt before the line typed at it
EMPTY_BODY = "Work on the task described by the file name."
CONTINUE = "continue"  # what a resumed conversation is told
_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


class LaunchError(RuntimeError):
    """The agent did not start or did not take the task; the message says which step failed."""


def pool_shell() -> list[str]:
    """The shell a pool session runs: the user's if it is POSIX (our quoting is POSIX), else /bin/sh."""
    shell = os.environ.get("SHELL", "/bin/sh")
    return [shell] if Path(shell).name in POSIX_SHELLS else ["/bin/sh"]


def agent_running(current_command: str) -> bool:
    return bool(current_command) and current_command not in SHELLS


def task_marker(filename: str) -> str:
    """`[<id>.md]`: the message starts with it (config checks the template), so an echoed prompt or a
    transcript's first prompt tells which session holds which task."""
    return f"[{filename}]"


def render_message(template: str, filename: str, body: str) -> str:
    """The text pasted to the agent: `template` filled in as config validates it (`str.format`, `{{ }}`
    for braces); the values are never read as a template."""
    text = body.strip().replace("\r\n", "\n") or EMPTY_BODY
    return template.format(file=filename, body=text)


def valid_resume_id(value: str) -> bool:
    return bool(_UUID.match(value.strip()))


def command_line(
    project_dir: Path,
    account_home: Path,
    command: str,
    args: tuple[str, ...] | list[str],
    model: str,
    resume_id: str | None = None,
    prompt: str | None = None,
) -> str:
    """The line typed into the session's shell; every part from config or a path is quoted. `prompt`, a
    fixed word of ours (never task text), is the agent's first message, submitted by the agent itself.

    Quoting does not protect a control character: the shell's line editor acts on it as a key press
    (Ctrl-U erases the line typed so far, CR runs it) before any quote is read. Raises LaunchError
    naming the part that holds one, so nothing is typed.
    """
    argv = [command, *args, "--model", model]
    if resume_id:
        argv += ["--resume", resume_id]
    if prompt:
        argv.append(prompt)
    parts = [("project path", str(project_dir)), ("account home", str(account_home))]
    parts += [("agent command line", part) for part in argv]
    for what, value in parts:
        bad = control_in(value)
        if bad is not None:
            raise LaunchError(
                f"refusing to type into a shell: the {what} '{visible(value)}' holds the control "
                f"character {describe_control(bad[0])}"
            )
    return (
        f"cd -- {shlex.quote(str(project_dir))} && "
        f"CLAUDE_CONFIG_DIR={shlex.quote(str(account_home))} {shlex.join(argv)}"
    )


@dataclass
class Launch:
    """One launch: where, what to type, what to paste."""

    session: str
    line: str
    message: str
    marker: str
    prompt_timeout: float
    in_line: bool = False
    """The message is on the command line (a resume's `continue`): no paste, no Enter to be swallowed."""
    # Wall-clock stamps of each step, for the submitted event and the pipeline benchmark.
    typed_at: float = 0.0
    ready_at: float = 0.0
    pasted_at: float = 0.0


async def wait_for_prompt(
    reader: PaneReader, session: str, timeout: float, patterns: Patterns, typed: str = ""
) -> str:
    """Poll until the agent shows an idle prompt; raise LaunchError after `timeout` seconds, or as soon as
    the shell is back at its prompt without an agent (not found, refused, crashed), with what it printed."""
    return await _wait_until(
        reader,
        session,
        timeout,
        patterns,
        typed,
        lambda text: screen.read_state(text, patterns) == "idle",
        "reach its prompt",
    )


async def _wait_until(
    reader: PaneReader,
    session: str,
    timeout: float,
    patterns: Patterns,
    typed: str,
    ready: Callable[[str], bool],
    what: str,
) -> str:
    started = time.monotonic()
    deadline = started + timeout
    while True:
        text = await reader.capture(session)
        command = await reader.command(session)
        running = agent_running(command)
        if running and ready(text):
            return text
        if not running and time.monotonic() - started >= EXIT_GRACE:
            said = screen.shell_returned(text, patterns)
            if said is not None:
                rows = [_PROMPT_PREFIX.sub("", row.strip()) for row in said]
                last = [row for row in rows if row and row not in typed][-EXIT_LINES:]
                what = " / ".join(visible(row) for row in last) or "nothing"
                raise LaunchError(f"{session}: the agent exited at once; it printed: {what}")
        if time.monotonic() > deadline:
            raise LaunchError(f"{session}: the agent did not {what} within {timeout:g}s ({command})")
        await asyncio.sleep(0.1)


def echoed(text: str, marker: str, patterns: Patterns) -> bool:
    """The agent echoed a prompt carrying `marker` above its box: that message was submitted.

    The echo's prefix is the `prompt_echo` pattern (`> `, or `❯ ` in newer versions); only lines above
    the box count, since in newer versions the box's own `❯ ` line holds the message before it is sent.
    """
    echo = patterns.rx("prompt_echo")
    return any(echo.match(line) and marker in line for line in screen.split_pane(text, patterns).above)


def submitted(text: str, marker: str, patterns: Patterns) -> bool:
    """The message left the box: it is echoed above it, or the agent is working on it."""
    if screen.paste_pending(text, patterns):
        return False
    return screen.read_state(text, patterns) == "working" or echoed(text, marker, patterns)


async def paste_and_submit(tmux: TmuxClient, reader: PaneReader, launch: Launch, patterns: Patterns) -> int:
    """Paste the message, press a lone Enter after the paste window, confirm; returns Enters sent."""
    await asyncio.to_thread(tmux.send_text, launch.session, launch.message)
    launch.pasted_at = time.time()
    for attempt in range(1, SUBMIT_ATTEMPTS + 1):
        await asyncio.sleep(PASTE_SETTLE)
        await asyncio.to_thread(tmux.send_enter, launch.session)
        deadline = time.monotonic() + SUBMIT_CONFIRM
        while time.monotonic() < deadline:
            text = await reader.capture(launch.session)
            if submitted(text, launch.marker, patterns):
                return attempt
            if not agent_running(await reader.command(launch.session)):
                # It died on the message (a crash, not a refused paste): the watcher counts the crash.
                return attempt
            await asyncio.sleep(0.1)
        log.info("%s: message not submitted after Enter #%d, pressing Enter again", launch.session, attempt)
    raise LaunchError(f"{launch.session}: the agent did not take the message after {SUBMIT_ATTEMPTS} Enters")


async def start_and_submit(tmux: TmuxClient, reader: PaneReader, launch: Launch, patterns: Patterns) -> int:
    """Start the agent and have it take its message; returns the Enters pressed (none when the message
    was on the command line)."""
    if not launch.in_line:
        await start_agent(tmux, reader, launch, patterns)
        return await paste_and_submit(tmux, reader, launch, patterns)
    await asyncio.to_thread(tmux.type_line, launch.session, launch.line, True)
    launch.typed_at = time.time()
    await _wait_until(
        reader,
        launch.session,
        launch.prompt_timeout,
        patterns,
        launch.line,
        lambda text: submitted(text, launch.marker, patterns),
        "take its message",
    )
    launch.ready_at = launch.pasted_at = time.time()
    return 0


async def start_agent(tmux: TmuxClient, reader: PaneReader, launch: Launch, patterns: Patterns) -> None:
    """Type the command line into the session's shell (the dispatcher saw a shell there just before)
    and wait for the agent's prompt."""
    # The last agent's box is still on screen after /exit: clear it so it cannot pass for the new prompt.
    await asyncio.to_thread(tmux.type_line, launch.session, launch.line, True)
    launch.typed_at = time.time()
    await wait_for_prompt(reader, launch.session, launch.prompt_timeout, patterns, launch.line)
    launch.ready_at = time.time()
