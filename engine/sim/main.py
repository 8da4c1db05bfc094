"""`cfo-sim-claude`: a stand-in for the Claude Code TUI that reads the same in `tmux capture-pane` text.

It copies what version 2.1.197 shows (`../shared/real-claude/`): prompts echoed in full after `❯ `,
answers marked `●`, a box line of `❯` and a no-break space, `⎿` lines with a no-break space too. Where
the real agent's behaviour is not pinned down, the simulator does this:

- Answers: `● Working on: <first line>` when a turn starts and `● Done: <first line>` when it
  completes, then `✻ <Verb> for <time>`. A turn whose first step is a stop shows its error right
  under the prompt, with no answer, as a request that fails at once does.
- Every stop ends with a turn-end line, as in the real agent: a failed request (`error`, `throttle`)
  shows `● API Error: …` in the answer's place; a limit (`quota`) or login failure (`auth`) shows
  its message as a `⎿` line. Interrupts have no turn-end line.
- A failed request is first retried: for `CFO_SIM_RETRY_WAIT` (a duration, default 500ms) per
  attempt, the spinner reads `✻ API error · Retrying in 1s · attempt 1/2`, then names the error on
  the last attempt (`✻ 529 Overloaded · … · attempt 2/2`), then the error is shown. `recovered` makes
  the first retry succeed: the turn goes on.
- A turn without a timed step (`work`, `compact`, `hang`) works for `CFO_SIM_DEFAULT_WORK` (a
  duration, default 1s) after its other steps. Owed directives of an earlier task run before the
  new prompt's own. Unknown or malformed `sim:` lines are ignored.
- `sim-quota` is checked before every step and every 200 ms of a timed step (`hang` and retries
  included); the step it cuts short stays owed and is redone. `sim: exhaust` writes it for the whole
  account, with the time it lifts (`until <epoch>`, its last line): a message naming a clock time
  (`{reset}`, rendered `8:47pm (UTC)` as the real agent does) lifts on that whole minute, one naming
  `{epoch}` on that second.
- With `sim-limit-menu`, after a limit's turn-end line the agent runs `/rate-limit-options` itself
  (echoed like a prompt) and its menu replaces box and footer, the limit line still in view above.
  Up/Down move, Enter picks, Esc cancels, typed text is dropped. Option 1 adds "Waiting for the
  limit to reset."; option 2 prints an upgrade line; the box comes back either way.
- Esc (or Ctrl-C) in a turn prints `  ⎿  Interrupted · What should Claude do instead?` and records
  `[Request interrupted by user]`; as in the real agent, Stop hooks do not run for an interrupt.
- Messages submitted while busy wait under the box as `  > <first line>` and run one turn each,
  in order, after any kind of turn end (and once the limit menu is closed).
- The 100 ms Enter guard follows every bracketed paste; Ctrl-J and backslash-Enter insert a line
  break (only CR submits); Backspace removes a paste marker whole. Ctrl-C clears the box and
  interrupts; a second one within 1 s quits with status 0 (Ctrl-D likewise, from an empty box).
- A fresh conversation shows a suggestion (`Try "…"`) in its empty box until the first prompt.
  A clean exit prints `Resume this session with:` / `claude --resume <id>` once a transcript exists.
- Stop hooks are read once at start, like the real agent's snapshot of its settings, and run
  without waiting; their output is discarded. They run at every turn end but interrupts.
- Records carry `uuid`, `parentUuid` (the record before in the conversation) and `timestamp`; each
  turn end adds a `turn_duration` system record. `CFO_SIM_ERROR_FIRST=1` writes a stop met at once
  (a limit, a login failure) to the file before the prompt it answers, as the real agent sometimes
  does; `parentUuid` and timestamps keep the true order.
- Every record written during a turn carries `simPending`, the directive lines still owed (the one
  in progress included); `--resume` continues the latest value, keeps the session id and file, and
  shows the earlier conversation again, in `parentUuid` order and without turn-end lines (a prompt
  cut off before any answer shows with nothing under it). It looks only in the current directory's
  project folder.
- `--session-id UUID` starts a new conversation under that id, as the real flag does.
- Slash commands: `/status`, `/exit` and `/quit` (`  ⎿  Bye!`), `/clear` (new session, screen and
  owed directives cleared); any other prints `Unknown slash command: <name>`.
- `CFO_SIM_HEADSTART` (a duration) makes every turn report that much more time, in the spinner and
  the turn-end line, so screens past a minute can be produced without waiting a minute.
- `CFO_SIM_STYLE=old` copies older versions: prompts echoed with `> `, answers marked `⏺`, `↑`
  tokens and `esc to interrupt` in the spinner, and `Interrupted by user`. Shift+Tab cycles the
  permission modes' footers.
"""

