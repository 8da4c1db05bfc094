"""The simulated account's usage limit: `sim: exhaust` runs the whole account out until its reset time."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from engine.resets import parse_reset
from engine.sim import account
from engine.sim.agent import Agent, Options
from engine.sim.directives import parse_line
from engine.sim.hooks import HookRunner
from engine.sim.terminal import Display, Terminal
from engine.sim.transcript import new_uuid

HIT = datetime(2026, 12, 6, 20, 46, 20, tzinfo=UTC).timestamp()


class Recorded(Display):
    """A display that keeps every printed line, so a test can read what the agent showed."""

    def __init__(self, terminal: Terminal) -> None:
        super().__init__(terminal)
        self.lines: list[str] = []

    def print(self, lines: list[str]) -> None:
        self.lines.extend(lines)
        super().print(lines)


@pytest.fixture
def in_zone(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Local time is UTC for the test (the reset is shown in local time)."""
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The wall clock every simulated session reads; a test moves it by setting `clock[0]`."""
    now = [HIT]
    monkeypatch.setattr(account, "wall", lambda: now[0])
    return now


def agent(home: Path, cwd: Path) -> tuple[Agent, Recorded]:
    null = os.open(os.devnull, os.O_RDWR)
    display = Recorded(Terminal(fd_in=null, fd_out=null))
    options = Options(str(cwd), str(home), "m", bypass=True, new_style=True, default_work=0.5)
    return Agent(options, display, HookRunner([]), new_uuid()), display


def submit(sim: Agent, text: str, now: float) -> None:
    sim._submit(text, now)


@pytest.mark.parametrize(
    ("line", "seconds", "text"),
    [
        ("sim: exhaust 40s", 40.0, ""),
        (
            'sim: exhaust 2m "You\'ve hit your weekly limit · resets {reset}"',
            120.0,
            "You've hit your weekly limit · resets {reset}",
        ),
        (
            'sim: exhaust "Claude AI usage limit reached|{epoch}"',
            5 * 3600.0,
            "Claude AI usage limit reached|{epoch}",
        ),
    ],
)
def test_exhaust_directives_name_the_time_to_the_reset_and_the_message(
    line: str, seconds: float, text: str
) -> None:
    step = parse_line(line)
    assert step is not None
    assert (step.kind, step.seconds, step.text, step.timed) == ("exhaust", seconds, text, False)


def test_an_exhaust_line_with_an_unreadable_time_is_ignored() -> None:
    assert parse_line("sim: exhaust soon") is None


def test_a_reset_named_as_a_clock_time_is_on_the_whole_minute_the_message_shows(in_zone: None) -> None:
    until = account.reset_time(account.ACCOUNT_LIMIT_MESSAGE, HIT, 20)
    assert datetime.fromtimestamp(until, UTC) == datetime(2026, 12, 6, 20, 47, tzinfo=UTC)
    assert account.reset_time("usage limit reached|{epoch}", HIT, 20) == HIT + 20
    assert account.clock(until) == "8:47pm (UTC)"
    assert account.clock(datetime(2026, 12, 7, 3, 0, tzinfo=UTC).timestamp()) == "3am (UTC)"


@pytest.mark.parametrize("template", [account.ACCOUNT_LIMIT_MESSAGE, "Claude AI usage limit reached|{epoch}"])
def test_the_engine_reads_the_reset_the_simulated_account_lifts_at(
    template: str, tmp_path: Path, in_zone: None
) -> None:
    message = account.exhaust(str(tmp_path), template, 20, now=HIT)
    until = account.reset_time(template, HIT, 20)
    read = parse_reset(message, datetime.fromtimestamp(HIT, UTC), UTC)
    assert read is not None and read.timestamp() == until
    assert account.limit_message(str(tmp_path), "x", now=until - 0.5) == message
    assert account.limit_message(str(tmp_path), "x", now=until) is None


def test_a_hand_written_quota_file_exhausts_the_account_until_it_is_removed(tmp_path: Path) -> None:
    (tmp_path / "sim-quota").write_text("You've hit your limit · resets 3am\n")
    assert account.limit_message(str(tmp_path), "x", now=HIT + 10**6) == "You've hit your limit · resets 3am"
    (tmp_path / "sim-quota").write_text("")
    assert account.limit_message(str(tmp_path), "default", now=HIT) == "default"


def test_exhaust_stops_every_session_of_the_account_until_the_reset_and_no_other_account(
    tmp_path: Path, clock: list[float], in_zone: None
) -> None:
    primary, secondary, project = tmp_path / "primary", tmp_path / "secondary", tmp_path / "project"
    project.mkdir()
    hitting, hit_screen = agent(primary, project)
    working, working_screen = agent(primary, project)
    elsewhere, elsewhere_screen = agent(secondary, project)
    submit(working, "[b.md] Long work\nsim: work 10s", 0.0)
    submit(elsewhere, "[c.md] Work on the other account\nsim: work 10s", 0.0)
    submit(hitting, "[a.md] Export\nsim: exhaust 20s\nsim: work 3s", 0.0)

    limit = "You've hit your session limit · resets 8:47pm (UTC)"
    assert any(limit in line for line in hit_screen.lines)
    assert hitting.turn is None and hitting.pending == ["sim: work 3s"]  # kept for `continue`
    working.tick(0.2)  # its next step meets the account's limit
    assert working.turn is None and any(limit in line for line in working_screen.lines)
    elsewhere.tick(0.2)
    assert elsewhere.turn is not None and not any(limit in line for line in elsewhere_screen.lines)

    resumed, resumed_screen = agent(primary, project)  # a new session on the exhausted account
    submit(resumed, "continue", 1.0)
    assert resumed.turn is None and any(limit in line for line in resumed_screen.lines)

    clock[0] = datetime(2026, 12, 6, 20, 47, tzinfo=UTC).timestamp()  # the reset
    submit(hitting, "continue", 2.0)
    assert hitting.turn is not None and [s.source for s in hitting.turn.steps] == ["sim: work 3s"]
