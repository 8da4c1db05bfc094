"""The simulated agent reads, screen and transcript alike, as the real Claude Code CLI 2.1.197 does.

Every situation below is played by the simulator in a private tmux server and read by the engine; the
reading must equal the one of the real CLI's capture in tests/data/realcli-shared/ (see its README), so
that what the fast tests and `cfo demo` exercise is what users meet.
"""

from __future__ import annotations

import json
import re
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from engine import screen, transcript
from engine.tmux import LibtmuxClient
from tests.helpers import wait_until

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
REAL = REPO / "tests" / "data" / "realcli-shared"
TZ = ZoneInfo("Europe/Madrid")
NOW = datetime(2026, 12, 6, 15, 0, tzinfo=TZ)
LIMIT = "You've hit your session limit · resets 4:15pm (UTC)"
TURN_END = re.compile(r"^✻ \S+ for \d+s$", re.M)
# The real wording of the failures seen without a capture of their own (the shared README's).
SERVER_500 = "API Error: 500 Internal server error. This is a server-side issue, usually temporary."
THROTTLE = "API Error: Server is temporarily limiting requests (not your usage limit) · Rate limited"
# An answer bullet and its wrapped rows.
BULLET = re.compile(r"^● .*\n(?:  \S.*\n)*", re.M)
NOT_LOGGED_IN = "Not logged in · Please run /login"

Records = list[str]


def real_pane(name: str, bullet: str | None = None) -> str:
    """A real capture; `bullet` rewords its answer bullet for a failure seen only in words."""
    text = (REAL / name).read_text(encoding="utf-8")
    if bullet is not None:
        text, found = BULLET.subn(f"● {bullet}\n", text)
        assert found == 1
    return text


def real_records(name: str) -> Records:
    return (REAL / name).read_text(encoding="utf-8").splitlines()


def reworded(lines: Records, text: str, status: int, error: str) -> Records:
    """A real transcript whose API-error record says `text` with `status` and `error` instead."""
    out: Records = []
    for line in lines:
        record = json.loads(line)
        if record.get("isApiErrorMessage"):
            record["message"]["content"] = [{"type": "text", "text": text}]
            record.update(apiErrorStatus=status, error=error)
        out.append(json.dumps(record, ensure_ascii=False))
    return out


def before_the_error(lines: Records) -> Records:
    """A real transcript as it stood before its API-error record: the prompt, and no answer yet."""
    error = next(i for i, line in enumerate(lines) if json.loads(line).get("isApiErrorMessage"))
    return lines[:error]


def error_first(lines: Records) -> Records:
    """A real transcript with its API-error record moved before the prompt it answers, as the real CLI
    sometimes writes it (`parentUuid` and timestamps unchanged)."""
    prompt = next(i for i, line in enumerate(lines) if json.loads(line).get("type") == "user")
    error = next(i for i, line in enumerate(lines) if json.loads(line).get("isApiErrorMessage"))
    moved = [line for i, line in enumerate(lines) if i != error]
    moved.insert(prompt, lines[error])
    return moved


class Sim:
    """A simulated agent in a tmux session of its own, with its account and project directories."""

    def __init__(self, tmux: LibtmuxClient, root: Path) -> None:
        self.tmux = tmux
        self.account = root / "account"
        self.project = root / "project"
        self.account.mkdir()
        self.project.mkdir()
        self.name = "sim"

    def start(self, *args: str, **env: str) -> Sim:
        command = [sys.executable, "-m", "engine.sim", "--dangerously-skip-permissions", *args]
        environment = {"CLAUDE_CONFIG_DIR": str(self.account), "PYTHONPATH": str(REPO), **env}
        environment.setdefault("CFO_SIM_DEFAULT_WORK", "200ms")
        self.tmux.new_session(self.name, self.project, command, environment, 120, 40)
        wait_until(lambda: "bypass permissions" in self.screen(), what="the sim's footer")
        return self

    def screen(self) -> str:
        return self.tmux.capture(self.name, lines=200)

    def submit(self, text: str) -> None:
        self.tmux.send_text(self.name, text)
        time.sleep(0.15)  # a lone Enter must come at least 100 ms after a paste
        self.tmux.send_enter(self.name)

    def wait_for(self, *needles: str | re.Pattern[str], timeout: float = 10) -> str:
        def found() -> str:
            text = self.screen()
            hits = (n.search(text) if isinstance(n, re.Pattern) else n in text for n in needles)
            return text if all(hits) else ""

        return wait_until(found, timeout=timeout, interval=0.03, what=f"{needles!r} on screen")

    def records(self) -> Records:
        [path] = (self.account / "projects").glob("*/*.jsonl")
        return path.read_text(encoding="utf-8").splitlines()

    def play(self, task: str, *until: str | re.Pattern[str], **env: str) -> str:
        self.start(**env).submit(task)
        return self.wait_for(*until)


