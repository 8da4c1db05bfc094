"""Real-CLI benchmark: the pinned Claude Code CLI against the mock API, `cfo --no-ui` as a separate process;
the last stdout line is one JSON object.

Measures:
- completion detection: the turn's end as the CLI records it (its `turn_duration` transcript record) ->
  the `completed` event, p50/p99 over 20 one-answer tasks on 2 sessions, with the Stop hook and without.
  The CLI at times loses that record at the /exit that follows the turn; those tasks are left out of
  `*_detect_*`, and `*_after_answer_*` gives the same measure for every task from the moment the mock
  finished sending the answer (a few milliseconds before the CLI ends its turn);
- a swap of 4 sessions, every one at work and one of them streaming a healthy answer, when account A's
  subscriber limit comes (the three others meet it on their next request): the first limit response ->
  every session working under B (its resumed request reached the mock with B's credential) or done, with
  the healthy turn completed once on A. Repeated SWAP_RUNS times; each run says what happened. Beside it,
  what the engine adds per session: its own limit response -> its resumed request under B.
Needs the CLI: scripts/install-realcli.sh, or CFO_REAL_CLAUDE.

Run: .venv/bin/python benchmarks/realcli.py
"""

from __future__ import annotations

import json
import os
import re
import statistics
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

# pipeline.py beside it, and the mock and the seeded homes of the real-CLI test lane.
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pipeline import Run, pct, wait

from tests.realcli.driver import ARGS, claude_path
from tests.realcli.homes import AuthMode, seed_home
from tests.realcli.mockapi import Behaviour, MockApi

DETECT_TASKS = 20
DETECT_SESSIONS = 2
SWAP_SESSIONS = 4
SWAP_RUNS = 3
WATCHER_INTERVAL = "1s"  # cfo's default
MARKER = re.compile(r"\[(?P<id>[A-Za-z0-9-]+)\.md\]")


