"""The simulated Claude Code in a real tmux pane, read through capture-pane text as the engine reads it."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from engine.tmux import LibtmuxClient, TmuxError
from tests.helpers import wait_until

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
SPINNER = re.compile(r"^[·✢✳✶✻✽] \w+… \(\d+s · ↓ [\d.k]+ tokens\)$", re.M)
RETRY = re.compile(r"^[·✢✳✶✻✽] \S.* · Retrying in \d+s · attempt [12]/2$", re.M)
TURN_END = re.compile(r"^✻ \w+ for \d+s$", re.M)
FOOTER = "  ⏵⏵ bypass permissions on (shift+tab to cycle)"
PLACEHOLDER = re.compile(r'^Try "[^"]*"$')
TASK_40 = "\n".join(
    [
        "[001-fix.md] Fix the rounding of refunds",
        *(f"Detail line {i} of the task." for i in range(2, 40)),
        "sim: work 1s",
    ]
)


class Sim:
    """One simulated agent in a tmux session: its project, its account and what it shows."""

    def __init__(self, tmux: LibtmuxClient, root: Path, name: str = "sim") -> None:
        self.tmux = tmux
        self.name = name
        self.project = root / "project"
        self.account = root / "account"
        self.project.mkdir(exist_ok=True)
        self.account.mkdir(exist_ok=True)

    def start(self, *args: str, **env: str) -> Sim:
        command = [sys.executable, "-m", "engine.sim", "--dangerously-skip-permissions", *args]
        environment = {
            "CLAUDE_CONFIG_DIR": str(self.account),
            "CFO_SIM_DEFAULT_WORK": "100ms",
            "PYTHONPATH": str(REPO),
            **env,
        }
        self.tmux.new_session(self.name, self.project, command=command, env=environment, width=120, height=40)
        wait_until(lambda: self.box() == "", timeout=10, what="the sim's empty prompt box")
        return self

    def run_in_shell(self, tmp_path: Path) -> Path:
        """Start the sim under sh, which writes its exit status to the returned path and keeps the pane."""
        status = tmp_path / "status"
        runner = (
            f'{sys.executable} -m engine.sim --dangerously-skip-permissions; echo $? > "{status}"; sleep 30'
        )
        env = {
            "CLAUDE_CONFIG_DIR": str(self.account),
            "PYTHONPATH": str(REPO),
            "CFO_SIM_DEFAULT_WORK": "100ms",
        }
        self.tmux.new_session(self.name, self.project, command=["sh", "-c", runner], env=env, width=120)
        wait_until(lambda: self.box() == "", what="the prompt")
        return status

    def screen(self) -> str:
        """The pane as the engine reads it: the no-break spaces after `❯` and `⎿` as plain ones."""
        lines = self.raw_screen().replace("\u00a0", " ").splitlines()
        return "\n".join(line.rstrip() for line in lines)

    def raw_screen(self) -> str:
        return self.tmux.capture(self.name, lines=200)

    def box(self) -> str | None:
        """The text in the input box (the `❯` line between the last two rules), None if no box shows.

        The suggestion a fresh session shows in its empty box counts as empty, as for the engine.
        """
        raw = self.raw_box()
        return "" if raw is not None and PLACEHOLDER.match(raw) else raw

    def raw_box(self) -> str | None:
        try:
            lines = self.screen().splitlines()
        except TmuxError:
            return None  # the session is not there (yet, or any more)
        rules = [i for i, line in enumerate(lines) if line and set(line) == {"─"}]
        if len(rules) < 2 or rules[-1] - rules[-2] < 2 or not lines[rules[-2] + 1].startswith("❯"):
            return None
        return "\n".join(lines[rules[-2] + 1 : rules[-1]])[1:].strip()

    def below_box(self) -> list[str]:
        lines = self.screen().splitlines()
        rules = [i for i, line in enumerate(lines) if line and set(line) == {"─"}]
        return lines[rules[-1] + 1 :]

    def submit(self, text: str) -> None:
        self.tmux.send_text(self.name, text)
        if "\n" in text:
            time.sleep(0.15)  # the lone Enter must come at least 100 ms after a paste
        self.tmux.send_enter(self.name)

    def wait_for(self, needle: str | re.Pattern[str], timeout: float = 10) -> str:
        def found() -> str:
            text = self.screen()
            hit = needle.search(text) if isinstance(needle, re.Pattern) else needle in text
            return text if hit else ""

        return wait_until(found, timeout=timeout, interval=0.03, what=f"{needle!r} on screen")

    def records(self) -> list[dict[str, Any]]:
        return [json.loads(line) for path in self.transcripts() for line in path.read_text().splitlines()]

    def transcripts(self) -> list[Path]:
        return sorted((self.account / "projects").glob("*/*.jsonl"))

    def quota_file(self, message: str, menu: bool = False) -> None:
        (self.account / "sim-quota").write_text(message + "\n")
        if menu:
            (self.account / "sim-limit-menu").write_text("")


@pytest.fixture
def sim(tmux: LibtmuxClient, tmp_path: Path) -> Sim:
    return Sim(tmux, tmp_path)


def user_prompts(records: list[dict[str, Any]]) -> list[str]:
    return [
        r["message"]["content"]
        for r in records
        if r["type"] == "user" and isinstance(r["message"]["content"], str)
    ]


def test_reaches_the_prompt(sim: Sim) -> None:
    sim.start()
    assert PLACEHOLDER.match(sim.raw_box() or "")  # a fresh session suggests a prompt in its box
    screen = sim.screen()
    assert "✻ Welcome to Claude Code!" in screen
    assert f"cwd: {sim.project}" in screen
    assert screen.splitlines()[-1] == FOOTER


def test_multiline_paste_then_lone_enter_is_submitted_once_and_worked_on(sim: Sim) -> None:
    sim.start()
    sim.tmux.send_text(sim.name, TASK_40)
    sim.wait_for("❯ [Pasted text #1 +40 lines]")
    time.sleep(0.15)
    sim.tmux.send_enter(sim.name)
    working = sim.wait_for(SPINNER)
    assert "● Working on: [001-fix.md] Fix the rounding of refunds" in working
    ended = sim.wait_for(TURN_END)
    assert ended.count("❯ [001-fix.md] Fix the rounding of refunds") == 1
    echoed = "".join(f"\n  Detail line {i} of the task." for i in range(2, 40)) + "\n  sim: work 1s\n"
    assert echoed in ended  # every line of the prompt, as the real one echoes it
    assert user_prompts(sim.records()) == [TASK_40]
    assert sim.box() == ""


@pytest.mark.parametrize("enter", ["none", "early"])
def test_paste_without_a_late_enter_stays_unsubmitted(sim: Sim, enter: str) -> None:
    sim.start()
    sim.tmux.send_text(sim.name, TASK_40)
    if enter == "early":
        sim.tmux.send_enter(sim.name)  # a few ms after the paste: swallowed
    sim.wait_for("❯ [Pasted text #1 +40 lines]")
    time.sleep(0.3)
    assert sim.box() == "[Pasted text #1 +40 lines]"
    assert "❯ [001-fix.md]" not in sim.screen()
    assert sim.records() == []
    sim.tmux.send_enter(sim.name)  # a lone Enter later still submits the paste, once
    sim.wait_for(TURN_END)
    assert user_prompts(sim.records()) == [TASK_40]


def test_stop_hook_runs_at_turn_end_with_session_and_pane(sim: Sim, tmp_path: Path) -> None:
    out = tmp_path / "hook.out"
    command = f'printf "%s %s\\n" "$CLAUDE_SESSION_ID" "$TMUX_PANE" > {out}.env; cat > {out}'
    settings = {"hooks": {"Stop": [{"matcher": "", "hooks": [{"type": "command", "command": command}]}]}}
    (sim.account / "settings.json").write_text(json.dumps(settings))
    sim.start()
    sim.submit("Write the changelog\nsim: work 500ms")
    sim.wait_for(SPINNER)
    assert not out.exists()
    wait_until(lambda: out.exists() and out.read_text().strip(), timeout=5, what="the Stop hook's output")
    assert TURN_END.search(sim.screen())
    payload = json.loads(out.read_text())
    session_id = sim.transcripts()[0].stem
    assert payload["hook_event_name"] == "Stop"
    assert payload["session_id"] == session_id
    assert payload["transcript_path"] == str(sim.transcripts()[0])
    assert payload["cwd"] == str(sim.project)
    env_session, pane = (tmp_path / "hook.out.env").read_text().split()
    assert env_session == session_id
    assert pane.startswith("%")


def test_quota_directive_prints_the_message_as_error_line_and_records_429(sim: Sim) -> None:
    sim.start()
    sim.submit('Ship it\nsim: work 300ms\nsim: quota "You\'ve hit your limit · resets 5pm (Europe/Paris)"')
    screen = sim.wait_for("  ⎿  You've hit your limit · resets 5pm (Europe/Paris)")
    assert "● Working on: Ship it\n  ⎿  You've hit your limit" in screen  # right under the answer
    assert TURN_END.search(screen.split("  ⎿  You've hit your limit")[1])  # a limit stop ends the turn
    assert sim.box() == ""
    *_, stop, duration = sim.records()
    assert duration["subtype"] == "turn_duration" and duration["parentUuid"] == stop["uuid"]
    assert stop["type"] == "assistant"
    assert stop["isApiErrorMessage"] is True
    assert stop["apiErrorStatus"] == 429
    assert stop["error"] == "rate_limit"
    assert stop["message"]["content"][0]["text"] == "You've hit your limit · resets 5pm (Europe/Paris)"


SERVER_SIDE = "This is a server-side issue, usually temporary — try again in a moment."
RATE_LIMIT = "This request would exceed your account's rate limit. Please try again later."
THROTTLE = "Server is temporarily limiting requests (not your usage limit) · Rate limited"


@pytest.mark.parametrize(
    ("directive", "shown", "status", "error"),
    [
        ("sim: error 529", f"● API Error: 529 Overloaded. {SERVER_SIDE}", 529, "server_error"),
        ("sim: error 500", f"● API Error: 500 Internal server error. {SERVER_SIDE}", 500, "server_error"),
        ("sim: error 429", f"● API Error: Request rejected (429) · {RATE_LIMIT}", 429, "rate_limit"),
        ("sim: throttle", f"● API Error: {THROTTLE}", 429, "rate_limit"),
        ("sim: auth", "  ⎿  Not logged in · Please run /login", 401, "authentication_failed"),
    ],
)
def test_api_stops_end_the_turn_and_keep_the_remaining_directives_for_the_next_prompt(
    sim: Sim, tmp_path: Path, directive: str, shown: str, status: int, error: str
) -> None:
    out = tmp_path / "after.txt"
    sim.start()
    sim.submit(f"Retry webhooks\n{directive}\nsim: append {out} after")
    screen = sim.wait_for(shown)
    assert TURN_END.search(screen.split(shown)[1])  # then an ordinary turn-end line, as after any turn
    assert "Working on" not in screen  # it failed before any answer
    stop = next(r for r in sim.records() if r["type"] == "assistant")
    assert (stop["apiErrorStatus"], stop["error"], stop["isApiErrorMessage"]) == (status, error, True)
    assert stop["message"]["model"] == "<synthetic>"
    assert stop["message"]["content"][0]["text"] == shown.removeprefix("● ").removeprefix("  ⎿  ")
    assert not out.exists()
    sim.submit("continue")
    wait_until(lambda: out.exists() and out.read_text() == "after\n", timeout=5, what="the owed append")
    assert sim.screen().count(shown) == 1  # the stop itself is not run again


@pytest.mark.parametrize(
    ("directive", "label"),
    [
        ("error 529", "529 Overloaded"),
        ("error 500", "500 Internal server error"),
        ("error 429", f"429 {RATE_LIMIT}"),
        ("throttle", "429 Rate limited"),
    ],
)
def test_a_failed_request_is_retried_with_a_spinner_before_its_error(
    sim: Sim, directive: str, label: str
) -> None:
    sim.start(CFO_SIM_RETRY_WAIT="1500ms")
    sim.submit(f"Flaky\nsim: {directive}")
    screen = sim.wait_for("API error · Retrying in 2s · attempt 1/2")
    assert RETRY.search(screen) and not SPINNER.search(screen)
    assert "  ⎿  Tip: " in screen  # the real one shows a tip under it too
    assert sim.records()[-1]["type"] == "user"  # nothing recorded while it retries
    sim.wait_for(f"{label} · Retrying in 2s · attempt 2/2")  # the last attempt names the error
    screen = sim.wait_for(TURN_END, timeout=5)
    assert not RETRY.search(screen) and "Tip: " not in screen


def test_a_recovered_request_goes_on_with_the_turn_and_records_no_error(sim: Sim) -> None:
    sim.start()
    sim.submit('Flaky once\nsim: error 529 recovered\nsim: say "went through"')
    sim.wait_for(RETRY)
    screen = sim.wait_for(TURN_END, timeout=5)
    assert "● went through" in screen and "● Done: Flaky once" in screen
    assert "API Error" not in screen
    assert not [r for r in sim.records() if r.get("isApiErrorMessage")]


def test_quota_file_stops_work_in_progress(sim: Sim) -> None:
    sim.start()
    sim.submit("Long job\nsim: work 30s")
    sim.wait_for(SPINNER)
    sim.quota_file("5-hour limit reached ∙ resets 7pm")
    started = time.monotonic()
    screen = sim.wait_for("  ⎿  5-hour limit reached ∙ resets 7pm", timeout=3)
    assert time.monotonic() - started < 1.5
    assert not SPINNER.search(screen)
    assert sim.box() == ""
    assert sim.records()[-2]["apiErrorStatus"] == 429  # then the turn's duration
    sim.submit("continue")  # the account is still exhausted: the next prompt stops at once
    wait_until(lambda: sim.screen().count("  ⎿  5-hour limit reached ∙ resets 7pm") == 2, what="second stop")


def test_after_a_limit_the_agent_opens_the_limit_menu_itself_and_esc_closes_it(sim: Sim) -> None:
    sim.quota_file("You've hit your limit · resets 3am", menu=True)
    sim.start()
    sim.submit("Anything")
    screen = sim.wait_for("Enter to confirm · Esc to cancel")
    tail = screen.splitlines()[-14:]
    assert TURN_END.match(tail[3])  # the turn ended first; the limit line stays in view
    assert tail[:3] + tail[4:] == [
        "❯ Anything",
        "  ⎿  You've hit your limit · resets 3am",
        "",
        "",
        "❯ /rate-limit-options",
        "",
        "─" * 120,
        "  What do you want to do?",
        "",
        "  ❯ 1. Stop and wait for limit to reset",
        "    2. Upgrade your plan",
        "",
        "  Enter to confirm · Esc to cancel",
    ]
    assert sim.box() is None
    assert FOOTER not in screen
    assert [r["type"] for r in sim.records()] == ["user", "assistant", "system"]  # no record of the menu
    assert sim.records()[1]["apiErrorStatus"] == 429
    sim.tmux.send_text(sim.name, "/exit")  # typed text goes nowhere while the menu is up
    time.sleep(0.2)
    assert sim.tmux.has_session(sim.name)
    assert "/exit" not in sim.screen()
    sim.tmux.send_keys(sim.name, "Escape")
    wait_until(lambda: sim.box() == "", what="the box back after Esc")
    screen = sim.screen()
    assert screen.count("  ⎿  You've hit your limit · resets 3am") == 1
    assert "What do you want to do?" not in screen
    assert len(TURN_END.findall(screen)) == 1


def test_limit_menu_second_option_prints_an_upgrade_line_and_queued_input_waits_for_it(sim: Sim) -> None:
    sim.quota_file("You've hit your limit · resets 3am", menu=True)
    sim.start()
    sim.submit("Anything")
    sim.wait_for("❯ 1. Stop and wait for limit to reset")
    sim.tmux.send_keys(sim.name, "Down")
    sim.wait_for("❯ 2. Upgrade your plan")
    sim.tmux.send_enter(sim.name)
    screen = sim.wait_for("https://claude.ai/upgrade")
    assert "❯ /rate-limit-options\n  ⎿  Upgrade your plan at" in screen
    assert "  ⎿  You've hit your limit · resets 3am" in screen


def test_exit_command_ends_the_process(sim: Sim) -> None:
    sim.start()
    sim.submit("/exit")
    wait_until(lambda: not sim.tmux.has_session(sim.name), timeout=5, what="the session to end")


def test_exit_status_is_0_and_the_resume_hint_is_printed(sim: Sim, tmp_path: Path) -> None:
    status = sim.run_in_shell(tmp_path)
    sim.submit("Quick one")
    sim.wait_for(TURN_END)
    sim.submit("/exit")
    wait_until(lambda: status.exists() and status.read_text().strip(), timeout=5, what="the exit status")
    assert status.read_text().strip() == "0"
    session_id = sim.transcripts()[0].stem
    assert "  ⎿  Bye!" in sim.screen()
    assert f"Resume this session with:\nclaude --resume {session_id}" in sim.screen()


def test_crash_directive_exits_with_status_1(sim: Sim, tmp_path: Path) -> None:
    status = sim.run_in_shell(tmp_path)
    sim.submit("Break\nsim: crash\nsim: work 5s")
    wait_until(lambda: status.exists() and status.read_text().strip(), timeout=5, what="the exit status")
    assert status.read_text().strip() == "1"


def test_resume_appends_to_the_same_transcript_and_finishes_the_owed_directives(
    sim: Sim, tmp_path: Path
) -> None:
    out = tmp_path / "out.txt"
    sim.start()
    sim.submit(f'Migrate the data\nsim: quota "x"\nsim: append {out} "done"')
    sim.wait_for("  ⎿  x")
    [transcript] = sim.transcripts()
    before = transcript.read_text().splitlines()
    sim.tmux.kill_session(sim.name)
    sim.start("--resume", transcript.stem)
    screen = sim.screen()
    assert "❯ Migrate the data" in screen  # the earlier conversation is shown again
    sim.submit("continue")
    wait_until(lambda: out.exists() and out.read_text() == "done\n", timeout=5, what="the owed append")
    sim.wait_for(TURN_END)
    assert sim.transcripts() == [transcript]
    after = transcript.read_text().splitlines()
    assert after[: len(before)] == before
    added = [json.loads(line) for line in after[len(before) :]]
    assert added[0]["message"]["content"] == "continue"
    assert {r["sessionId"] for r in added} == {transcript.stem}
    assert added[0]["parentUuid"] == json.loads(before[-1])["uuid"]


def test_a_prompt_on_the_command_line_is_submitted_as_the_resumed_agent_starts(
    sim: Sim, tmp_path: Path
) -> None:
    out = tmp_path / "out.txt"
    sim.start()
    sim.submit(f'Migrate the data\nsim: quota "x"\nsim: append {out} "done"')
    sim.wait_for("  ⎿  x")
    [transcript] = sim.transcripts()
    sim.tmux.kill_session(sim.name)
    sim.start("--resume", transcript.stem, "continue")  # as `claude --resume UUID continue`
    wait_until(lambda: out.exists() and out.read_text() == "done\n", timeout=5, what="the owed append")
    assert "❯ continue" in sim.screen()  # echoed as if typed and sent
    assert user_prompts(sim.records())[-1] == "continue"


def test_resume_of_a_turn_cut_off_before_any_answer_shows_its_prompt_alone(sim: Sim) -> None:
    sim.start(CFO_SIM_RETRY_WAIT="30s")
    sim.submit("[a003.md] Reply in one sentence.\nSecond line of the task.\nsim: error 529")
    sim.wait_for(RETRY)  # nothing answered yet
    [transcript] = sim.transcripts()
    sim.tmux.kill_session(sim.name)
    sim.start("--resume", transcript.stem)
    lines = sim.screen().splitlines()
    rule = "─" * 120
    prompt = lines.index("❯ [a003.md] Reply in one sentence.")
    assert lines[prompt:] == [*lines[prompt : prompt + 3], "", rule, "❯", rule, FOOTER]
    assert lines[prompt + 1 : prompt + 3] == ["  Second line of the task.", "  sim: error 529"]


def test_a_stop_written_before_its_prompt_is_replayed_after_it(sim: Sim) -> None:
    sim.quota_file("You've hit your limit · resets 3am")
    sim.start(CFO_SIM_ERROR_FIRST="1")
    sim.submit("Limited at once")
    sim.wait_for(TURN_END)
    [transcript] = sim.transcripts()
    error, prompt, duration = (json.loads(line) for line in transcript.read_text().splitlines())
    assert (error["type"], prompt["type"], error["parentUuid"]) == ("assistant", "user", prompt["uuid"])
    sim.tmux.kill_session(sim.name)
    (sim.account / "sim-quota").unlink()
    sim.start("--resume", transcript.stem)
    assert "\n❯ Limited at once\n  ⎿  You've hit your limit · resets 3am\n" in sim.screen()
    sim.submit("continue")
    sim.wait_for(TURN_END)
    added = json.loads(transcript.read_text().splitlines()[3])
    assert added["message"]["content"] == "continue" and added["parentUuid"] == duration["uuid"]


def test_resume_of_an_unknown_session_fails(tmp_path: Path) -> None:
    env = {**os.environ, "CLAUDE_CONFIG_DIR": str(tmp_path), "PYTHONPATH": str(REPO)}
    unknown = "0b0b0b0b-0000-4000-8000-000000000000"
    proc = subprocess.run(
        [sys.executable, "-m", "engine.sim", "--resume", unknown],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=10,
        check=False,
    )
    assert proc.returncode == 1
    assert f"No conversation found with session ID: {unknown}" in proc.stderr


def test_box_stays_visible_while_working(sim: Sim) -> None:
    sim.start()
    sim.submit("Think hard\nsim: work 2s")
    screen = sim.wait_for(SPINNER)
    lines = screen.splitlines()
    spinner_at = max(i for i, line in enumerate(lines) if SPINNER.match(line))
    rule = "─" * 120
    assert lines[spinner_at + 1 :] == ["", rule, "❯", rule, FOOTER]
    assert f"{rule}\n❯\u00a0\n{rule}" in sim.raw_screen()  # a no-break space after ❯, as in the real box
    sim.tmux.send_text(sim.name, "typed meanwhile")
    wait_until(
        lambda: sim.box() == "typed meanwhile" and SPINNER.search(sim.screen()), what="text in the box"
    )


def test_input_submitted_while_working_waits_under_the_box_then_runs(sim: Sim) -> None:
    sim.start()
    sim.submit("Busy\nsim: work 1500ms")
    sim.wait_for(SPINNER)
    sim.submit("/status")
    wait_until(lambda: sim.below_box() == ["  > /status", FOOTER], what="/status queued under the box")
    assert "Session ID:" not in sim.screen()
    screen = sim.wait_for("Session ID: ")
    assert TURN_END.search(screen)
    assert screen.index("✻ ") < screen.index("❯ /status\n  ⎿  ")
    assert f"     Session ID: {sim.transcripts()[0].stem}" in screen
    assert sim.below_box() == [FOOTER]


def test_esc_interrupts_the_turn(sim: Sim) -> None:
    sim.start()
    sim.submit("Slow\nsim: work 30s")
    sim.wait_for(SPINNER)
    sim.tmux.send_keys(sim.name, "Escape")
    screen = sim.wait_for("  ⎿  Interrupted · What should Claude do instead?", timeout=3)
    assert not SPINNER.search(screen)
    assert not TURN_END.search(screen)
    assert sim.box() == ""
    assert sim.records()[-1]["message"]["content"] == [
        {"type": "text", "text": "[Request interrupted by user]"}
    ]


def test_past_a_minute(sim: Sim) -> None:
    sim.start(CFO_SIM_HEADSTART="100s")
    sim.submit("Long\nsim: hang")
    screen = sim.wait_for(re.compile(r"^[·✢✳✶✻✽] \w+… \(1m 4\ds · ↓ \d\.\dk tokens\)$", re.M))
    assert "esc to interrupt" not in screen


def test_older_style(sim: Sim) -> None:
    sim.start(CFO_SIM_STYLE="old")
    sim.submit("Long\nsim: hang")
    screen = sim.wait_for(re.compile(r"^[·✢✳✶✻✽] \w+… \(\ds · ↑ \d+ tokens · esc to interrupt\)$", re.M))
    assert "\n> Long\n" in screen  # older versions echo prompts with >
    assert "\n⏺ Working on: Long\n" in screen
    sim.tmux.send_keys(sim.name, "Escape")
    sim.wait_for("  ⎿  Interrupted by user")


def test_starts_in_under_100ms_of_cpu(tmp_path: Path) -> None:
    """Start, draw the prompt, take `/exit`: the child's own CPU time, measured by wait4.

    Byte-code is cached first (in a private prefix), as it is for an installed command.
    """
    import pty

    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env.update(
        CLAUDE_CONFIG_DIR=str(tmp_path), PYTHONPATH=str(REPO), PYTHONPYCACHEPREFIX=str(tmp_path / "pyc")
    )
    warm = [sys.executable, "-m", "engine.sim", "--version"]
    subprocess.run(warm, cwd=tmp_path, env=env, capture_output=True, check=True, timeout=10)
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "engine.sim", "--dangerously-skip-permissions"],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        cwd=tmp_path,
        env=env,
        close_fds=True,
    )
    os.close(slave)
    seen = b""
    try:
        while FOOTER.strip().encode() not in seen:
            seen += os.read(master, 65536)
        os.write(master, b"/exit\r")
        while True:  # drain until the child closes the terminal, so it never blocks on a write
            try:
                if not os.read(master, 65536):
                    break
            except OSError:
                break
        _, status, usage = os.wait4(proc.pid, 0)
    finally:
        os.close(master)
        proc.returncode = 0  # reaped above through wait4
    assert os.waitstatus_to_exitcode(status) == 0
    assert usage.ru_utime + usage.ru_stime < 0.1, f"start-up took {usage.ru_utime + usage.ru_stime:.3f}s CPU"
