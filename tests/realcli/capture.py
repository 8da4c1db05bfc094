"""Captures the real Claude Code CLI's screens and conversations in each situation cfo has to read.

Run `python -m tests.realcli.capture OUTDIR` (the CLI from $CFO_REAL_CLAUDE or the install script's cache):
it drives the pinned CLI against the mock API on a private tmux server and writes `panes/<name>.txt`
(`tmux capture-pane -p`), `transcripts/<name>.jsonl` (the conversation, where there is one) and
`captures.json`: per capture, what it shows, when it was taken (reset times on screen are relative to
that) and the reading the shared notes on the real CLI imply for it.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from engine.tmux import LibtmuxClient
from tests.helpers import wait_until
from tests.realcli.driver import Agent, at_prompt, claude_path, spinning, start_agent
from tests.realcli.homes import VERSION, Account, AuthMode, seed_home
from tests.realcli.mockapi import ANSWER_PREFIX, Behaviour, Kind, MockApi

SETTLE = 1.0  # a screen unchanged this long is what a reader of it would see
LONG_TASK = "[t2.md] A longer task body.\n" + "\n".join(
    f"Line {n}: please do item {n} carefully." for n in range(1, 40)
)


def finished(text: str) -> bool:
    """The turn is over: the box is back and no spinner is up."""
    return at_prompt(text) and not spinning(text)


@dataclass
class Lab:
    """A private tmux server, the mock and a folder of projects and homes; captures go to `out`."""

    out: Path
    claude: Path
    root: Path
    tmux: LibtmuxClient
    api: MockApi
    index: list[dict[str, Any]] = field(default_factory=list)
    began: float = field(default_factory=time.monotonic)

    def project(self, name: str) -> Path:
        project = self.root / f"p-{name}"
        project.mkdir(parents=True, exist_ok=True)
        return project

    def home(
        self, name: str, project: Path, auth: AuthMode = "api_key", max_retries: int | None = None
    ) -> Account:
        return seed_home(self.root / f"home-{name}", name, self.api.url, auth, [project], max_retries)

    def start(
        self, name: str, behaviour: Behaviour, auth: AuthMode = "api_key", max_retries: int | None = None
    ) -> Agent:
        """A fresh account and project for one capture, answered as `behaviour` says, the CLI started."""
        project = self.project(name)
        account = self.home(name, project, auth, max_retries)
        self.api.behave(account.credential, behaviour)
        return start_agent(self.tmux, name, project, account, self.claude)

    def settled(self, agent: Agent, predicate: Callable[[str], bool], what: str, timeout: float = 60) -> str:
        """Wait for `predicate`, then until the screen stops changing."""
        agent.wait_for(predicate, timeout=timeout, what=what)
        last, since = agent.capture(), time.monotonic()
        while time.monotonic() - since < SETTLE:
            time.sleep(0.1)
            now = agent.capture()
            if now != last:
                last, since = now, time.monotonic()
        return last

    def save(
        self, name: str, agent: Agent, text: str, shows: str, state: str, stop: str | None, **extra: Any
    ) -> None:
        (self.out / "panes" / f"{name}.txt").write_text(text, encoding="utf-8")
        entry: dict[str, Any] = {
            "name": name,
            "shows": shows,
            "captured_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "pane": f"panes/{name}.txt",
            "transcript": None,
            "expected": {"state": state, "stop": stop, **extra},
            # What the CLI asked of the mock for this account so far: its retries, its title request.
            "requests": [f"{r.kind} {r.status}" for r in self.api.requests(agent.account.credential)],
        }
        conversation = agent.conversation()
        if conversation is not None:
            shutil.copyfile(conversation, self.out / "transcripts" / f"{name}.jsonl")
            entry["transcript"] = f"transcripts/{name}.jsonl"
        self.index.append(entry)
        print(f"captured {name} ({time.monotonic() - self.began:.1f}s)", file=sys.stderr)

    def stop(self, agent: Agent) -> None:
        self.tmux.kill_session(agent.session)


def basic_turn(lab: Lab) -> None:
    """One agent from start to /exit: idle start, spinner, finished turn, exit; then a 40-line paste."""
    agent = lab.start("basic", Behaviour())
    lab.save("idle_start", agent, lab.settled(agent, at_prompt, "the prompt"), "a fresh start", "idle", None)
    agent.submit("[t1.md] Say hello.\nSecond line of the task.\nmock: stream 8s")
    agent.wait_for(spinning, what="the spinner")
    time.sleep(3)  # past the first seconds, when the spinner line gains its details
    lab.save("working_spinner", agent, agent.capture(), "a turn streaming its answer", "working", None)
    text = lab.settled(agent, lambda t: finished(t) and ANSWER_PREFIX in t, "the turn's end")
    lab.save("turn_finished", agent, text, "the prompt after a finished turn", "idle", None)
    agent.type_line("/exit")
    text = lab.settled(agent, lambda t: "claude --resume" in t, "the resume hint after /exit")
    lab.save("after_exit", agent, text, "the shell after /exit", "unknown", None)
    lab.stop(agent)
    agent = lab.start("paste", Behaviour())
    agent.paste(LONG_TASK)
    text = lab.settled(agent, lambda t: "[Pasted text #1" in t, "the paste marker")
    shows = "a 40-line paste in the box, before Enter"
    lab.save("paste_40_lines", agent, text, shows, "idle", None, paste_pending=True)
    lab.stop(agent)


def overage(reason: str) -> Behaviour:
    """A subscriber refused for want of usage credits (no limit claimed), for the reason given."""
    headers = {
        "anthropic-ratelimit-unified-overage-status": "rejected",
        "anthropic-ratelimit-unified-overage-disabled-reason": reason,
    }
    return Behaviour("subscriber_limit", claim=None, headers=headers)


# name, behaviour, what it is, whether the limit line says when it resets
LIMITS: tuple[tuple[str, Behaviour, str, bool], ...] = (
    ("limit_session_menu", Behaviour("subscriber_limit", claim="five_hour"), "the session limit", True),
    ("limit_weekly_menu", Behaviour("subscriber_limit", claim="seven_day"), "the weekly limit", True),
    ("limit_opus_menu", Behaviour("subscriber_limit", claim="seven_day_opus"), "the Opus limit", True),
    ("limit_sonnet_menu", Behaviour("subscriber_limit", claim="seven_day_sonnet"), "the Sonnet limit", True),
    ("limit_out_of_credits_menu", overage("out_of_credits"), "no usage credits left", True),
    ("limit_spend_cap_menu", overage("org_spend_cap_reached"), "the org's monthly spend limit", False),
)


def subscriber_limits(lab: Lab) -> None:
    """A subscriber's 429 with the unified headers: the limit line, then the menu the CLI opens itself."""
    for name, behaviour, what, resets in LIMITS:
        agent = lab.start(name, replace(behaviour, reset_in=2 * 3600), "oauth")
        agent.submit(f"[{name}.md] Task that will hit {what}.")
        text = lab.settled(
            agent, lambda t: "Enter to confirm" in t or (finished(t) and "⎿" in t), "the limit"
        )
        reset = "on screen" if resets else None
        lab.save(name, agent, text, f"{what}, the menu open", "menu", "quota", reset=reset)
        lab.stop(agent)


