"""Failover on the real Claude Code CLI: limits, API errors, auth, a dedicated session, a killed console and
the return to the first account, each against the mock API on a private tmux socket."""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import subprocess
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol, cast

import pytest

from engine.conversations import conversation_dir
from engine.core import Engine
from engine.symlinks import ensure_links
from engine.tmux import LibtmuxClient
from tests.helpers import wait_until
from tests.integration.pipeline_support import new_engine, run_engine, start_headless
from tests.realcli.driver import at_prompt, spinning, start_agent
from tests.realcli.homes import AuthMode, trust
from tests.realcli.mockapi import ANSWER_PREFIX, Behaviour, MockApi, Request
from tests.realcli.workspace import RealWorkspace, real_workspace

pytestmark = pytest.mark.realcli

PROJECTS = ("alpha", "beta")
POOL = ("ccl-auto-11", "ccl-auto-12")
Event = dict[str, Any]


@pytest.fixture(autouse=True)
def engine_log(caplog: pytest.LogCaptureFixture) -> None:
    """The engine's own account of a failing scenario (quota decisions, swaps, launches) in its report."""
    caplog.set_level(logging.INFO, logger="engine")


class Setup(Protocol):
    """Builds the test's scenario: both accounts of one auth mode, `agents` pool sessions, and the CLI's own
    retries cut to `max_retries` where a test waits for them."""

    def __call__(self, auth: AuthMode, agents: int = 1, max_retries: int | None = None) -> Scenario: ...


@pytest.fixture
def setup(tmp_path: Path, tmux: LibtmuxClient, claude: Path, mock_api: MockApi) -> Setup:
    def make(auth: AuthMode, agents: int = 1, max_retries: int | None = None) -> Scenario:
        rws = real_workspace(
            tmp_path / "ws", tmux, claude, mock_api, PROJECTS, agents, (auth, auth), max_retries
        )
        return Scenario(rws)

    return make


