"""Launch steps that need no tmux: how a submitted message is recognised, the line typed, the message."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine import screen
from engine.config import TEMPLATE_START
from engine.launch import (
    EMPTY_BODY,
    LaunchError,
    command_line,
    echoed,
    render_message,
    submitted,
    task_marker,
)
from engine.patterns import load_patterns

PANES = Path(__file__).parent.parent / "data" / "panes"
PATTERNS = load_patterns()
RULE = "─" * 80
FOOTER = "  ⏵⏵ bypass permissions on (shift+tab to cycle)"


def pane(*above: str, box: str = "❯ ") -> str:
    return "\n".join([*above, "", RULE, box, RULE, FOOTER])


def test_a_prompt_echoed_the_older_way_is_recognised() -> None:
    text = (PANES / "real-submitted-no-spinner.txt").read_text()
    assert echoed(text, "[fix-login.md]", PATTERNS)
    assert not echoed(text, "[other.md]", PATTERNS)


def test_a_prompt_echoed_the_newer_way_is_recognised() -> None:
    text = (PANES / "real-working-newer-echo.txt").read_text()
    assert echoed(text, "[bump-deps.md]", PATTERNS)


def test_a_message_still_in_the_newer_box_is_not_taken_for_its_echo() -> None:
    text = pane(" ▐▛███▜▌   Claude Code v2.1.37", box="❯ [bump-deps.md] Bump httpx to 0.28")
    assert not echoed(text, "[bump-deps.md]", PATTERNS)
    assert not submitted(text, "[bump-deps.md]", PATTERNS)


def test_a_newer_echo_after_the_turn_ended_counts_as_submitted() -> None:
    text = pane("❯ [quick.md] Quick one", "", "● Done: Quick one", "", "✻ Worked for 1s")
    assert screen.read_state(text, PATTERNS) == "idle"
    assert submitted(text, "[quick.md]", PATTERNS)


@pytest.mark.parametrize("echo", ["> ", "❯ "])
def test_a_numbered_menu_option_is_not_an_echo(echo: str) -> None:
    assert not echoed(pane(f"{echo}1. [quick.md] Stop and wait"), "[quick.md]", PATTERNS)


def test_the_command_line_quotes_every_path_and_part() -> None:
    line = command_line(Path('/src/it\'s a "b";$x`y`'), Path("/h/a b"), "claude", ["--x", "a b"], "opus")
    assert line == (
        "cd -- '/src/it'\"'\"'s a \"b\";$x`y`' && CLAUDE_CONFIG_DIR='/h/a b' claude --x 'a b' --model opus"
    )


@pytest.mark.parametrize(
    ("project", "home", "args", "what"),
    [
        (Path("/src/proj\x15touch PWNED\r"), Path("/h"), [], "project path '/src/proj\\x15touch PWNED\\x0d'"),
        (Path("/src/p"), Path("/h\x1b"), [], "account home"),
        (Path("/src/p"), Path("/h"), ["--x\ty"], "agent command line"),
    ],
)
def test_a_control_character_in_any_part_of_the_command_line_is_refused(
    project: Path, home: Path, args: list[str], what: str
) -> None:
    with pytest.raises(LaunchError) as err:
        command_line(project, home, "claude", args, "opus")
    message = str(err.value)
    assert what in message and "control character U+" in message
    assert not any(c in message for c in "\x15\r\x1b\t")  # one printable line


def test_the_message_is_the_template_filled_in_as_config_validates_it() -> None:
    template = "[{file}] {{one brace pair}} {body}"
    body = "Use {body} and {file} literally\r\nsecond line\r\n"
    message = render_message(template, "a.md", body)
    assert message == "[a.md] {one brace pair} Use {body} and {file} literally\nsecond line"
    assert render_message("[{file}] {body}", "a.md", "  \n") == f"[a.md] {EMPTY_BODY}"


def test_every_valid_template_starts_with_the_marker_recovery_looks_for() -> None:
    assert render_message(TEMPLATE_START + "\n{body}", "a.md", "x").startswith(task_marker("a.md"))


def test_a_resume_puts_its_continue_on_the_command_line_and_a_fresh_start_does_not(tmp_path: Path) -> None:
    from engine.config import Account, AgentConfig
    from engine.launch import command_line
    from engine.runtime import Running
    from engine.tasks import read_task

    line = command_line(tmp_path, tmp_path / "a", "claude", ["--x"], "opus", "u-1", "continue")
    assert line.endswith(" --resume u-1 continue")
    inbox = tmp_path / "proj" / ".agent-queue" / "inbox"
    inbox.mkdir(parents=True)
    (inbox / "t.md").write_text("Do it\n")
    task = read_task(inbox / "t.md", "proj", tmp_path / "proj", 1_000_000)
    run = Running(
        session="s",
        task=task,
        claimed=inbox / "t.md.dispatched",
        account="a",
        model="opus",
        started=0.0,
        phase="working",
    )
    account = Account(name="a", home=tmp_path / "a")
    uuid = "0d7b1c1e-5a9e-4b7e-9a1c-2f1e3d4c5b6a"
    resumed = run.launch(AgentConfig(), account, uuid, resumed=True)
    assert resumed.in_line and resumed.line.endswith(f"--resume {uuid} continue")
    fresh = run.launch(AgentConfig(), account, None)
    assert not fresh.in_line and not fresh.line.endswith("continue") and fresh.marker == "[t.md]"
