"""Pipeline benchmark on real tmux with the simulated agent; the last stdout line is one JSON object.

Measures, with `cfo --no-ui` as a separate process:
- dispatch overhead: task renamed into an inbox with an idle session waiting -> message pasted, minus
  the agent's start-up (typed -> prompt ready), which is reported apart; single tasks, and bursts of
  one task per idle session whose launches run in parallel;
- completion-detection latency: the agent's turn ends -> `completed` event (task in done/);
- tasks per minute with 1-second tasks on 4 sessions;
- the engine's CPU% and RSS with 20 and 50 idle sessions (agents sitting at their prompt);
- the same batch figures without the Stop hook (the default configuration: the panes are watched);
- dispatch, detection, throughput and idle CPU for a seed-like configuration (30 s watcher poll, no Stop
  hook), and each as a ratio to ours.

Run: .venv/bin/python benchmarks/pipeline.py
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from engine.tmux import LibtmuxClient
from engine.workspace import agent_command, build_workspace

AGENTS = 4
CLK_TCK = os.sysconf("SC_CLK_TCK")


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def wait(predicate: Callable[[], Any], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise SystemExit(f"benchmark: timed out waiting for {what}")
        time.sleep(0.02)


class Run:
    """One workspace, one engine process."""

    def __init__(self, name: str, agents: int, **config: Any) -> None:
        self.root = Path(tempfile.mkdtemp(prefix=f"cfo-bench-{name}-"))
        self.ws = build_workspace(agents, tasks=0, root=self.root)
        self.data = self.ws.config
        self.data["pool"]["autonomous"].update(min=agents, max=agents)
        for key, value in config.items():
            section, field = key.split("__")
            self.data.setdefault(section, {})[field] = value
        self.tmux = LibtmuxClient(socket_name=self.ws.socket_name)
        self.project = self.ws.projects_dir / "webapp"
        self.inbox = self.project / ".agent-queue" / "inbox"
        self.ends = self.root / "ends"
        self.ends.mkdir()
        self.renamed: dict[str, float] = {}
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        config = self.root / "config.yaml"
        config.write_text(json.dumps(self.data))
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "cfo_tui.cli", "--no-ui", "--config", str(config)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=(self.root / "engine.log").open("wb"),
            start_new_session=True,
        )
        wait(lambda: self.count("started") == 1, 30, "engine start")

    def events(self) -> list[dict[str, Any]]:
        path = self.root / "state" / "events.jsonl"
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]

    def count(self, kind: str) -> int:
        return sum(1 for e in self.events() if e["type"] == kind)

    def drop(self, task_id: str, work: str = "1s") -> None:
        ends = self.ends / task_id
        self.put(task_id, f"Benchmark task {task_id}\nsim: work {work}\nsim: append {ends} end\n")

    def put(self, task_id: str, text: str) -> None:
        """Write the task outside the inbox, old enough to need no settle wait, then rename it in."""
        tmp = self.inbox / f".{task_id}.tmp"
        tmp.write_text(text)
        old = time.time() - 5
        os.utime(tmp, (old, old))
        self.renamed[task_id] = time.time()
        tmp.rename(self.inbox / f"{task_id}.md")

    def done(self) -> int:
        return sum(1 for _ in (self.project / ".agent-queue" / "done").iterdir())

    def idle_sessions(self) -> int:
        state = self.root / "state" / "state.json"
        try:
            sessions = json.loads(state.read_text()).get("sessions", [])
        except (OSError, ValueError):
            return 0
        return sum(1 for s in sessions if s.get("state") == "idle" and s.get("kind") == "pool")

    def cpu_seconds(self) -> float:
        assert self.proc is not None
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK

    def rss_mb(self) -> float:
        assert self.proc is not None
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def latencies(self) -> tuple[list[float], list[float], list[float]]:
        """(dispatch overheads ms, agent start-ups ms, detection latencies ms) from the event log."""
        overhead, startup, detect = [], [], []
        for e in self.events():
            task_id = str(e.get("task", "")).split(":")[-1]
            if e["type"] == "submitted" and task_id in self.renamed:
                boot = e["ready_at"] - e["typed_at"]
                startup.append(boot * 1000)
                overhead.append((e["pasted_at"] - self.renamed[task_id] - boot) * 1000)
            if e["type"] == "completed" and (self.ends / task_id).exists():
                ts = e["ts"].replace("Z", "+00:00")
                from datetime import datetime

                detect.append(
                    (datetime.fromisoformat(ts).timestamp() - (self.ends / task_id).stat().st_mtime) * 1000
                )
        return overhead, startup, detect

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout=30)
        self.tmux.kill_server()


def bench_fast() -> dict[str, float]:
    run = Run("fast", AGENTS, agent__install_stop_hook=True, watcher__interval="1s")
    try:
        run.start()
        wait(lambda: run.idle_sessions() == AGENTS, 30, "pool ready")
        time.sleep(1.5)  # steady state: the file watch is up (a file dropped before it is seen by a rescan)
        for i in range(12):  # one task at a time with every session idle: the dispatch path alone
            run.drop(f"single-{i:02d}")
            wait(lambda i=i: run.done() == i + 1 and run.idle_sessions() == AGENTS, 60, "single task")
        overhead, startup, _ = run.latencies()
        run.renamed.clear()
        for rnd in range(3):  # bursts: one task per idle session at once, launches in parallel
            for i in range(AGENTS):
                run.drop(f"burst-{rnd}-{i}")
            expected = 12 + (rnd + 1) * AGENTS
            wait(lambda n=expected: run.done() == n and run.idle_sessions() == AGENTS, 60, "burst")
        burst, _, _ = run.latencies()
        n = 40
        t0 = time.monotonic()
        before = run.done()
        for i in range(n):
            run.drop(f"bulk-{i:02d}")
        wait(lambda: run.done() == before + n, 120, "bulk tasks")
        minutes = (time.monotonic() - t0) / 60
        _, _, detect_bulk = run.latencies()
        return {
            "dispatch_overhead_ms_p50": round(pct(overhead, 50), 1),
            "dispatch_overhead_ms_p99": round(pct(overhead, 99), 1),
            "dispatch_overhead_burst_ms_p50": round(pct(burst, 50), 1),
            "dispatch_overhead_burst_ms_p99": round(pct(burst, 99), 1),
            "agent_startup_ms_p50": round(pct(startup, 50), 1),
            "detect_latency_ms_p50": round(pct(detect_bulk, 50), 1),
            "detect_latency_ms_p99": round(pct(detect_bulk, 99), 1),
            "tasks_per_minute": round(n / minutes, 1),
            "tasks_per_minute_sessions": AGENTS,
        }
    finally:
        run.stop()


def bench_batch(name: str, rounds: int, **config: Any) -> dict[str, float]:
    """Rounds of one 1-second task per idle session, dropped at once: dispatch, detection, throughput."""
    run = Run(name, AGENTS, **config)
    try:
        run.start()
        wait(lambda: run.idle_sessions() == AGENTS, 30, "pool ready")
        time.sleep(1.5)  # the file watch is up
        t0 = time.monotonic()
        for r in range(rounds):
            for i in range(AGENTS):
                run.drop(f"{name}-{r}-{i}")
            done = (r + 1) * AGENTS
            wait(lambda n=done: run.done() == n and run.idle_sessions() == AGENTS, 150, f"{name} tasks")
        tasks = rounds * AGENTS
        minutes = (time.monotonic() - t0) / 60
        overhead, _, detect = run.latencies()
        return {
            f"{name}_dispatch_overhead_ms_p50": round(pct(overhead, 50), 1),
            f"{name}_dispatch_overhead_ms_p99": round(pct(overhead, 99), 1),
            f"{name}_detect_latency_ms_p50": round(pct(detect, 50), 1),
            f"{name}_detect_latency_ms_p99": round(pct(detect, 99), 1),
            f"{name}_tasks_per_minute": round(tasks / minutes, 1),
        }
    finally:
        run.stop()


def bench_idle(sessions: int, measure: float = 10.0, prefix: str = "", **config: Any) -> dict[str, float]:
    """The engine's cost while `sessions` agents sit at their prompt (dedicated) and the pool idles."""
    run = Run(f"idle{sessions}{prefix}", 2, **{"agent__install_stop_hook": True, **config})
    command, args = agent_command()
    dedicated = []
    try:
        for i in range(sessions):
            name = f"ccl-{i + 1}-idle"
            project = run.root / "dedicated" / name
            project.mkdir(parents=True)
            home = Path(run.data["accounts"][0]["home"])
            run.tmux.new_session(
                name, project, command=[command, *args], env={"CLAUDE_CONFIG_DIR": str(home)}
            )
            dedicated.append({"name": name, "project": str(project)})
        run.data["pool"]["dedicated"] = dedicated
        wait(lambda: all("❯" in run.tmux.capture(d["name"], 10) for d in dedicated), 60, "agents at prompt")
        run.start()
        time.sleep(2)  # start-up work is not idle work
        c0, t0 = run.cpu_seconds(), time.monotonic()
        time.sleep(measure)
        cpu = (run.cpu_seconds() - c0) / (time.monotonic() - t0) * 100
        return {
            f"{prefix}idle_cpu_pct_{sessions}": round(cpu, 2),
            f"{prefix}rss_mb_{sessions}": round(run.rss_mb(), 1),
        }
    finally:
        run.stop()


