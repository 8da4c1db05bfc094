"""Reading a captured Claude Code pane: layout, working or idle, stops (quota, server, auth), reset times."""

# Over our ~400 lines on purpose: the layout, the current turn, the stops and the state all read one
# private model of the pane (PaneView, _Turn, _Block); cut apart, each would import the others' internals.

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, tzinfo
from typing import Literal

from engine import transcript
from engine.patterns import Patterns, load_patterns
from engine.resets import local_tz, parse_reset
from engine.transcript import StopKind as StopKind

State = Literal["working", "idle", "menu", "unknown"]

# When one new stretch of text holds several kinds, the first here wins: a server error vetoes a quota hit
# (a burst of 5xx must never swap accounts), and an auth failure means the quota wording cannot be trusted.
KIND_PRIORITY: tuple[StopKind, ...] = ("server_error", "auth", "quota")

SNIPPET_CHARS = 120
# The menu's title sits a few lines above its "Stop and wait" option.
_MENU_TITLE_REACH = 8


@dataclass(frozen=True)
class Stop:
    """Why a turn stopped: kind, the pattern that said so, and where (line index, None from a transcript)."""

    kind: StopKind
    pattern: str
    snippet: str
    message: str
    line: int | None = None


@dataclass(frozen=True)
class Reading:
    """What `cfo screen` prints: state, stop kind, reset time and the pattern behind the stop."""

    state: State
    stop: StopKind | None = None
    reset_at: datetime | None = None
    pattern: str | None = None
    snippet: str | None = None
    source: Literal["screen", "transcript"] | None = None

    def to_json(self) -> dict[str, str | None]:
        return {
            "state": self.state,
            "stop": self.stop,
            "reset_at": self.reset_at.isoformat() if self.reset_at else None,
            "pattern": self.pattern,
        }


# --- layout -------------------------------------------------------------------------------------------------


def _lines(text: str) -> tuple[str, ...]:
    # Some versions draw the prompt with a no-break space; trailing blanks are the unused rows of the pane.
    lines = [line.replace("\u00a0", " ").rstrip() for line in text.splitlines()]
    while lines and not lines[-1]:
        lines.pop()
    return tuple(lines)


@dataclass(frozen=True)
class PaneView:
    """A capture split around the input box: `box` is (first box line, closing rule), None when absent."""

    lines: tuple[str, ...]
    box: tuple[int, int] | None
    menu: int | None
    exited: bool

    @property
    def above(self) -> tuple[str, ...]:
        # Without a box the whole capture is the conversation (a menu, a crash, a shell).
        return self.lines[: self.box[0] - 1] if self.box else self.lines

    @property
    def box_lines(self) -> tuple[str, ...]:
        return self.lines[self.box[0] : self.box[1]] if self.box else ()

    @property
    def below(self) -> tuple[str, ...]:
        return self.lines[self.box[1] + 1 :] if self.box else ()


def _find_box(lines: Sequence[str], p: Patterns) -> tuple[int, int] | None:
    rule, box, menu = p.rx("rule"), p.rx("box"), p.rx("limit_menu")
    for i in range(len(lines) - 1, 0, -1):
        if not box.match(lines[i]) or menu.match(lines[i]) or not rule.match(lines[i - 1]):
            continue
        for j in range(i + 1, len(lines)):
            if rule.match(lines[j]):
                return i, j
            if box.match(lines[j]):
                break
    return None


def _find_menu(lines: Sequence[str], box: tuple[int, int] | None, p: Patterns) -> int | None:
    start = box[1] + 1 if box else 0
    option, title = p.rx("limit_menu"), p.rx("menu_title")
    for i in range(len(lines) - 1, start - 1, -1):
        if option.match(lines[i]) and any(
            title.match(line) for line in lines[max(start, i - _MENU_TITLE_REACH) : i]
        ):
            return i
    return None


def split_pane(text: str, patterns: Patterns | None = None) -> PaneView:
    """Locate the input box (the last ❯ line right under a rule, up to the next rule), the menu, an exit."""
    p = patterns or load_patterns()
    lines = _lines(text)
    box = _find_box(lines, p)
    menu = _find_menu(lines, box, p)
    gone = (p.rx("agent_exited"), p.rx("shell_prompt"))
    exited = box is not None and any(rx.match(line) for line in lines[box[1] + 1 :] for rx in gone)
    return PaneView(lines=lines, box=box, menu=menu, exited=exited)