from __future__ import annotations

import os
import sys
import time

from engine.sim.agent import Agent, Exit, Options
from engine.sim.directives import parse_duration
from engine.sim.hooks import HookRunner, load_stop_hooks
from engine.sim.keys import Key, KeyDecoder
from engine.sim.render import VERSION
from engine.sim.terminal import Display, Terminal
from engine.sim.transcript import History, is_uuid, load, new_uuid, project_dir

USAGE = """Usage: cfo-sim-claude [--model M] [--resume UUID | --session-id UUID] [PROMPT]
                      [--dangerously-skip-permissions] [--version]

A simulated Claude Code (as version 2.1.197 shows it) for demos and tests. The account is
$CLAUDE_CONFIG_DIR (default ~/.claude). Task lines starting `sim:` direct it, in order:

  sim: work 3s             work (spinner) for a while; also 500ms, 2m
  sim: compact 2s          compact the conversation for a while
  sim: hang                work for ever
  sim: say "TEXT"          an answer line; the turn goes on
  sim: append PATH TEXT    append a line to a file (a side effect of the task)
  sim: quota "MSG"         a usage limit (subscriber): MSG as a ⎿ line, a 429 rate_limit record
  sim: exhaust 40s ["MSG"] the account runs out: this session stops as for quota, and every session
                           of the account at its next step, until the reset 40s on (a clock time
                           {reset} in MSG rounds it up to its whole minute; {epoch} names it exactly);
                           MSG defaults to "You've hit your session limit · resets {reset}"
  sim: error 529           retries, then `● API Error: 529 Overloaded. …` (record: server_error)
  sim: error 500           retries, then `● API Error: 500 Internal server error. …` (server_error)
  sim: error 429           retries, then `● API Error: Request rejected (429) · …` (an API key's
                           rate limit; record: 429 rate_limit)
  sim: throttle            retries, then `● API Error: Server is temporarily limiting requests (not
                           your usage limit) · Rate limited` (record: 429 rate_limit)
  sim: error 529 recovered a retry that succeeds: the turn goes on (also for 500, 429, throttle)
  sim: auth                `⎿  Not logged in · Please run /login` (record: 401 authentication_failed)
  sim: crash               exit with status 1

Every stop ends the turn with a turn-end line; the task's remaining lines run at the next prompt.
Files in the account: sim-quota (exhausted: every prompt stops with the limit message it holds,
until the epoch of a last line `until EPOCH` if there is one), sim-limit-menu (after a limit, run
/rate-limit-options and open its menu).
Environment: CFO_SIM_DEFAULT_WORK, CFO_SIM_RETRY_WAIT, CFO_SIM_HEADSTART (durations),
CFO_SIM_ERROR_FIRST=1 (a stop met at once is written before its prompt), CFO_SIM_STYLE=old.
"""
DEFAULT_MODEL = "claude-sonnet-4-5"
ESC_WAIT = 0.05  # a lone ESC is the Esc key unless the rest of a sequence follows this soon


class Args:
    __slots__ = ("bypass", "model", "prompt", "resume", "session_id")

    def __init__(self) -> None:
        self.model = DEFAULT_MODEL
        self.resume: str | None = None
        self.session_id: str | None = None
        self.bypass = False
        self.prompt: str | None = None


def _parse(argv: list[str]) -> Args | int:
    """The options, or the exit status when there is nothing to run (version, help, bad usage)."""
    args = Args()
    items = list(argv)
    while items:
        item = items.pop(0)
        name, eq, inline = item.partition("=")
        if name in ("--model", "--resume", "-r", "--session-id"):
            value = inline if eq else (items.pop(0) if items else None)
            if not value:
                sys.stderr.write(f"error: option '{name}' argument missing\n")
                return 1
            if name == "--model":
                args.model = value
            elif name == "--session-id":
                args.session_id = value
            else:
                args.resume = value
        elif item == "--dangerously-skip-permissions":
            args.bypass = True
        elif item in ("--version", "-v"):
            sys.stdout.write(f"{VERSION} (Claude Code)\n")
            return 0
        elif item in ("--help", "-h"):
            sys.stdout.write(USAGE)
            return 0
        elif not item.startswith("-") and args.prompt is None:
            args.prompt = item  # the first message, submitted as the agent starts
        else:
            sys.stderr.write(f"error: unknown option '{item}'\n")
            return 1
    return args