def main() -> None:
    started = time.monotonic()
    result: dict[str, Any] = {}
    result.update(bench_fast())
    print(json.dumps(result), file=sys.stderr)
    # The default configuration without the Stop hook: detection by watching the panes alone.
    result.update(bench_batch("nohook", 3, agent__install_stop_hook=False, watcher__interval="1s"))
    # A seed-like configuration: every pane polled every 30 s, no hook.
    seed: dict[str, Any] = {"agent__install_stop_hook": False, "watcher__interval": "30s"}
    result.update(bench_batch("seed", 1, **seed))
    for n in (20, 50):
        result.update(bench_idle(n))
    result.update(bench_idle(20, prefix="seed_", **seed))
    result["rss_mb"] = max(result["rss_mb_20"], result["rss_mb_50"])
    ratios = {
        "detect_latency_ms_p50": "seed_detect_latency_ms_p50",
        "dispatch_overhead_burst_ms_p99": "seed_dispatch_overhead_ms_p99",
        "tasks_per_minute": "seed_tasks_per_minute",
        "idle_cpu_pct_20": "seed_idle_cpu_pct_20",
    }
    # Each ratio reads "the seed-like configuration's figure over ours".
    result["seed_ratios"] = {
        ours: round(result[seed_key] / result[ours], 2) if result[ours] else None
        for ours, seed_key in ratios.items()
    }
    result["seed_detect_ratio"] = result["seed_ratios"]["detect_latency_ms_p50"]
    result["seconds"] = round(time.monotonic() - started, 1)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