def shell_returned(text: str, patterns: Patterns | None = None) -> list[str] | None:
    """The lines above the shell prompt that ends the capture (what a command printed before it
    exited); None if the capture does not end at a shell prompt."""
    p = patterns or load_patterns()
    lines = _lines(text)
    if not lines or not p.rx("shell_prompt").match(lines[-1]):
        return None
    return list(lines[:-1])


def shown_answers(text: str, patterns: Patterns | None = None) -> list[str]:
    """The first line of each text answer above the input box, its marker stripped, oldest first: tool
    calls and the agent's own messages in an answer's place (an API error) left out, as transcripts keep
    those apart from the model's answers."""
    p = patterns or load_patterns()
    answer = p.rx("answer")
    return [
        answer.sub("", line, count=1).strip()
        for line in split_pane(text, p).above
        if answer.match(line) and _entry_kind(line, p) == "answer"
    ]


# --- the current turn ---------------------------------------------------------------------------------------


@dataclass
class _Block:
    """A run of lines above the box: an entry at column 0 or a ⎿ result, with its indented continuation."""

    kind: Literal["answer", "tool", "spinner", "turn_end", "raw", "result", "error"]
    start: int
    end: int
    # For results: what it hangs under ("echo", "answer", "tool", "after_tool" for a tool's second result,
    # ...); None after a blank line.
    parent: str | None = None


@dataclass(frozen=True)
class _Turn:
    echo: int | None  # index of the last echoed prompt, None on a fresh start
    local_command: bool
    blocks: tuple[_Block, ...]


def _echo_end(lines: Sequence[str], start: int, p: Patterns) -> int:
    """Where the prompt echoed at `start` ends.

    Its continuation rows are indented by two spaces. The agent's own ⎿ line may hang right under it (a
    request that failed at once), its wrapped rows indented deeper; but a task's text may hold ⎿ lines too,
    echoed like any other. So the echo runs to its last row two spaces in that is not a ⎿ row, and only a
    ⎿ row after that is the agent's.
    """
    result, row = p.rx("result"), p.rx("echo_continuation")
    end = i = start + 1
    while i < len(lines) and (not lines[i] or lines[i][0] == " "):
        if row.match(lines[i]) and not result.match(lines[i]):
            end = i + 1
        i += 1
    return end


def _own_message(line: str, p: Patterns) -> bool:
    """An answer bullet that is the agent's own message, not the model's: a failed request shown in the
    answer's place, or a limit wording it starts with (a quote in the model's prose is not at its start)."""
    if p.rx("error_answer").match(line):
        return True
    text = p.rx("answer").sub("", line, count=1)
    return any(sp.kind == "quota" and sp.regex.match(text) for sp in p.stops)


def _entry_kind(line: str, p: Patterns) -> Literal["answer", "tool", "spinner", "turn_end", "raw", "error"]:
    if p.rx("answer").match(line):
        if p.rx("tool_call").match(line):
            return "tool"
        return "error" if _own_message(line, p) else "answer"
    if p.rx("spinner").match(line) or p.rx("retry_spinner").match(line):
        return "spinner"
    if p.rx("turn_end").match(line):
        return "turn_end"
    return "raw"


def _current_turn(view: PaneView, p: Patterns) -> _Turn:
    lines = view.above
    echo_rx = p.rx("prompt_echo")
    echo = next((i for i in range(len(lines) - 1, -1, -1) if echo_rx.match(lines[i])), None)
    blocks: list[_Block] = []
    current: _Block | None = None
    owner: str | None = "echo" if echo is not None else None
    adjacent = echo is not None
    for i in range(_echo_end(lines, echo, p) if echo is not None else 0, len(lines)):
        line = lines[i]
        if not line:
            adjacent = False
        elif line[0] != " ":
            current = _Block(_entry_kind(line, p), i, i + 1)
            blocks.append(current)
            owner, adjacent = current.kind, True
        elif p.rx("result").match(line):
            # A result right under another result hangs under the same entry; but a tool has one result,
            # so a second one right under it is the agent's own line (a limit hit after the tool ran).
            parent = owner if adjacent else None
            if parent == "tool" and current is not None and current.kind == "result":
                parent = "after_tool"
            current = _Block("result", i, i + 1, parent)
            blocks.append(current)
            owner, adjacent = current.parent, True
        elif current is not None:
            current.end, adjacent = i + 1, True
    local = echo is not None and bool(p.rx("local_command").match(lines[echo]))
    return _Turn(echo=echo, local_command=local, blocks=tuple(blocks))