def api_errors(lab: Lab) -> None:
    """Errors that end a turn as an `API Error` answer bullet (or an auth line) after the CLI's retries."""
    cases: tuple[tuple[str, Behaviour, AuthMode, str, str], ...] = (
        ("apikey_429_after_retries", Behaviour("rate_limit"), "api_key", "quota", "an API key's 429"),
        ("throttle_429", Behaviour("throttle"), "oauth", "server_error", "a subscriber's 429 without limit"),
        ("server_500_after_retries", Behaviour("server_error"), "api_key", "server_error", "500"),
        ("overloaded_529_after_retries", Behaviour("overloaded"), "api_key", "server_error", "529"),
        ("auth_401_apikey", Behaviour("unauthorized"), "api_key", "auth", "401 with an API key"),
        ("auth_401_oauth", Behaviour("unauthorized"), "oauth", "auth", "401 with a subscriber token"),
    )
    for name, behaviour, auth, stop, what in cases:
        agent = lab.start(name, behaviour, auth, max_retries=2)
        agent.submit(f"[{name}.md] Task that will hit {what}.")
        text = lab.settled(agent, lambda t: finished(t) and ("API Error" in t or "⎿" in t), "the error")
        lab.save(name, agent, text, f"{what}, the turn ended by it", "idle", stop)
        lab.stop(agent)


