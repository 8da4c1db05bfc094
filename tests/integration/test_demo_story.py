"""`cfo demo --no-ui` tells its story end to end on real tmux: a failover mid-task resumed in its own
conversation, a 529 burst that does not swap, a bad file in failed/, the return to the first account."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from engine.agentpaths import project_folder_name
from engine.workspace import FIRST, SECOND, Story
from tests.integration.test_headless_stops import run_plain_demo

pytestmark = pytest.mark.integration

# The limit names its reset to the second (the older CLI's `…|<epoch>` wording), so the story need not
# wait for a whole minute: the reset comes 25 s after the limit, once the 529 burst (its back-off is the
# engine's 10 s) is over, and the run takes about 45 s.
STORY = Story(limit_message="Claude AI usage limit reached|{epoch}", reset_after=25)
RUN = f"""
import sys
from cfo_tui.demo import run_demo
from engine.workspace import Story
story = Story(limit_message={STORY.limit_message!r}, reset_after={STORY.reset_after!r})
sys.exit(run_demo(headless=True, keep=True, story=story))
"""


@dataclass
class Told:
    """What a finished demo left: its exit status, its log, its kept workspace and events."""

    status: int
    log: str
    root: Path
    socket: str
    events: list[dict[str, Any]]

    def of(self, kind: str, task: str | None = None) -> list[dict[str, Any]]:
        return [e for e in self.events if e["type"] == kind and (task is None or e.get("task") == task)]

    def queue(self, project: str, folder: str) -> list[str]:
        return sorted(os.listdir(self.root / "src" / project / ".agent-queue" / folder))

    def conversations(self, project: str, task_id: str) -> list[list[dict[str, Any]]]:
        """Every conversation of the project that opened with the task's prompt, records in file order."""
        folder = self.root / "shared" / "projects" / project_folder_name(str(self.root / "src" / project))
        found = []
        for path in sorted(folder.glob("*.jsonl")):
            records = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
            prompts = [r for r in records if r.get("type") == "user"]
            if prompts and str(prompts[0]["message"]["content"]).startswith(f"[{task_id}.md]"):
                found.append(records)
        return found


def ts(event_or_record: dict[str, Any]) -> float:
    return datetime.fromisoformat(str(event_or_record.get("ts") or event_or_record["timestamp"])).timestamp()


def text(record: dict[str, Any]) -> str:
    content = record.get("message", {}).get("content")
    if isinstance(content, str):
        return content
    return " ".join(str(part.get("text", "")) for part in content or [] if isinstance(part, dict))


@pytest.fixture(scope="module")
def told(tmp_path_factory: pytest.TempPathFactory) -> Told:
    base = tmp_path_factory.mktemp("story")
    tmpdir, sockets, home = base / "tmp", base / "tmux", base / "home"
    for folder in (tmpdir, sockets, home):
        folder.mkdir()
    env = {**os.environ, "TMPDIR": str(tmpdir), "TMUX_TMPDIR": str(sockets), "HOME": str(home)}
    env.pop("TMUX", None)
    env.pop("CLAUDE_CONFIG_DIR", None)
    demo = subprocess.run(
        [sys.executable, "-c", RUN],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        env=env,
        timeout=180,
    )
    found = re.search(r"demo workspace: (\S+)\s+\(tmux -L (\S+) attach\)", demo.stderr)
    assert found, demo.stderr[-3000:]
    root = Path(found.group(1))
    lines = (root / "state" / "events.jsonl").read_text(encoding="utf-8").splitlines()
    return Told(demo.returncode, demo.stderr, root, found.group(2), [json.loads(line) for line in lines])


def test_the_story_is_told_to_its_end_and_the_demo_says_what_it_kept(told: Told) -> None:
    assert told.status == 0, told.log[-4000:]
    assert "Traceback" not in told.log
    assert re.search(r"demo: docs site:003-release-notes ran on primary: the story is over", told.log)
    assert f"demo: kept {told.root} (its agents' tmux server is stopped)" in told.log
    assert f"cfo status --config {told.root}/config.yaml" in told.log
    assert (told.root / "config.yaml").is_file()
    alive = subprocess.run(["tmux", "-L", told.socket, "list-sessions"], capture_output=True)
    assert alive.returncode != 0  # the tmux server the parting line says is stopped is stopped


def test_the_limit_swaps_once_and_the_task_resumes_in_its_own_conversation(told: Told) -> None:
    limit = STORY.limit_task
    [dispatched] = told.of("dispatched", limit.key)
    [hit] = told.of("quota_hit", limit.key)
    failover = told.of("swap")[0]
    assert (failover["from_account"], failover["account"]) == (FIRST, SECOND)
    assert failover["session"] == hit["session"] == dispatched["session"]  # its trigger
    assert failover["pattern"] and "usage limit reached" in failover["snippet"]
    assert dispatched["session"] in failover["resumed"]
    [completed] = told.of("completed", limit.key)
    assert completed["account"] == SECOND
    # One conversation, begun on the first account and finished on the second: the limit record, then
    # `continue` and the rest of the task, not the task started again from scratch.
    [conversation] = told.conversations(limit.project, limit.id)
    texts = [text(r) for r in conversation if r.get("type") in ("user", "assistant")]
    stop = texts.index(next(text(r) for r in conversation if r.get("apiErrorStatus") == 429))
    assert texts[0].startswith(f"[{limit.id}.md]") and texts.count(texts[0]) == 1
    assert texts[stop + 1 :] == ["continue", "Working on: continue", "Done: continue"]
    ledger = told.root / "src" / limit.project / "exports" / "ledger.csv"
    assert ledger.read_text().splitlines() == ["first half", "second half"]
    # Every session of the exhausted account met the limit: any run still there moved alone, no new swap.
    assert all(e["account"] == SECOND and e["from_account"] == FIRST for e in told.of("moved"))