def _message(lines: Sequence[str], block: _Block, p: Patterns) -> str:
    """A block's text as one line: the agent wraps long errors onto indented lines."""
    first = lines[block.start]
    marker = (
        p.rx("result" if block.kind == "result" else "answer").match(first) if block.kind != "raw" else None
    )
    parts = [first[marker.end() :] if marker else first, *lines[block.start + 1 : block.end]]
    return " ".join(part.strip() for part in parts if part.strip())


def _candidates(turn: _Turn) -> list[_Block]:
    """The agent's own messages of the turn: after its last answer, not under a tool call or the spinner.

    A stop ends the turn, so anything followed by an answer or a spinner was not one.
    """
    last_entry = max((b.start for b in turn.blocks if b.kind in ("answer", "tool", "spinner")), default=-1)
    return [
        b
        for b in turn.blocks
        if b.start > last_entry
        and (
            b.kind in ("raw", "error")
            or (b.kind == "result" and b.parent in (None, "echo", "answer", "error", "after_tool"))
        )
    ]


def _snippet(message: str, match: re.Match[str]) -> str:
    if len(message) <= SNIPPET_CHARS:
        return message
    start = max(0, min(match.start() - 20, len(message) - SNIPPET_CHARS))
    return message[start : start + SNIPPET_CHARS]


def match_stop(message: str, patterns: Patterns | None = None) -> Stop | None:
    """One message by the stop patterns, warnings first; the caller decides it is the agent's own line."""
    p = patterns or load_patterns()
    if any(w.regex.search(message) for w in p.warnings):
        return None
    hits: dict[StopKind, Stop] = {}
    for sp in p.stops:
        assert sp.kind is not None
        m = sp.regex.search(message)
        if m and sp.kind not in hits:
            hits[sp.kind] = Stop(sp.kind, sp.name, _snippet(message, m), message)
    return next((hits[k] for k in KIND_PRIORITY if k in hits), None)


def new_line_numbers(previous: str, current: str) -> frozenset[int]:
    """Indices of `current`'s lines that came after what `previous` showed.

    The agent only appends above its redrawn bottom (spinner, box, footer), and the pane scrolls: find how
    far `previous` scrolled off the top (the offset where the most of its lines continue as `current`'s
    first lines); everything after that common run is new. A message printed again after a new prompt is
    new; a capture with no overlap at all is new throughout.
    """
    old, new = _lines(previous), _lines(current)
    common = 0
    for offset in range(len(old)):
        if len(old) - offset <= common:
            break
        run = 0
        while run < len(old) - offset and run < len(new) and old[offset + run] == new[run]:
            run += 1
        common = max(common, run)
    return frozenset(range(common, len(new)))


def _stops(lines: Sequence[str], turn: _Turn, p: Patterns, fresh: frozenset[int] | None) -> list[Stop]:
    found: list[Stop] = []
    for block in _candidates(turn):
        if fresh is not None and not any(i in fresh for i in range(block.start, block.end)):
            continue
        stop = match_stop(_message(lines, block, p), p)
        if stop:
            found.append(Stop(stop.kind, stop.pattern, stop.snippet, stop.message, block.start))
    return found


def _classify_view(view: PaneView, p: Patterns, fresh: frozenset[int] | None) -> Stop | None:
    if view.exited or (view.box is None and view.menu is None):
        return None
    turn = _current_turn(view, p)
    lines = view.above
    found = _stops(lines, turn, p, fresh)
    if view.menu is not None and turn.local_command and turn.echo is not None:
        # The agent opens the menu itself by running a slash command: the limit line (and its reset time)
        # ended the turn before it.
        before = PaneView(lines=lines[: turn.echo], box=None, menu=None, exited=False)
        found = [
            s for s in _stops(before.lines, _current_turn(before, p), p, fresh) if s.kind == "quota"
        ] + found
    if view.menu is not None and (fresh is None or view.menu in fresh):
        option = view.lines[view.menu].strip()
        found.append(Stop("quota", "limit_menu", option[:SNIPPET_CHARS], option, view.menu))
    for kind in KIND_PRIORITY:
        of_kind = [s for s in found if s.kind == kind]
        if of_kind:
            # The newest message names the stop; the menu's own quota line (it may carry the reset) beats it.
            texts = [s for s in of_kind if s.pattern != "limit_menu"]
            return (texts or of_kind)[-1]
    return None


