"""The simulated agent's behaviour: input box, turns and their directives, stops, limit menu, queue."""

# Over ~400 lines on purpose: one state machine (box, turn, stops, menu, typed-ahead queue) that copies
# the real CLI's screens; its drawing, keys, directives and transcript are in modules of their own.

from __future__ import annotations

import math
import os

from engine.sim import account, render
from engine.sim.directives import DEFAULT_LIMIT_MESSAGE, STOPS, Directive, parse_line, parse_task
from engine.sim.hooks import HookRunner
from engine.sim.keys import Key
from engine.sim.terminal import Display
from engine.sim.transcript import History, Transcript, new_uuid, project_dir

PASTE_ENTER_GUARD = 0.1  # an Enter this soon after a paste counts as part of it and is dropped
EXIT_WINDOW = 1.0  # a second Ctrl-C (or Ctrl-D) within this quits
FRAME = 0.2  # while working: spinner redraw and sim-quota polling period
TOKENS_PER_SECOND = 41
RETRY_ATTEMPTS = 2  # a failing request is sent this many more times before its error is shown
MENU_FILE = "sim-limit-menu"
UPGRADE_LINE = "Upgrade your plan at https://claude.ai/upgrade"
TIP = "Tip: Use /btw to ask a quick side question without interrupting Claude's current work"
# Permission modes in shift+tab order: (footer key, name /status shows); bypass only with the flag.
MODES = (
    ("default", "default"),
    ("accept", "acceptEdits"),
    ("plan", "plan"),
    ("bypass", "bypassPermissions"),
)


class Exit(Exception):
    """Leave the simulator with `status`."""

    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


class Options:
    """What the command line and environment decided."""

    __slots__ = (
        "bypass",
        "config_dir",
        "cwd",
        "default_work",
        "error_first",
        "headstart",
        "model",
        "new_style",
        "retry_wait",
    )

    def __init__(
        self,
        cwd: str,
        config_dir: str,
        model: str,
        bypass: bool,
        new_style: bool,
        default_work: float,
        headstart: float = 0.0,
        retry_wait: float = 0.5,
        error_first: bool = False,
    ) -> None:
        self.cwd = cwd
        self.config_dir = config_dir
        self.model = model
        self.bypass = bypass
        self.new_style = new_style
        self.default_work = default_work
        self.headstart = headstart
        self.retry_wait = retry_wait
        self.error_first = error_first


class Turn:
    """A prompt being worked on: its remaining steps, and when the current timed step ends."""

    __slots__ = ("answered", "deadline", "first_line", "started", "step_started", "steps", "verb")

    def __init__(self, first_line: str, steps: list[Directive], started: float, verb: str) -> None:
        self.first_line = first_line
        self.steps = steps
        self.started = started
        self.verb = verb
        self.deadline: float | None = None
        self.step_started = started
        self.answered = False

    def owed(self) -> list[str]:
        return [step.source for step in self.steps]


class Queued:
    """A message submitted while busy: what it sends and what the box showed."""

    __slots__ = ("content", "shown")

    def __init__(self, content: str, shown: str) -> None:
        self.content = content
        self.shown = shown


def _first_line(text: str) -> str:
    for line in text.splitlines():
        if line.strip():
            return line.strip()
    return ""


def _pick(options: tuple[str, ...]) -> str:
    return options[os.urandom(1)[0] % len(options)]