def finished(sim: Sim) -> str:
    return sim.play("[t1.md] Say hello.\nSecond line of the task.\nThird line.", "● Done: ", TURN_END)


def overloaded(sim: Sim) -> str:
    return sim.play("[529_apikey.md] Task that will hit 529.\nsim: error 529", "● API Error: 529", TURN_END)


def server_500(sim: Sim) -> str:
    return sim.play("[500.md] Task that will hit 500.\nsim: error 500", "● API Error: 500", TURN_END)


def apikey_429(sim: Sim) -> str:
    task = "[429_plain_apikey.md] Task that will hit 429_plain.\nsim: error 429"
    return sim.play(task, "● API Error: Request rejected (429)", TURN_END)


def throttled(sim: Sim) -> str:
    return sim.play("[throttle.md] Task that will be throttled.\nsim: throttle", f"● {THROTTLE}", TURN_END)


def limit_menu(sim: Sim) -> str:
    (sim.account / "sim-quota").write_text(LIMIT + "\n")
    (sim.account / "sim-limit-menu").write_text("")
    return sim.play("[429_5h_oauth.md] Task that will hit 429_5h.", "Enter to confirm · Esc to cancel")


def logged_out(sim: Sim) -> str:
    return sim.play("[401_oauth.md] Task that will hit 401.\nsim: auth", NOT_LOGGED_IN, TURN_END)


def retrying(sim: Sim) -> str:
    task = "[429_plain_apikey.md] Task that will hit 429_plain.\nsim: error 429"
    return sim.play(task, "Retrying in", CFO_SIM_RETRY_WAIT="30s")


def resumed_cut_off(sim: Sim) -> str:
    """Stopped while its request was retried, before any answer; then started again with --resume."""
    task = "[a003.md] Reply with one short sentence about number 3.\nSecond line of alpha task 3."
    sim.play(task + "\nsim: error 529", "Retrying in", CFO_SIM_RETRY_WAIT="30s")
    sim.tmux.kill_session(sim.name)
    [path] = (sim.account / "projects").glob("*/*.jsonl")
    sim.start("--resume", path.stem)
    return sim.wait_for("❯ [a003.md] Reply with one short sentence")


@dataclass(frozen=True)
class Case:
    play: Callable[[Sim], str]
    real: Callable[[], str]
    records: Callable[[], Records]


CASES: dict[str, Case] = {
    "turn finished": Case(
        finished,
        lambda: real_pane("idle__turn_finished.txt"),
        lambda: before_the_error(real_records("529_apikey.jsonl")),  # no stop record
    ),
    "529 after retries": Case(
        overloaded, lambda: real_pane("idle__529_apikey.txt"), lambda: real_records("529_apikey.jsonl")
    ),
    "500 after retries": Case(
        server_500,
        lambda: real_pane("idle__529_apikey.txt", SERVER_500),
        lambda: reworded(real_records("529_apikey.jsonl"), SERVER_500, 500, "server_error"),
    ),
    "API-key 429 after retries": Case(
        apikey_429,
        lambda: real_pane("idle__429_plain_apikey.txt"),
        lambda: real_records("429_plain_apikey.jsonl"),
    ),
    "server throttle": Case(
        throttled,
        lambda: real_pane("idle__429_plain_apikey.txt", THROTTLE),
        lambda: reworded(real_records("429_plain_apikey.jsonl"), THROTTLE, 429, "rate_limit"),
    ),
    "subscriber limit and its menu": Case(
        limit_menu, lambda: real_pane("idle__429_5h_oauth.txt"), lambda: real_records("429_5h_oauth.jsonl")
    ),
    "401": Case(
        logged_out,
        lambda: real_pane("idle__401_oauth.txt"),
        lambda: reworded(real_records("429_5h_oauth.jsonl"), NOT_LOGGED_IN, 401, "authentication_failed"),
    ),
    "retry spinner mid-retry": Case(
        retrying,
        lambda: real_pane("working__429_plain_apikey_retrying_attempt7.txt"),
        lambda: before_the_error(real_records("429_plain_apikey.jsonl")),
    ),
    "resumed cut-off turn": Case(
        resumed_cut_off,
        lambda: real_pane("idle__resumed_interrupted_turn.txt"),
        lambda: before_the_error(real_records("529_apikey.jsonl")),
    ),
}