class Scenario:
    """A workspace of the real CLI with its mock, and what the scenarios look at: tasks, their side effects
    and answers, the events, and everything worth showing when the engine gets one wrong."""

    def __init__(self, rws: RealWorkspace) -> None:
        self.rws = rws
        self.ws = rws.ws
        self.api = rws.api
        self.ran = self.ws.root / "ran.log"
        self.keys: list[str] = []

    @property
    def primary(self) -> str:
        return self.rws.account("primary").credential

    @property
    def secondary(self) -> str:
        return self.rws.account("secondary").credential

    def add(self, key: str, *lines: str) -> None:
        """Queue `project:id`, which appends its key to the log through the CLI's Bash tool, then `lines`;
        each task added is older than the next, so they dispatch in this order."""
        project, task_id = key.split(":")
        body = "\n".join([f"Append {task_id} to the log.", f"mock: bash echo {key} >> {self.ran}", *lines])
        self.ws.add_task(project, task_id, body, age=100 - len(self.keys))
        self.keys.append(key)

    @staticmethod
    def first_line(key: str) -> str:
        """The first line of the message cfo pastes for the task: what the mock answers and records."""
        task_id = key.split(":")[1]
        return f"[{task_id}.md] Append {task_id} to the log."

    def done(self) -> list[str]:
        return sorted(f"{p}:{n.removesuffix('.md')}" for p in PROJECTS for n in self.ws.done(p))

    def all_done(self) -> bool:
        return len(self.done()) == len(self.keys)

    def side_effects(self) -> list[str]:
        return sorted(self.ran.read_text().split()) if self.ran.exists() else []

    def assert_answered_once(self) -> None:
        """Each task got its answer from the mock exactly once, the answer over before cfo called the task
        done, and its side effect happened once."""
        keys = {self.first_line(key): key for key in self.keys}
        answers = [r for r in self.api.requests() if r.answered and r.prompt in keys]
        counts = {key: sum(1 for r in answers if keys[r.prompt] == key) for key in self.keys}
        assert counts == dict.fromkeys(self.keys, 1), f"answers per task: {counts}"
        completed = {e["task"]: stamp(e) for e in self.events("completed")}
        early = [keys[r.prompt] for r in answers if r.ended is None or r.ended > completed[keys[r.prompt]]]
        assert early == [], f"done before their answer ended: {early}"
        assert self.side_effects() == sorted(self.keys)

    def events(self, *kinds: str) -> list[Event]:
        return [e for e in self.ws.events() if not kinds or e["type"] in kinds]

    def footer(self, key: str, field: str) -> str:
        project, task_id = key.split(":")
        text = (self.ws.project(project) / ".agent-queue" / "done" / f"{task_id}.md").read_text()
        return next(line.split(": ", 1)[1] for line in text.splitlines() if line.startswith(f"{field}: "))

    def continued(self) -> list[Request]:
        """The requests of turns that cfo's `continue` went on with."""
        return [r for r in self.api.requests() if r.continued]

    def saved_state(self) -> dict[str, Any]:
        try:
            data = json.loads((self.ws.root / "state" / "state.json").read_text())
        except (OSError, ValueError):
            return {}
        return cast(dict[str, Any], data)

    def released_on_disk(self) -> bool:
        """state.json: every session idle and holding no task (a console of its own saved it so)."""
        sessions = self.saved_state().get("sessions") or [{"state": "unknown"}]
        return all(s["task"] is None and s["state"] == "idle" for s in sessions)

    def report(self) -> str:
        """The events, every pane, the session records and the accounts' limits as saved: what a failure
        is diagnosed from."""
        tmux = self.ws.tmux
        panes = "\n".join(f"--- {n}\n{tmux.capture(n, 60).rstrip()}" for n in tmux.list_sessions())
        state = self.saved_state()
        records = {s["name"]: (s["state"], s["task"], s["account"]) for s in state.get("sessions", [])}
        limits = {
            a["name"]: a["usable_again_at"] and datetime.fromtimestamp(a["usable_again_at"], UTC).isoformat()
            for a in state.get("accounts", [])
        }
        events = "\n".join(json.dumps(e) for e in self.events())
        log = self.ws.root / "engine.log"
        tail = log.read_text()[-4000:] if log.exists() else ""
        return (
            f"\nevents:\n{events}\nsessions: {records}\naccounts limited until: {limits}\n"
            f"panes:\n{panes}\nheadless log:\n{tail}"
        )

    def run(
        self,
        engine: Engine,
        until: Callable[[], bool],
        timeout: float,
        during: Callable[[], None] | None = None,
    ) -> None:
        try:
            run_engine(engine, until, timeout=timeout, during=during)
        except AssertionError as exc:
            raise AssertionError(f"{exc}{self.report()}") from None

    def check(self, condition: bool, what: str) -> None:
        """Assert `condition`; the report says what the engine did when it does not hold."""
        if not condition:
            raise AssertionError(f"{what}{self.report()}")


def once(action: Callable[[], None], when: Callable[[], bool]) -> Callable[[], None]:
    """A `during` hook that runs `action` the first time `when()` holds."""
    fired: list[bool] = []

    def hook() -> None:
        if not fired and when():
            fired.append(True)
            action()

    return hook


def settled(engine: Engine) -> bool:
    """No run is held and no session record names a task: the engine let go of everything it finished."""
    return not engine.running and all(s.task is None for s in engine.state.sessions.values())


def stamp(event: Event) -> float:
    return datetime.fromisoformat(event["ts"].replace("Z", "+00:00")).timestamp()


# ----------------------------------------------------------------------------------------- the run