class Agent:
    """Reacts to keys and to time; draws through a Display; keeps the transcript."""

    def __init__(
        self,
        options: Options,
        display: Display,
        hooks: HookRunner,
        session_id: str,
        history: History | None = None,
    ) -> None:
        self.options = options
        self.display = display
        self.hooks = hooks
        self.box = ""
        self.pastes: dict[str, str] = {}
        self.paste_count = 0
        self.last_paste = -math.inf
        self.queue: list[Queued] = []
        self.turn: Turn | None = None
        self.menu = False  # the limit menu is up
        self.menu_choice = 0
        # A fresh conversation shows a suggestion in its empty box until the first prompt.
        self.placeholder = "" if history else _pick(render.PLACEHOLDERS)
        self.pending: list[str] = list(history.pending) if history else []
        self.exit_hint: tuple[str, float] | None = None  # ("Ctrl-C", until)
        self.modes = [m for m in MODES if options.bypass or m[0] != "bypass"]
        self.mode = len(self.modes) - 1 if options.bypass else 0
        self.transcript = self._transcript(session_id, history.last_uuid if history else None)
        self.display.print(render.banner(options.cwd, options.model, display.width))
        if history:
            self._replay(history)

    # ----- state -------------------------------------------------------------------------------------

    @property
    def busy(self) -> bool:
        return self.turn is not None or self.menu

    def _transcript(self, session_id: str, parent: str | None) -> Transcript:
        folder = project_dir(self.options.config_dir, self.options.cwd)
        path = os.path.join(folder, session_id + ".jsonl")
        return Transcript(path, session_id, self.options.cwd, self.options.model, parent)

    def _replay(self, history: History) -> None:
        """A resumed conversation is shown again, stops and all, as the real agent shows it."""
        width = self.display.width
        for entry in history.entries:
            if entry.kind == "user":
                self.display.print(["", *render.echo(entry.text, width, self._echo_mark)])
            elif entry.kind == "answer":
                self.display.print(["", *render.answer(entry.text, width, self._glyph)])
            elif entry.kind == "error":
                self.display.print(render.stop(entry.text, width, self._glyph))
            else:
                self.display.print(render.error(self._interrupted, width))

    # Newer versions echo prompts with ❯, mark answers with ●, and word the interrupt differently.
    @property
    def _echo_mark(self) -> str:
        return "❯ " if self.options.new_style else "> "

    @property
    def _glyph(self) -> str:
        return "●" if self.options.new_style else "⏺"

    @property
    def _interrupted(self) -> str:
        return (
            "Interrupted · What should Claude do instead?"
            if self.options.new_style
            else "Interrupted by user"
        )

    def farewell(self) -> list[str]:
        """Printed under the last frame on a clean exit: how to resume, once there is a conversation."""
        if not os.path.exists(self.transcript.path):
            return []
        return ["Resume this session with:", f"claude --resume {self.transcript.session_id}"]

    def _quota_message(self) -> str | None:
        """The limit message while the account is exhausted (`sim-quota`, until its reset), else None."""
        return account.limit_message(self.options.config_dir, DEFAULT_LIMIT_MESSAGE)

    # ----- drawing -----------------------------------------------------------------------------------

    def frame(self, now: float) -> list[str]:
        """The dynamic region under the static output."""
        width = self.display.width
        if self.menu:
            return ["", *render.menu(self.menu_choice, width)]
        region = [""]
        if self.turn is not None:
            region += [*self._spinner(self.turn, now), ""]
        fixed = len(region) + 3 + len(self.queue)
        region += render.box(self.box or self.placeholder, width, self.display.height - fixed - 1)
        region += [render.queued(item.shown, width) for item in self.queue]
        if self.exit_hint is not None and now < self.exit_hint[1]:
            region.append(render.footer(f"Press {self.exit_hint[0]} again to exit"))
        else:
            region.append(render.footer(render.FOOTERS[self.modes[self.mode][0]]))
        return region

    def _spinner(self, turn: Turn, now: float) -> list[str]:
        elapsed = now - turn.started
        new = self.options.new_style
        step = turn.steps[0] if turn.steps else None
        if step is not None and step.kind == "compact":
            return [render.spinner(elapsed, render.COMPACTING, None, not new)]
        if step is not None and step.kind == "error":
            wait = self.options.retry_wait
            done = max(now - turn.step_started, 0.0)
            attempt = min(int(done // wait) + 1, RETRY_ATTEMPTS) if wait > 0 else RETRY_ATTEMPTS
            left = max(turn.step_started + attempt * wait - now, 0.0)
            failure = render.API_FAILURES[step.text]
            # The real one shows a tip under it: a ⎿ line that is no error.
            return [
                render.retry(elapsed, failure, left, attempt, RETRY_ATTEMPTS),
                *render.error(TIP, self.display.width),
            ]
        count = int(elapsed * TOKENS_PER_SECOND)
        return [render.spinner(elapsed, turn.verb, count, not new, "↓" if new else "↑")]

    def next_wakeup(self, now: float) -> float | None:
        """Seconds until something changes on its own; None when idle (nothing to redraw)."""
        times: list[float] = []
        if self.turn is not None:
            elapsed = now - self.turn.started
            times.append(self.turn.started + (math.floor(elapsed / FRAME) + 1) * FRAME)
            if self.turn.deadline is not None and math.isfinite(self.turn.deadline):
                times.append(self.turn.deadline)
        if self.exit_hint is not None:
            times.append(self.exit_hint[1])
        return max(min(times) - now, 0.0) if times else None

    # ----- time --------------------------------------------------------------------------------------

    def tick(self, now: float) -> None:
        self.hooks.reap()
        if self.exit_hint is not None and now >= self.exit_hint[1]:
            self.exit_hint = None
        turn = self.turn
        if turn is None or turn.deadline is None:
            return
        message = self._quota_message()
        if message is not None:
            self._limit(message, now)  # the step in progress stays owed: it is redone later
        elif now >= turn.deadline:
            done = turn.steps.pop(0)
            turn.deadline = None
            if done.kind == "compact":
                self.display.print(["", render.compacted(self.display.width)])
            if done.kind == "error" and not done.recovered:  # still failing after its retries
                failure = render.API_FAILURES[done.text]
                self._stop(failure.text, failure.status, failure.error, now)
            else:
                self._advance(now)

    # ----- keys --------------------------------------------------------------------------------------

    def on_key(self, key: Key, now: float) -> None:
        if key.name in ("ctrl_c", "ctrl_d"):
            self._exit_key(key.name, now)
        elif self.menu:
            self._menu_key(key, now)
        elif key.name == "text":
            self.box += key.text
        elif key.name == "paste":
            self._paste(key.text, now)
        elif key.name == "enter":
            self._enter(now)
        elif key.name == "newline":
            self.box += "\n"
        elif key.name == "backspace":
            self._backspace()
        elif key.name == "ctrl_u":
            self.box = ""
        elif key.name == "esc" and self.turn is not None:
            self._interrupt(now)
        elif key.name == "shift_tab":
            self.mode = (self.mode + 1) % len(self.modes)

    def _exit_key(self, name: str, now: float) -> None:
        label = "Ctrl-C" if name == "ctrl_c" else "Ctrl-D"
        if self.exit_hint is not None and self.exit_hint[0] == label and now < self.exit_hint[1]:
            raise Exit(0)
        if name == "ctrl_d" and self.box:
            return  # Ctrl-D only quits from an empty box
        self.exit_hint = (label, now + EXIT_WINDOW)
        if name == "ctrl_c":
            self.box = ""
            if self.menu:
                self._close_menu(now, choice=None)
            elif self.turn is not None:
                self._interrupt(now)

    def _paste(self, text: str, now: float) -> None:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
        self.last_paste = now
        lines = text.split("\n")
        if len(lines) > 1 and lines[-1] == "":
            lines.pop()
        if len(lines) < 2:
            self.box += text
            return
        self.paste_count += 1
        marker = f"[Pasted text #{self.paste_count} +{len(lines)} lines]"
        self.pastes[marker] = text
        self.box += marker

    def _backspace(self) -> None:
        for marker in self.pastes:
            if self.box.endswith(marker):
                self.box = self.box[: -len(marker)]
                return
        self.box = self.box[:-1]

    def _enter(self, now: float) -> None:
        if now - self.last_paste < PASTE_ENTER_GUARD:
            return
        if self.box.endswith("\\"):
            self.box = self.box[:-1] + "\n"  # backslash-Enter continues the line, as in the real box
            return
        shown, content = self.box, self.box
        for marker, text in self.pastes.items():
            content = content.replace(marker, text)
        if not content.strip():
            return
        self.box = ""
        self.pastes = {}
        if self.busy:
            self.queue.append(Queued(content, shown))
        else:
            self._submit(content, now)

    def _menu_key(self, key: Key, now: float) -> None:
        """Up/Down move, Enter picks, Esc cancels; anything typed goes nowhere while the menu is up."""
        if key.name == "up":
            self.menu_choice = max(self.menu_choice - 1, 0)
        elif key.name == "down":
            self.menu_choice = min(self.menu_choice + 1, len(render.MENU_OPTIONS) - 1)
        elif key.name == "enter":
            self._close_menu(now, choice=self.menu_choice)
        elif key.name == "esc":
            self._close_menu(now, choice=None)

    # ----- prompts -----------------------------------------------------------------------------------

    def start_with(self, prompt: str, now: float) -> None:
        """The prompt given on the command line: submitted as the agent starts, as if typed and sent."""
        self._submit(prompt, now)

    def _submit(self, content: str, now: float) -> None:
        self.placeholder = ""
        stripped = content.strip()
        name = stripped.split(None, 1)[0][1:] if stripped.startswith("/") else ""
        # `/status` is a command; `/home/me/notes.txt says…` is a prompt.
        if name.replace("-", "").replace("_", "").isalnum():
            self._command(name.lower(), stripped)
        else:
            self._start_turn(content, now)

    def _command(self, name: str, text: str) -> None:
        width = self.display.width
        self.display.print(["", *render.echo(text, width, self._echo_mark)])
        if name in ("exit", "quit"):
            self.display.print(render.error("Bye!", width))
            raise Exit(0)
        if name == "status":
            o = self.options
            mode = self.modes[self.mode][1]
            self.display.print(
                render.status(self.transcript.session_id, o.cwd, o.model, o.config_dir, mode, width)
            )
        elif name == "clear":
            self.pending = []
            self.transcript = self._transcript(new_uuid(), None)
            self.display.clear()
            self.display.print(render.banner(self.options.cwd, self.options.model, width))
            self.placeholder = _pick(render.PLACEHOLDERS)
        else:
            self.display.print(render.error(f"Unknown slash command: {name}", width))

    def _start_turn(self, content: str, now: float) -> None:
        width = self.display.width
        self.display.print(["", *render.echo(content, width, self._echo_mark)])
        owed = [d for d in (parse_line(source) for source in self.pending) if d is not None]
        steps = owed + parse_task(content)
        if not any(step.timed for step in steps):
            ms = round(self.options.default_work * 1000)
            steps.append(Directive("work", f"sim: work {ms}ms", seconds=ms / 1000))
        self.pending = []
        turn = Turn(_first_line(content), steps, now - self.options.headstart, _pick(render.VERBS))
        self.turn = turn
        # Held back with CFO_SIM_ERROR_FIRST: a stop met at once is written before it, as the real agent
        # sometimes does; anything else (an answer, or nothing yet) lets it go first.
        self.transcript.user(content, turn.owed(), hold=self.options.error_first)
        try:
            self._advance(now)
        finally:
            self.transcript.flush()

    def _advance(self, now: float) -> None:
        """Run steps that take no time until a timed one starts, the turn stops, or it is done."""
        turn = self.turn
        while turn is not None and self.turn is turn:
            message = self._quota_message()
            if message is not None:
                self._limit(message, now)
                return
            step = turn.steps[0] if turn.steps else None
            # A request that fails at once shows its error right under the prompt, with no answer.
            if not turn.answered and (step is None or step.kind not in STOPS):
                turn.answered = True
                self._answer(f"Working on: {turn.first_line}", turn)
            if step is None:
                self._finish(turn, now)
                return
            if step.timed or step.kind == "error":
                attempts = 1 if step.recovered else RETRY_ATTEMPTS
                wait = step.seconds if step.timed else attempts * self.options.retry_wait
                turn.deadline, turn.step_started = now + wait, now
                return
            turn.steps.pop(0)
            self._run(step, turn, now)

    def _run(self, step: Directive, turn: Turn, now: float) -> None:
        width = self.display.width
        if step.kind == "say":
            self._answer(step.text, turn)
        elif step.kind == "quota":
            self._limit(step.text, now)
        elif step.kind == "exhaust":
            template = step.text or account.ACCOUNT_LIMIT_MESSAGE
            self._limit(account.exhaust(self.options.config_dir, template, step.seconds), now)
        elif step.kind == "auth":
            self._stop("Not logged in · Please run /login", 401, "authentication_failed", now)
        elif step.kind == "crash":
            raise Exit(1)
        elif step.kind == "append":
            path = os.path.join(self.options.cwd, os.path.expanduser(step.path))
            try:
                os.makedirs(os.path.dirname(path), exist_ok=True)
                with open(path, "a", encoding="utf-8") as handle:
                    handle.write(step.text + "\n")
            except OSError as exc:
                self.display.print(render.error(f"Error writing {step.path}: {exc.strerror}", width))

    def _answer(self, text: str, turn: Turn) -> None:
        self.display.print(["", *render.answer(text, self.display.width, self._glyph)])
        self.transcript.answer(text, turn.owed())

    # ----- ends of turns -----------------------------------------------------------------------------

    def _finish(self, turn: Turn, now: float) -> None:
        self._answer(f"Done: {turn.first_line}", turn)
        self._turn_end_line(turn, now)
        self._end(turn, now, hooks=True)

    def _stop(self, text: str, status: int, error: str, now: float) -> None:
        """An API error or auth stop: the agent's message, then a turn-end line, as after any turn."""
        turn = self.turn
        assert turn is not None
        self.transcript.api_error(text, status, error, turn.owed())
        self.display.print(render.stop(text, self.display.width, self._glyph))
        self._turn_end_line(turn, now)
        self._end(turn, now, hooks=True)

    def _limit(self, message: str, now: float) -> None:
        """A usage-limit stop: its error line and a turn-end line; when switched on, the agent then runs
        `/rate-limit-options` itself, whose menu opens under it (the limit line stays in view above)."""
        turn = self.turn
        assert turn is not None
        self.transcript.api_error(message, 429, "rate_limit", turn.owed())
        self.display.print(render.stop(message, self.display.width, self._glyph))
        self._turn_end_line(turn, now)
        if os.path.exists(os.path.join(self.options.config_dir, MENU_FILE)):
            self.display.print(["", *render.echo(render.MENU_COMMAND, self.display.width, self._echo_mark)])
            self.menu, self.menu_choice = True, 0  # before the turn ends: queued input waits for the menu
        self._end(turn, now, hooks=True)

    def _close_menu(self, now: float, choice: int | None) -> None:
        """Esc, or an option picked: the menu goes and the box comes back (the turn was over already)."""
        width = self.display.width
        self.menu = False
        if choice == 0:
            self.display.print(render.error("Waiting for the limit to reset.", width))
        elif choice == 1:
            self.display.print(render.error(UPGRADE_LINE, width))
        self._drain(now)

    def _turn_end_line(self, turn: Turn, now: float) -> None:
        """`✻ Worked for 3s`, and the turn's duration recorded, as the real agent does at each turn end."""
        elapsed = now - turn.started
        self.display.print(["", render.turn_end(_pick(render.DONE_VERBS), elapsed)])
        self.transcript.turn_duration(elapsed, turn.owed())

    def _interrupt(self, now: float) -> None:
        """Esc: the turn ends at once; the step in progress stays owed. Stop hooks do not run."""
        turn = self.turn
        assert turn is not None
        self.display.print(render.error(self._interrupted, self.display.width))
        self.transcript.interrupted(turn.owed())
        self._end(turn, now, hooks=False)

    def _end(self, turn: Turn, now: float, hooks: bool) -> None:
        self.pending = turn.owed()
        self.turn = None
        self._settle(now, hooks)

    def _settle(self, now: float, hooks: bool) -> None:
        if hooks:
            self.hooks.run(self.transcript.session_id, self.transcript.path, self.options.cwd)
        self._drain(now)

    def _drain(self, now: float) -> None:
        """Messages queued while busy run in order, each once the one before has finished."""
        while self.queue and not self.busy:
            self._submit(self.queue.pop(0).content, now)