def reading(text: str, records: Records | None = None) -> tuple[Any, ...]:
    r = screen.read(text, records, now=NOW, tz=TZ)
    return (r.state, r.stop, r.pattern, r.reset_at, r.source, screen.turn_ended(text))


def record_stop(records: Records) -> tuple[int | None, str | None, str | None] | None:
    stop = transcript.turn_stop(records)
    return None if stop is None else (stop.status, stop.error, stop.kind)


@pytest.fixture
def sim(tmux: LibtmuxClient, tmp_path: Path) -> Sim:
    return Sim(tmux, tmp_path)


@pytest.mark.parametrize("situation", list(CASES))
def test_the_sim_reads_as_the_real_cli_on_screen_and_in_its_transcript(sim: Sim, situation: str) -> None:
    case = CASES[situation]
    shown, real = case.play(sim), case.real()
    assert reading(shown) == reading(real), shown
    ours, theirs = sim.records(), case.records()
    assert record_stop(ours) == record_stop(theirs)
    assert reading(shown, ours) == reading(real, theirs), shown


def test_a_stop_met_at_once_can_be_written_before_its_prompt_and_reads_the_same(sim: Sim) -> None:
    (sim.account / "sim-quota").write_text(LIMIT + "\n")
    sim.play("[429_5h_oauth.md] Task that will hit 429_5h.", LIMIT, TURN_END, CFO_SIM_ERROR_FIRST="1")
    records = [json.loads(line) for line in sim.records()]
    kinds = [r["type"] for r in records]
    assert kinds == ["assistant", "user", "system"]  # in the file: the error first, then its prompt
    error, prompt, duration = records
    assert prompt["parentUuid"] is None and error["parentUuid"] == prompt["uuid"]
    assert duration["parentUuid"] == error["uuid"] and duration["subtype"] == "turn_duration"
    assert prompt["timestamp"] <= error["timestamp"] <= duration["timestamp"]
    real = error_first(real_records("429_5h_oauth.jsonl"))
    assert record_stop(sim.records()) == record_stop(real) == (429, "rate_limit", "quota")


@pytest.mark.parametrize(
    ("play", "real", "text"),
    [
        (overloaded, "529_apikey.jsonl", "API Error: 529 Overloaded. "),
        (apikey_429, "429_plain_apikey.jsonl", None),
        (limit_menu, "429_5h_oauth.jsonl", None),
    ],
)
def test_an_api_error_record_has_the_real_ones_fields(
    sim: Sim, play: Callable[[Sim], str], real: str, text: str | None
) -> None:
    play(sim)
    [ours] = [r for r in map(json.loads, sim.records()) if r.get("isApiErrorMessage")]
    [theirs] = [r for r in map(json.loads, real_records(real)) if r.get("isApiErrorMessage")]
    for key in ("type", "error", "isApiErrorMessage", "apiErrorStatus", "isSidechain"):
        assert ours[key] == theirs[key], key
    for key in ("model", "role", "stop_reason", "stop_sequence", "type"):
        assert ours["message"][key] == theirs["message"][key], key
    assert {"uuid", "parentUuid", "timestamp", "sessionId"} <= set(ours)
    said, real_said = ours["message"]["content"][0]["text"], theirs["message"]["content"][0]["text"]
    if text is None:
        assert said == real_said
    else:  # the real one names the API gateway it was given, after the same words
        assert said.startswith(text) and real_said.startswith(text)