def test_a_session_limit_mid_run_swaps_once_and_every_task_is_done_once(
    setup: Setup,
) -> None:
    sc = setup("oauth", agents=2)
    streaming, limited = "alpha:a0", "beta:b0"
    sc.add(streaming, "mock: stream 5s")  # a healthy turn, still streaming when the limit comes
    sc.add(limited, "mock: bash sleep 3")  # the limit stops it after its side effect, before its answer
    for key in ("alpha:a1", "beta:b1", "alpha:a2", "beta:b2"):
        sc.add(key)

    def at_work(key: str) -> bool:
        """The task's first command has run: the mock has its result (and streams or sleeps now)."""
        return any(
            r.kind == "tool_result" and r.prompt == sc.first_line(key) for r in sc.api.requests(sc.primary)
        )

    # Requests already under way are answered; every later one of the account gets the limit.
    limit = Behaviour("subscriber_limit", reset_in=240)
    both_at_work = once(
        lambda: sc.api.behave(sc.primary, limit), lambda: at_work(streaming) and at_work(limited)
    )
    engine = new_engine(sc.ws)
    sc.run(engine, lambda: sc.all_done() and settled(engine), timeout=120, during=both_at_work)

    swaps = sc.events("swap")
    sc.check(len(swaps) == 1, f"one swap expected, got {len(swaps)}")
    swap = swaps[0]
    assert (swap["from_account"], swap["account"]) == ("primary", "secondary")
    assert swap["duration"] < 10
    held = {e["task"]: e["session"] for e in sc.events("dispatched")}
    assert swap["finishing"] == [held[streaming]]  # its healthy turn was not cut off ...
    assert sc.footer(streaming, "account") == "primary"  # ... and it finished on the old account
    assert swap["resumed"] == [held[limited]]  # resumed in its conversation under the second account
    assert sc.footer(limited, "account") == "secondary"
    assert [(r.credential, r.answered) for r in sc.continued()] == [(sc.secondary, True)]
    not_resumed = [e for e in sc.events("requeued") if e["reason"] == "not resumed after swap"]
    assert not_resumed == []
    assert sc.done() == sorted(sc.keys)
    sc.assert_answered_once()
    assert [s["task"] for s in sc.saved_state()["sessions"]] == [None, None]
    events = sc.events()
    after = events[events.index(swap) :]
    assert {e["session"] for e in after if e["type"] == "dispatched"} == set(POOL)


# ----------------------------------------------------------------------------------------- API errors


def test_an_api_keys_429_after_the_cli_retries_swaps_once_and_no_error_is_done(
    setup: Setup,
) -> None:
    sc = setup("api_key", agents=2, max_retries=1)
    for key in ("alpha:a0", "beta:b0", "alpha:a1", "beta:b1"):
        sc.add(key)
    rate_limited = once(
        lambda: sc.api.behave(sc.primary, Behaviour("rate_limit", retry_after=0.2)),
        lambda: bool(sc.events("completed")),
    )
    engine = new_engine(sc.ws)
    sc.run(engine, lambda: sc.all_done() and settled(engine), timeout=90, during=rate_limited)

    swaps = sc.events("swap")
    sc.check(len(swaps) == 1, f"one swap expected, got {len(swaps)}")
    assert (swaps[0]["from_account"], swaps[0]["account"]) == ("primary", "secondary")
    retried = [r for r in sc.api.requests(sc.primary) if r.status == 429 and r.kind != "title"]
    assert len(retried) >= 2  # the CLI's own retry came first
    assert sc.done() == sorted(sc.keys)
    sc.assert_answered_once()  # none went to done/ on the error bullet
    assert sc.events("failed") == []


def test_a_529_the_cli_retries_away_neither_swaps_nor_gets_a_continue(
    setup: Setup,
) -> None:
    sc = setup("api_key", max_retries=3)
    sc.add("alpha:a0")
    sc.api.behave(sc.primary, Behaviour("overloaded", times=2, retry_after=0.2))
    engine = new_engine(sc.ws)
    sc.run(engine, lambda: sc.all_done() and settled(engine), timeout=60)

    statuses = [r.status for r in sc.api.requests(sc.primary) if r.kind != "title"]
    assert statuses[:3] == [529, 529, 200]  # recovered by the CLI itself
    unwanted = sc.events("swap", "quota_hit", "api_error", "requeued", "failed")
    sc.check(unwanted == [], f"no swap, api_error or requeue expected: {unwanted}")
    assert sc.continued() == []
    sc.assert_answered_once()