def _env_duration(name: str, default: float) -> float:
    value = parse_duration(os.environ.get(name, ""))
    return default if value is None else value


def main(argv: list[str] | None = None) -> int:
    parsed = _parse(sys.argv[1:] if argv is None else argv)
    if isinstance(parsed, int):
        return parsed
    cwd = os.getcwd()
    config_dir = os.environ.get("CLAUDE_CONFIG_DIR") or os.path.join(os.path.expanduser("~"), ".claude")
    session_id = new_uuid()
    history: History | None = None
    if parsed.session_id is not None:
        session_id = parsed.session_id.lower()
        if not is_uuid(session_id):
            sys.stderr.write("Error: Invalid session ID. Must be a valid UUID.\n")
            return 1
        if os.path.exists(os.path.join(project_dir(config_dir, cwd), session_id + ".jsonl")):
            sys.stderr.write(f"Error: Session ID {session_id} is already in use.\n")
            return 1
    if parsed.resume is not None:
        path = os.path.join(project_dir(config_dir, cwd), parsed.resume + ".jsonl")
        if not is_uuid(parsed.resume) or not os.path.isfile(path):
            sys.stderr.write(f"No conversation found with session ID: {parsed.resume}\n")
            return 1
        session_id, history = parsed.resume, load(path)
    options = Options(
        cwd=cwd,
        config_dir=config_dir,
        model=parsed.model,
        bypass=parsed.bypass,
        new_style=os.environ.get("CFO_SIM_STYLE", "").lower() != "old",
        default_work=_env_duration("CFO_SIM_DEFAULT_WORK", 1.0),
        headstart=_env_duration("CFO_SIM_HEADSTART", 0.0),
        retry_wait=_env_duration("CFO_SIM_RETRY_WAIT", 0.5),
        error_first=os.environ.get("CFO_SIM_ERROR_FIRST", "") == "1",
    )
    hooks = HookRunner(load_stop_hooks(config_dir))
    with Terminal() as terminal:
        display = Display(terminal)
        agent = Agent(options, display, hooks, session_id, history)
        if parsed.prompt:
            agent.start_with(parsed.prompt, time.monotonic())
        return _loop(terminal, display, agent)


def _loop(terminal: Terminal, display: Display, agent: Agent) -> int:
    """Wait for input, a timer or a signal; let the agent react; redraw. Idle means blocked, no timer."""
    import select
    import signal

    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_r, False)
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w, warn_on_full_buffer=False)
    # No-op handlers: the wakeup fd is what matters (resize redraws, finished hooks get reaped).
    signal.signal(signal.SIGWINCH, lambda *_: None)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    decoder = KeyDecoder()
    escape_since: float | None = None
    try:
        while True:
            now = time.monotonic()
            agent.tick(now)
            display.show(agent.frame(now))
            timeout = agent.next_wakeup(now)
            if escape_since is not None:
                left = max(escape_since + ESC_WAIT - now, 0.0)
                timeout = left if timeout is None else min(timeout, left)
            ready, _, _ = select.select([terminal.fd_in, wake_r], [], [], timeout)
            now = time.monotonic()
            if wake_r in ready:
                while _read(wake_r):
                    pass
                if terminal.size() != (display.width, display.height):
                    display.resize()
            keys: list[Key] = []
            if terminal.fd_in in ready:
                data = _read(terminal.fd_in)
                if not data:
                    return 0  # the terminal is gone
                keys = decoder.feed(data)
            if not decoder.pending_escape:
                escape_since = None
            elif escape_since is None:
                escape_since = now
            elif now - escape_since >= ESC_WAIT:
                keys += decoder.flush()
                escape_since = None
            for key in keys:
                agent.on_key(key, now)
    except Exit as done:
        if done.status == 0:  # a crash leaves the screen as it was
            display.show(agent.frame(time.monotonic()))
            terminal.write("".join("\r\n" + line for line in agent.farewell()))
        return done.status


def _read(fd: int) -> bytes:
    """Whatever `fd` holds now; empty when it is drained (the wakeup pipe) or gone (the terminal)."""
    try:
        return os.read(fd, 65536)
    except OSError:
        return b""