def test_a_529_burst_outside_the_cooldown_does_not_swap(told: Told) -> None:
    flaky = STORY.flaky_task.key
    [failover, _] = told.of("swap")
    [dispatched] = told.of("dispatched", flaky)
    assert ts(dispatched) >= ts(failover) + STORY.cooldown  # a swap could have happened then
    [error] = told.of("api_error", flaky)
    assert "529 Overloaded" in error["reason"]
    [completed] = told.of("completed", flaky)
    assert completed["account"] == SECOND  # finished where it ran: the pool did not move for it
    assert not [e for e in told.of("swap") if ts(error) <= ts(e) <= ts(completed)]
    assert not [e for e in told.of("quota_hit") if e.get("task") == flaky]


def test_the_bad_file_fails_cleanly_with_its_reason(told: Told) -> None:
    project, name = STORY.bad_file
    [failed] = told.of("failed", f"{project}:{name.removesuffix('.md')}")
    assert failed["reason"].startswith("invalid YAML frontmatter")
    assert name in told.queue(project, "failed")
    assert (
        "invalid YAML frontmatter"
        in (told.root / "src" / project / ".agent-queue" / "failed" / name).read_text()
    )
    assert not [n for n in told.queue(project, "inbox") if n.startswith(name)]


def test_the_pool_returns_to_the_first_account_once_its_limit_has_reset(told: Told) -> None:
    [failover, back] = told.of("swap")
    assert (back["from_account"], back["account"]) == (SECOND, FIRST)
    assert back["reason"].startswith(f"back to {FIRST}") and back.get("session") is None  # not a limit
    reset = int(re.findall(r"\|(\d+)", str(failover["snippet"]))[0])
    assert ts(back) >= reset
    [last] = told.of("completed", STORY.last_task.key)
    assert last["account"] == FIRST and ts(last) > ts(back)


def test_every_good_task_is_done_exactly_once_and_only_after_its_agent_finished(told: Told) -> None:
    for task in STORY.good_tasks:
        [completed] = told.of("completed", task.key)
        assert told.queue(task.project, "done").count(f"{task.id}.md") == 1, task.key
        assert not told.of("requeued", task.key) and not told.of("failed", task.key)
        [conversation] = told.conversations(task.project, task.id)  # a moved task kept its conversation
        answers = [r for r in conversation if r.get("type") == "assistant"]
        assert text(answers[-1]).startswith("Done:"), task.key
        assert ts(answers[-1]) <= ts(completed) + 0.01, task.key  # not reported before it was done
    for project in ("webapp", "billing-api", "docs site"):
        assert [n for n in told.queue(project, "inbox") if not n.startswith(".")] == []


def test_each_step_of_the_story_is_in_the_log_after_what_caused_it(told: Told) -> None:
    log = told.log

    def at(step: str, after: int = 0) -> int:
        found = re.compile(step).search(log, after)
        assert found, f"{step!r} not in the log after position {after}:\n{log[after:][:3000]}"
        return found.start()

    hit = at(r" quota_hit session=\S+ task=billing-api:003-export-ledger account=primary")
    at(r"demo: primary hit its limit in billing-api:003-export-ledger", hit)
    failover = at(r" swap session=\S+ account=secondary reason=quota", hit)
    at(r"demo: the pool is on secondary now: .*own conversation: .*billing-api:003-export-ledger", failover)
    resumed = at(r" completed session=\S+ task=billing-api:003-export-ledger account=secondary", failover)
    error = at(r" api_error session=\S+ task=billing-api:004-retry-webhooks reason=API Error: 529", resumed)
    at(r"demo: billing-api:004-retry-webhooks: 529 Overloaded; .*no swap", error)
    bad = at(r" failed task=webapp:003-rename-settings reason=invalid YAML frontmatter", resumed)
    at(r"demo: webapp:003-rename-settings went to failed/: invalid YAML frontmatter", bad)
    flaky = at(r" completed session=\S+ task=billing-api:004-retry-webhooks account=secondary", error)
    back = at(r" swap account=primary reason=back to primary\b", max(flaky, bad))
    at(r"demo: primary's limit has reset", back)
    last = at(r" completed session=\S+ task=docs site:003-release-notes account=primary", back)
    at(r"demo: docs site:003-release-notes ran on primary: the story is over", last)


def test_the_parting_line_of_a_demo_not_kept_says_its_workspace_and_server_are_gone(tmp_path: Path) -> None:
    demo = run_plain_demo(tmp_path, agents=1, tasks=1)
    root, socket, env = demo.root, demo.socket, demo.env
    last = demo.stderr.strip().splitlines()[-1]
    assert last == f"demo: removed {root} and stopped its tmux server (--keep keeps the workspace)"
    assert not root.exists()
    alive = subprocess.run(["tmux", "-L", socket, "list-sessions"], capture_output=True, env=env)
    assert alive.returncode != 0


def test_demo_refuses_a_config_file_with_one_clear_line() -> None:
    demo = subprocess.run(
        [sys.executable, "-m", "cfo_tui.cli", "demo", "--config", "/nonexistent/cfo.yaml"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert demo.returncode == 2
    assert demo.stderr.strip() == (
        "cfo: demo: --config is not used: the demo builds its own throw-away config (--keep keeps it)"
    )


def test_demo_help_says_what_the_demo_shows() -> None:
    shown = subprocess.run(
        [sys.executable, "-m", "cfo_tui.cli", "demo", "--help"], capture_output=True, text=True, timeout=30
    ).stdout
    flat = " ".join(shown.split())
    for words in ("session limit", "fails over", "own conversation", "529", "failed/", "goes back"):
        assert words in flat
    assert "--config PATH refused: the demo writes its own config" in flat