def test_a_final_500_gets_continue_and_the_task_is_done_without_a_swap(
    setup: Setup,
) -> None:
    sc = setup("api_key", max_retries=1)
    sc.add("alpha:a0")
    sc.api.behave(sc.primary, "server_error")
    back_to_normal = once(lambda: sc.api.behave(sc.primary, "normal"), lambda: bool(sc.events("api_error")))
    engine = new_engine(sc.ws)
    sc.run(engine, lambda: sc.all_done() and settled(engine), timeout=60, during=back_to_normal)

    assert len(sc.events("api_error")) == 1
    unwanted = sc.events("swap", "quota_hit", "requeued", "failed")
    sc.check(unwanted == [], f"no swap or requeue expected: {unwanted}")
    assert [r.answered for r in sc.continued()] == [False, True]  # its command, then its answer
    sc.assert_answered_once()
    assert sc.footer("alpha:a0", "account") == "primary"


def test_a_401_restarts_the_session_once_and_never_swaps(setup: Setup) -> None:
    sc = setup("api_key", max_retries=1)  # the CLI retries a 401 too
    sc.add("alpha:a0")
    sc.api.behave(sc.primary, Behaviour("unauthorized", retry_after=0.2))
    logged_in_again = once(
        lambda: sc.api.behave(sc.primary, "normal"), lambda: bool(sc.events("auth_failed"))
    )
    engine = new_engine(sc.ws)
    sc.run(engine, lambda: sc.all_done() and settled(engine), timeout=60, during=logged_in_again)

    [auth] = sc.events("auth_failed")
    assert auth["account"] == "primary" and auth["task"] == "alpha:a0"
    [requeued] = sc.events("requeued")
    assert "auth failure" in requeued["reason"] and "session restarts" in requeued["reason"]
    runs = [e["session"] for e in sc.events("submitted")]
    assert runs == [POOL[0], POOL[0]]  # the restarted session ran it again
    unwanted = sc.events("swap", "quota_hit", "session_disabled", "failed")
    sc.check(unwanted == [], f"no swap expected: {unwanted}")
    sc.assert_answered_once()


# ------------------------------------------------------------------------------------- a dedicated session


def test_a_dedicated_session_idle_at_its_prompt_resumes_its_own_conversation_across_a_swap(
    setup: Setup, claude: Path
) -> None:
    sc = setup("oauth")
    ws = sc.ws
    vault = ws.root / "vault"
    vault.mkdir()
    for account in sc.rws.accounts:
        trust(account.home, [vault])
    name = "ccl-1-vault"
    ws.data["pool"]["dedicated"] = [{"name": name, "project": str(vault)}]
    ensure_links(ws.config())  # its conversation goes to the shared folder, where the swap looks for it
    agent = start_agent(ws.tmux, name, vault, sc.rws.account("primary"), claude)
    agent.submit("Remember the word vault.")
    agent.wait_for(lambda t: f"{ANSWER_PREFIX}Remember the word vault." in t and not spinning(t))
    own = conversation_dir(Path(ws.data["shared_dir"]), vault)
    [conversation] = [p.stem for p in own.glob("*.jsonl")]
    sc.api.behave(sc.primary, Behaviour("subscriber_limit", reset_in=240))
    sc.add("alpha:a0")
    engine = new_engine(ws)

    # The line cfo types, not the CLI's own "claude --resume <id>" hint when it exits.
    typed = re.compile(
        rf"CLAUDE_CONFIG_DIR={re.escape(str(sc.rws.account('secondary').home))} .*?--resume ([0-9a-f-]{{36}})"
    )

    def resumed() -> str | None:
        found = typed.search(ws.tmux.capture(name, 200).replace("\n", ""))
        return found[1] if found else None

    sc.run(engine, lambda: sc.all_done() and settled(engine) and resumed() is not None, timeout=90)

    [swap] = sc.events("swap")
    sc.check(name in swap["resumed"], f"{name} not resumed: {swap}")
    assert resumed() == conversation
    assert sc.footer("alpha:a0", "account") == "secondary"
    sc.assert_answered_once()
    # Back at its prompt under the second account, it goes on in the same conversation.
    agent.wait_for(lambda t: at_prompt(t) and not spinning(t), what=f"{name} resumed at its prompt")
    agent.submit("And now under the second account.")
    path = own / f"{conversation}.jsonl"
    wait_until(lambda: "Done: And now under the second account." in path.read_text(), timeout=30)
    assert [p.stem for p in own.glob("*.jsonl")] == [conversation]
    assert any(r.prompt == "And now under the second account." for r in sc.api.requests(sc.secondary))