def classify(text: str, patterns: Patterns | None = None, since: str | None = None) -> Stop | None:
    """Quota, server error or auth failure that ended the current turn, else None.

    Only the agent's own error lines count: ⎿ lines standing alone or right under an answer (never under a
    tool call or the spinner), bare lines such as the raw `…|<epoch>` form, and the limit menu, all after the
    last echoed prompt and after the turn's last answer. Echoed prompts, answers and tool output never count,
    so quota words in a task or in code the agent reads are not a hit. Pass the previous capture as `since`
    to judge only what appeared after it: a message seen at an earlier look neither hits again nor vetoes.
    Without a live agent on screen (no box and no menu, or a shell below the box) there is nothing to read.
    """
    p = patterns or load_patterns()
    fresh = new_line_numbers(since, text) if since is not None else None
    return _classify_view(split_pane(text, p), p, fresh)


# --- state --------------------------------------------------------------------------------------------------


def _last_event(view: PaneView, turn: _Turn, p: Patterns) -> Literal["work", "end"] | None:
    """Whether the turn's latest sign is work (a spinner) or an end (turn-end line, interrupt, stop)."""
    lines = view.above
    stops = {b.start for b in _candidates(turn) if match_stop(_message(lines, b, p), p)}
    event: Literal["work", "end"] | None = None
    for b in turn.blocks:
        if b.kind == "spinner":
            event = "work"
        elif b.kind == "turn_end" or b.start in stops:
            event = "end"
        elif b.kind == "result" and p.rx("interrupted").match(lines[b.start]):
            # Often right under the interrupted tool call's output, so any parent counts.
            event = "end"
        elif b.kind in ("answer", "tool") and event == "work":
            # Output below a spinner means that spinner is a leftover frame, not the live one.
            event = None
    if view.menu is not None:
        event = "end"  # the limit menu stopped the turn
    return event


def turn_ended(text: str, patterns: Patterns | None = None) -> bool:
    """The latest prompt's turn is over: a turn-end line, an interrupt or a stop, or a local slash command."""
    p = patterns or load_patterns()
    view = split_pane(text, p)
    turn = _current_turn(view, p)
    event = _last_event(view, turn, p)
    return event == "end" or (event is None and turn.local_command)


def _box_text(view: PaneView, p: Patterns) -> str:
    lines = view.box_lines
    if not lines:
        return ""
    first = p.rx("box").sub("", lines[0], count=1)
    if len(lines) == 1 and p.rx("box_placeholder").match(first):
        return ""
    return "\n".join([first, *(line.removeprefix("  ") for line in lines[1:])]).strip()


def box_text(text: str, patterns: Patterns | None = None) -> str:
    """What is typed in the input box (its placeholder counts as empty); empty when there is no box."""
    p = patterns or load_patterns()
    return _box_text(split_pane(text, p), p)


def paste_pending(text: str, patterns: Patterns | None = None) -> bool:
    """A pasted text waits in the box, not yet submitted."""
    p = patterns or load_patterns()
    return bool(p.rx("paste").search(box_text(text, p)))


def _state(view: PaneView, p: Patterns) -> State:
    if view.menu is not None:
        return "menu"
    if view.box is None or view.exited:
        return "unknown"
    turn = _current_turn(view, p)
    event = _last_event(view, turn, p)
    if event == "work":
        return "working"
    # A resumed conversation is replayed without its turn-end lines: output with no spinner under it is
    # settled, and so is a prompt with nothing under it (a turn cut off before any answer): the agent waits
    # for input. Just after a prompt is sent the screen is the same for a moment, until the spinner shows;
    # a finished turn is told by `turn_ended`, never by this state.
    return "idle" if event in ("end", None) and not _box_text(view, p) else "unknown"