def retries(lab: Lab) -> None:
    """The CLI's own retry spinner, before and at its last attempt, and a 529 its retries get past."""
    spinners: tuple[tuple[str, Kind, int], ...] = (
        ("apikey_429_retrying", "rate_limit", 3),
        ("apikey_429_retrying_last", "rate_limit", 1),
        ("overloaded_529_retrying", "overloaded", 3),
        ("overloaded_529_retrying_last", "overloaded", 1),
    )
    for name, kind, attempts in spinners:
        # A long retry-after keeps the retry spinner on screen to be captured.
        agent = lab.start(name, Behaviour(kind, retry_after=30), max_retries=attempts)
        agent.submit(f"[{name}.md] Task that the API keeps refusing.")
        # Not settled: the spinner counts the seconds down.
        text = agent.wait_for(lambda t: "Retrying in" in t, timeout=60, what="the retry spinner")
        shows = f"{kind} retried by the CLI, attempt 1 of {attempts}"
        lab.save(name, agent, text, shows, "working", None)
        lab.stop(agent)
    name = "overloaded_529_recovered"
    agent = lab.start(name, Behaviour("overloaded", times=2), max_retries=3)
    agent.submit(f"[{name}.md] Task whose first two requests are overloaded.")
    text = lab.settled(agent, lambda t: finished(t) and ANSWER_PREFIX in t, "the answer after retries")
    lab.save(name, agent, text, "529 twice, then the answer: the CLI's retries got through", "idle", None)
    lab.stop(agent)


def resumed_cut_off(lab: Lab) -> None:
    """A turn killed before any answer, resumed under another account sharing the conversations."""
    name = "resumed_cut_off"
    project = lab.project(name)
    first, second = lab.home(f"{name}_a", project), lab.home(f"{name}_b", project)
    shared = lab.root / "shared-projects"
    shared.mkdir()
    for account in (first, second):
        (account.home / "projects").symlink_to(shared)  # as cfo links every home's conversations
    lab.api.behave(first.credential, Behaviour("slow", chunk_delay=600))
    agent = start_agent(lab.tmux, f"{name}-a", project, first, lab.claude)
    agent.submit(f"[{name}.md] Reply with one short sentence about number 3.\nSecond line of the task.")
    agent.wait_for(spinning, what="the turn started")
    wait_until(
        lambda: any(r.kind == "prompt" for r in lab.api.requests(first.credential)),
        timeout=20,
        what="the turn's request",
    )
    lab.stop(agent)  # as a swap that restarts the session cuts a turn off
    conversation = agent.conversation()
    assert conversation is not None, "the cut-off turn left no conversation"
    resumed = start_agent(lab.tmux, f"{name}-b", project, second, lab.claude, resume=conversation.stem)
    text = lab.settled(resumed, at_prompt, "the resumed prompt")
    lab.save(name, resumed, text, "a resumed conversation whose last turn had no answer", "idle", None)
    lab.stop(resumed)


SCENARIOS: tuple[Callable[[Lab], None], ...] = (
    basic_turn,
    subscriber_limits,
    api_errors,
    retries,
    resumed_cut_off,
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.realcli.capture", description=__doc__)
    parser.add_argument("outdir", type=Path)
    args = parser.parse_args(argv)
    claude = claude_path()
    if not os.access(claude, os.X_OK):
        print(f"no Claude Code CLI at {claude}: run scripts/install-realcli.sh", file=sys.stderr)
        return 1
    out: Path = args.outdir
    for folder in ("panes", "transcripts"):
        shutil.rmtree(out / folder, ignore_errors=True)
        (out / folder).mkdir(parents=True)
    root = Path(tempfile.mkdtemp(prefix="cfo-capture-"))
    # What the tmux server and so every CLI inherit: a home of their own, a plain shell, UTC clock times.
    for name in [n for n in os.environ if n.startswith(("ANTHROPIC_", "CLAUDE_"))] + ["TMUX"]:
        os.environ.pop(name, None)
    os.environ.update(HOME=str(root), SHELL="/bin/sh", TZ="UTC")
    tmux = LibtmuxClient(socket_name=f"cfo-capture-{os.getpid()}-{uuid.uuid4().hex[:6]}")
    try:
        # A server whose last session ends exits, racing the next capture's new session: one stays up.
        tmux.new_session("keep", root, command=["/bin/sh"])
        with MockApi() as api:
            lab = Lab(out, claude, root, tmux, api)
            for scenario in SCENARIOS:
                scenario(lab)
            index = {"claude_code": VERSION, "size": "120x40", "captures": lab.index}
            (out / "captures.json").write_text(json.dumps(index, indent=2) + "\n", encoding="utf-8")
    finally:
        tmux.kill_server()
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