# ----------------------------------------------------------------------------------------- a killed console


@pytest.fixture
def headless() -> Iterator[list[subprocess.Popen[bytes]]]:
    """The `cfo --no-ui` processes a test starts, each stopped with its group if the test leaves it running
    (as a service is: SIGTERM, which releases its locks; SIGKILL only if it does not go)."""
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)


def test_a_console_killed_mid_task_adopts_the_running_task_on_restart(
    setup: Setup, headless: list[subprocess.Popen[bytes]]
) -> None:
    sc = setup("api_key")
    key = "alpha:a0"
    sc.add(key, "mock: stream 6s")
    first = start_headless(sc.ws)
    headless.append(first)

    def streaming() -> bool:
        return any(r.kind == "tool_result" for r in sc.api.requests(sc.primary))

    try:
        wait_until(streaming, timeout=60, what="the task's answer streaming")
    except AssertionError as exc:
        raise AssertionError(f"{exc}{sc.report()}") from None
    os.killpg(first.pid, signal.SIGKILL)
    first.wait(timeout=10)
    assert sc.done() == []  # killed mid-task
    headless.append(start_headless(sc.ws))

    def released() -> bool:
        return sc.all_done() and sc.released_on_disk()

    try:
        wait_until(released, timeout=60, what="the task done after the restart and its session released")
    except AssertionError as exc:
        raise AssertionError(f"{exc}{sc.report()}") from None

    [recovered] = sc.events("recovered")
    assert recovered["task"] == key
    assert len(sc.events("dispatched")) == 1  # adopted, not run again
    assert sc.events("requeued") == []
    sc.assert_answered_once()


# ----------------------------------------------------------------------------------------- prefer_first

RESET_IN = 5.0


def test_prefer_first_returns_to_the_first_account_once_its_limit_has_reset(
    setup: Setup,
) -> None:
    sc = setup("oauth")
    sc.ws.data["quota"] = {"prefer_first": True, "reactivate_cooldown": "1s"}
    sc.add("alpha:a0")
    sc.api.behave(sc.primary, Behaviour("subscriber_limit", reset_in=RESET_IN))
    engine = new_engine(sc.ws)
    sc.run(engine, lambda: len(sc.events("swap")) >= 2, timeout=80)

    [hit] = [r for r in sc.api.requests(sc.primary) if r.status == 429 and r.kind == "prompt"]
    reset = int(hit.at + RESET_IN)  # the epoch the mock sent in anthropic-ratelimit-unified-reset
    away, back = sc.events("swap")[:2]
    assert (away["from_account"], away["account"]) == ("primary", "secondary")
    assert (back["from_account"], back["account"]) == ("secondary", "primary")
    assert cast(str, back["reason"]).startswith("back to primary")
    events = sc.events()
    [completed] = sc.events("completed")
    assert events.index(completed) < events.index(back)  # nothing was running: no task moved back
    # The CLI names the reset to the minute: cfo returns after it, within the minute it names.
    assert reset <= stamp(back) <= reset // 60 * 60 + 60 + 5
    assert sc.footer("alpha:a0", "account") == "secondary"
    assert engine.state.active_account == "primary"