def read_state(text: str, patterns: Patterns | None = None) -> State:
    """working: a spinner above the box. idle: box empty, no spinner, and the turn over (or a fresh or
    resumed start). menu: the limit menu. unknown: no box (a shell, a crash, a panel), text in the box, or a
    prompt just submitted. Use `turn_ended` to know a turn provably finished."""
    p = patterns or load_patterns()
    return _state(split_pane(text, p), p)


def last_session_id(text: str, patterns: Patterns | None = None) -> str | None:
    """The last session id shown (`/status`, or the resume hint printed at exit), validated as a UUID."""
    p = patterns or load_patterns()
    found: str | None = None
    for m in p.rx("session_id").finditer("\n".join(_lines(text))):
        try:
            found = str(uuid.UUID(m["id"]))
        except ValueError:
            continue
    return found


def status_echoes(text: str, patterns: Patterns | None = None) -> int:
    """How many `/status` commands the conversation above the input box shows."""
    p = patterns or load_patterns()
    rx = p.rx("local_command")
    return sum(1 for line in split_pane(text, p).above if rx.match(line) and "/status" in line)


def status_session_id(text: str, echoes_before: int, patterns: Patterns | None = None) -> str | None:
    """The session id that the newest `/status` printed, once more of them show than `echoes_before` (an
    older one in the scrollback may belong to a conversation since cleared); validated as a UUID."""
    p = patterns or load_patterns()
    above = split_pane(text, p).above
    rx = p.rx("local_command")
    echoes = [i for i, line in enumerate(above) if rx.match(line) and "/status" in line]
    if len(echoes) <= echoes_before:
        return None
    return last_session_id("\n".join(above[echoes[-1] + 1 :]), p)


# --- the reading --------------------------------------------------------------------------------------------


def classify_record(error: transcript.ApiError, patterns: Patterns | None = None) -> Stop | None:
    """A transcript API-error record as a stop, named `transcript:<what decided>`.

    The typed fields decide, except that a 429 whose text says the server is throttling ("not your usage
    limit") is a server error; a record without usable fields falls back to its text.
    """
    p = patterns or load_patterns()
    by_text = match_stop(error.text, p) if error.text else None
    vetoed = error.kind == "quota" and by_text is not None and by_text.kind == "server_error"
    if by_text is not None and (vetoed or error.kind is None):
        return Stop(by_text.kind, f"transcript:{by_text.pattern}", error.text[:SNIPPET_CHARS], error.text)
    if error.kind is None:
        return None
    label = error.error or str(error.status)
    return Stop(error.kind, f"transcript:{label}", error.text[:SNIPPET_CHARS], error.text)


def read(
    text: str,
    transcript_lines: Sequence[str] | None = None,
    patterns: Patterns | None = None,
    now: datetime | None = None,
    tz: tzinfo | None = None,
    since: str | None = None,
) -> Reading:
    """The whole reading of a capture, preferring the transcript's record of how the latest turn ended.

    A transcript whose latest turn ended on an API error is the structured signal and wins over screen text;
    otherwise (no transcript, or its latest turn ended normally) the screen is read as `classify` does.
    """
    p = patterns or load_patterns()
    zone = tz or local_tz()
    at = now or datetime.now(zone)
    view = split_pane(text, p)
    state = _state(view, p)
    fresh = new_line_numbers(since, text) if since is not None else None
    screen_stop = _classify_view(view, p, fresh)
    record = transcript.turn_stop(transcript_lines) if transcript_lines is not None else None
    from_record = classify_record(record, p) if record is not None else None
    if from_record is not None:
        reset = parse_reset(from_record.message, at, zone, p)
        if reset is None and screen_stop is not None and screen_stop.kind == from_record.kind:
            reset = parse_reset(screen_stop.message, at, zone, p)
        return Reading(state, from_record.kind, reset, from_record.pattern, from_record.snippet, "transcript")
    if screen_stop is not None:
        reset = parse_reset(screen_stop.message, at, zone, p) if screen_stop.kind == "quota" else None
        return Reading(state, screen_stop.kind, reset, screen_stop.pattern, screen_stop.snippet, "screen")
    return Reading(state)
