"""cfo driving the real Claude Code CLI against the mock API: the pipeline, and reading its screens."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import pytest

from engine import screen
from engine.tmux import LibtmuxClient
from tests.helpers import wait_until
from tests.integration.pipeline_support import new_engine, run_engine
from tests.realcli.driver import at_prompt, spinning, start_agent
from tests.realcli.homes import seed_home
from tests.realcli.mockapi import ANSWER_PREFIX, MockApi
from tests.realcli.workspace import RealWorkspace, answers_in, real_workspace

pytestmark = pytest.mark.realcli


@pytest.fixture
def rws(tmp_path: Path, tmux: LibtmuxClient, claude: Path, mock_api: MockApi) -> RealWorkspace:
    return real_workspace(tmp_path / "ws", tmux, claude, mock_api, projects=("alpha", "beta"))


def test_six_tasks_on_two_sessions_are_answered_and_done_once_each(rws: RealWorkspace) -> None:
    ws = rws.ws
    ran = ws.root / "ran.log"
    tasks = {f"{project}:{project[0]}{n}": project for project in ("alpha", "beta") for n in range(3)}
    for n, key in enumerate(tasks):
        project, task_id = key.split(":")
        body = f"Append {task_id} to the log.\nmock: bash echo {key} >> {ran}"
        ws.add_task(project, task_id, body, age=len(tasks) - n)
    engine = new_engine(ws)
    run_engine(engine, lambda: sum(len(ws.done(p)) for p in ("alpha", "beta")) == len(tasks), timeout=150)

    assert sorted(ran.read_text().split()) == sorted(tasks)  # each side effect exactly once
    events = ws.events()
    completed = {e["task"]: e for e in events if e["type"] == "completed"}
    assert sorted(completed) == sorted(tasks)
    assert {e["session"] for e in completed.values()} == {"ccl-auto-11", "ccl-auto-12"}
    assert not [e for e in events if e["type"] in ("failed", "requeued", "swap", "quota_hit")]
    for key, project in tasks.items():
        task_id = key.split(":")[1]
        footer = (ws.project(project) / ".agent-queue" / "done" / f"{task_id}.md").read_text()
        assert "account: primary" in footer and f"session: {completed[key]['session']}" in footer
    # The mock had answered each task before cfo called it done; the CLI writes the answer to the
    # conversation file a moment after it shows it.
    primary = rws.account("primary").credential
    first_lines = [f"[{key.split(':')[1]}.md] Append {key.split(':')[1]} to the log." for key in tasks]
    for key, first_line in zip(tasks, first_lines, strict=True):
        final = [r for r in rws.api.requests(primary) if r.kind == "tool_result" and r.prompt == first_line]
        assert len(final) == 1
        assert final[0].at < datetime.fromisoformat(completed[key]["ts"]).timestamp()
    conversations = Path(ws.data["shared_dir"]) / "projects"
    wait_until(
        lambda: all(answers_in(conversations).count(ANSWER_PREFIX + line) == 1 for line in first_lines),
        timeout=10,
        what="every answer in its conversation file",
    )
    assert rws.api.requests(rws.account("secondary").credential) == []


def test_cfo_screen_reads_the_prompt_after_a_finished_turn_as_idle(
    tmp_path: Path, tmux: LibtmuxClient, claude: Path, mock_api: MockApi
) -> None:
    project = tmp_path / "proj"
    project.mkdir()
    account = seed_home(tmp_path / "home", "primary", mock_api.url, trusted=[project])
    agent = start_agent(tmux, "live", project, account, claude)
    agent.submit("[t1.md] Say hello.\nSecond line of the task.")
    text = agent.wait_for(
        lambda t: f"{ANSWER_PREFIX}[t1.md] Say hello." in t and at_prompt(t) and not spinning(t),
        what="the answer and the turn's end",
    )
    reading = subprocess.run(
        [sys.executable, "-m", "cfo_tui.cli", "screen", "-"],
        input=text,
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(reading.stdout) == {"state": "idle", "stop": None, "reset_at": None, "pattern": None}
    assert screen.turn_ended(text)