def stamp(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


class RealRun(Run):
    """A `Run` whose agents are the real CLI, its two accounts seeded for the mock."""

    def __init__(self, name: str, agents: int, api: MockApi, auth: AuthMode, **config: Any) -> None:
        super().__init__(name, agents, **config)
        self.api = api
        self.data["agent"].update(command=str(claude_path()), args=list(ARGS), prompt_timeout="30s")
        folders = [self.ws.projects_dir, self.project]
        self.accounts = [
            seed_home(Path(a["home"]), a["name"], api.url, auth, folders) for a in self.data["accounts"]
        ]
        self.ran = self.root / "ran.log"

    def credential(self, index: int) -> str:
        return self.accounts[index].credential

    def conversations(self) -> dict[str, list[dict[str, Any]]]:
        """Each task's conversation records, by the `[<id>.md]` of its prompt. The file is searched whole:
        the CLI writes records out of order, and at times not the prompt's at all before /exit."""
        found: dict[str, list[dict[str, Any]]] = {}
        for path in (self.root / "shared" / "projects").rglob("*.jsonl"):
            text = path.read_text()
            match = MARKER.search(text)
            if match:
                records = [json.loads(line) for line in text.splitlines() if line.strip()]
                found.setdefault(match["id"], []).extend(records)
        return found

    def turn_ends(self) -> dict[str, float]:
        """When each task's (last) turn ended as its conversation records it: the `turn_duration` record
        written right after the answer, or the answer itself where that record was never written."""
        ends = {}
        for task_id, records in self.conversations().items():
            marks = [
                stamp(r["timestamp"])
                for r in records
                if r.get("subtype") == "turn_duration" or r.get("type") == "assistant"
            ]
            if marks:
                ends[task_id] = max(marks)
        return ends

    def answers_ended(self) -> dict[str, float]:
        """When the mock finished sending each task's answer (a turn that stopped has none)."""
        ends = {}
        for r in self.api.requests():
            match = MARKER.match(r.prompt)
            if r.answered and r.ended is not None and match:
                ends[match["id"]] = r.ended
        return ends

    def startups(self) -> list[float]:
        """Agent start-ups (typed -> prompt ready), seconds."""
        return [e["ready_at"] - e["typed_at"] for e in self.events() if e["type"] == "submitted"]


def bench_detection(hook: bool) -> dict[str, Any]:
    name = "hook" if hook else "nohook"
    with MockApi() as api:
        run = RealRun(
            f"real-{name}",
            DETECT_SESSIONS,
            api,
            "api_key",
            agent__install_stop_hook=hook,
            watcher__interval=WATCHER_INTERVAL,
        )
        try:
            run.start()
            wait(lambda: run.idle_sessions() == DETECT_SESSIONS, 90, "pool ready")
            time.sleep(1.5)  # steady state: the file watch is up
            for r in range(DETECT_TASKS // DETECT_SESSIONS):
                for i in range(DETECT_SESSIONS):
                    run.put(f"{name}-{r}-{i}", f"Benchmark task {r}-{i}: say done.\n")
                expected = (r + 1) * DETECT_SESSIONS

                def round_done() -> bool:
                    return run.done() == expected and run.idle_sessions() == DETECT_SESSIONS  # noqa: B023

                wait(round_done, 120, "tasks")
            completed = {
                e["task"].split(":")[1]: stamp(e["ts"]) for e in run.events() if e["type"] == "completed"
            }
            ends = run.turn_ends()
            detect = [(at - ends[t]) * 1000 for t, at in completed.items() if t in ends]
            answered = run.answers_ended()
            after_answer = [(at - answered[t]) * 1000 for t, at in completed.items() if t in answered]
            return {
                f"{name}_detect_ms_p50": round(pct(detect, 50), 1),
                f"{name}_detect_ms_p99": round(pct(detect, 99), 1),
                f"{name}_detect_tasks": len(detect),
                f"{name}_after_answer_ms_p50": round(pct(after_answer, 50), 1),
                f"{name}_after_answer_ms_p99": round(pct(after_answer, 99), 1),
                f"{name}_after_answer_tasks": len(after_answer),
                f"{name}_agent_startup_s_p50": round(pct(run.startups(), 50), 2),
            }
        finally:
            run.stop()


def swap_once(attempt: int) -> dict[str, Any]:
    """One swap of SWAP_SESSIONS busy sessions; what happened, and its seconds when it went as designed."""
    with MockApi() as api:
        run = RealRun(
            f"real-swap{attempt}",
            SWAP_SESSIONS,
            api,
            "oauth",
            agent__install_stop_hook=True,
            watcher__interval=WATCHER_INTERVAL,
        )
        a, b = run.credential(0), run.credential(1)
        healthy = "healthy"
        limited = [f"limited-{n}" for n in range(1, SWAP_SESSIONS)]
        first_lines = {t: f"[{t}.md] Task {t}." for t in [healthy, *limited]}
        try:
            run.start()
            wait(lambda: run.idle_sessions() == SWAP_SESSIONS, 90, "pool ready")
            time.sleep(1.5)
            # The healthy answer streams well past the limit; the others sleep in their second command, so
            # the limit meets them on the request that follows it.
            run.put(healthy, f"Task {healthy}.\nmock: bash echo {healthy} >> {run.ran}\nmock: stream 5s\n")
            for task in limited:
                run.put(task, f"Task {task}.\nmock: bash echo {task} >> {run.ran}\nmock: bash sleep 3\n")

            def at_work(task: str) -> bool:
                return any(r.kind == "tool_result" and r.prompt == first_lines[task] for r in api.requests(a))

            wait(lambda: all(at_work(t) for t in first_lines), 90, "every session at work")
            api.behave(a, Behaviour("subscriber_limit", reset_in=3600))
            wait(lambda: run.done() == len(first_lines), 90, "every task done")
            return swap_outcome(run, a, b, healthy, limited, first_lines)
        finally:
            run.stop()


def swap_outcome(
    run: RealRun, a: str, b: str, healthy: str, limited: list[str], first_lines: dict[str, str]
) -> dict[str, Any]:
    api = run.api
    limits = [r.at for r in api.requests(a) if r.status == 429 and r.kind != "title"]
    quota_at = min(limits)
    under_b = {
        t: min((r.at for r in api.requests(b) if r.prompt == first_lines[t]), default=None) for t in limited
    }
    completed = [e for e in run.events() if e["type"] == "completed"]
    healthy_done = [e for e in completed if e["task"].endswith(f":{healthy}")]
    answers = [r.prompt for r in api.requests() if r.answered]
    swaps = [e for e in run.events() if e["type"] == "swap"]
    ran = sorted(run.ran.read_text().split()) if run.ran.exists() else []
    resumed = [at for at in under_b.values() if at is not None]
    # What the engine itself adds for each session: its own limit response -> its resumed request under B
    # (detection, the agent's restart and start-up, the continuation sent); the rest of `seconds` is the
    # wait for each session to reach its next request on A, which the workload decides.
    own_limit = {
        t: min(
            (r.at for r in api.requests(a) if r.status == 429 and r.prompt == first_lines[t]), default=None
        )
        for t in limited
    }
    per_session = []
    for t, hit in own_limit.items():
        resumed_at = under_b[t]
        if hit is not None and resumed_at is not None:
            per_session.append(resumed_at - hit)
    healthy_at = [stamp(e["ts"]) for e in healthy_done]
    as_designed = len(resumed) == len(limited) and len(healthy_done) == 1
    return {
        "seconds": round(max(resumed + healthy_at) - quota_at, 2) if as_designed else None,
        "last_limited_working_under_b_s": round(max(resumed) - quota_at, 2) if resumed else None,
        "healthy_done_s": round(healthy_at[0] - quota_at, 2) if healthy_at else None,
        "own_limit_to_under_b_s": sorted(round(x, 2) for x in per_session),
        "swaps": len(swaps),
        "swap_event_duration_s": swaps[0]["duration"] if swaps else None,
        "resumed_by_the_swap": len(swaps[0]["resumed"]) if swaps else 0,
        "moved_alone_after_it": sum(1 for e in run.events() if e["type"] == "moved"),
        "not_resumed_under_b": sorted(t for t, at in under_b.items() if at is None),
        "healthy_completed": [(e["account"], e["reason"]) for e in healthy_done],
        "tasks_not_answered_once": sorted(t for t, line in first_lines.items() if answers.count(line) != 1),
        "side_effects_once": ran == sorted(first_lines),
    }


def main() -> None:
    for name in list(os.environ):  # only the seeded settings.json speak to the CLI
        if name.startswith(("ANTHROPIC_", "CLAUDE_")):
            del os.environ[name]
    if not os.access(claude_path(), os.X_OK):
        raise SystemExit(f"benchmark: no Claude Code CLI at {claude_path()} (run scripts/install-realcli.sh)")
    started = time.monotonic()
    result: dict[str, Any] = {"watcher_interval": WATCHER_INTERVAL}
    for hook in (True, False):
        result.update(bench_detection(hook))
        print(json.dumps(result), file=sys.stderr)
    runs = []
    for attempt in range(SWAP_RUNS):
        runs.append(swap_once(attempt))
        print(json.dumps(runs[-1]), file=sys.stderr)
    timed = [r["seconds"] for r in runs if r["seconds"] is not None]
    result["swap4_seconds_median"] = round(statistics.median(timed), 2) if timed else None
    result["swap4_runs_as_designed"] = f"{len(timed)}/{SWAP_RUNS}"
    moves = [x for r in runs for x in r["own_limit_to_under_b_s"]]
    result["swap4_own_limit_to_under_b_s_p50"] = round(pct(moves, 50), 2) if moves else None
    result["swap4_own_limit_to_under_b_s_max"] = max(moves) if moves else None
    result["swap4_runs"] = runs
    result["seconds"] = round(time.monotonic() - started, 1)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
