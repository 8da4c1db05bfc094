"""Console responsiveness at scale: 100 sessions and 10,000 queued tasks; the last stdout line is JSON.

Runs the app headless (`App.run_test`, 200x60) on a fake engine. A background task emits engine
events at a steady rate; each event also changes the engine's state as a dispatch does (one session
changes state, the head of the queue leaves), and elapsed times move with the wall clock. Two loads:
`steady` (2 events/s: a 100-session pool on minutes-long tasks) and `storm` (50 events/s).

Per load it measures:
- key latency: a key event sent -> its action done -> the next frame composed and encoded for the
  terminal (the headless driver skips only the write), for `p` (pause/resume), `down` (selection;
  fetches a pane tail) and a filter keystroke (filters 10,000 tasks);
- the cost of one full refresh (`show_snapshot`: snapshot diffed into every pane) and of the frame
  that paints it;
- refreshes per second actually run (events coalesce into at most two a second);
- the pause of the full garbage collection the console runs once a minute (Python's own would run
  every second or two; keys that meet it wait that long).

Run: .venv/bin/python benchmarks/tui.py
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rich.console import RenderableType
from textual import events
from textual._compositor import CompositorUpdate
from textual.screen import Screen

from cfo_tui.app import CfoApp, make_app
from engine.events import Event
from engine.snapshot import SessionRow, Snapshot, TaskRow, day_of
from tests.tui.fakes import NOW, FakeEngine, make_config
from tests.tui.scenes import AGENT_PANE

SESSIONS = 100
TASKS = 10_000
ROUNDS = 40
SIZE = (200, 60)
LOADS = {"steady": 2, "storm": 50}
STATES = ("working", "working", "working", "idle", "launching", "recycling", "stalled")


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def figures(values: list[float]) -> dict[str, float]:
    return {
        "p50_ms": round(pct(values, 50), 1),
        "p99_ms": round(pct(values, 99), 1),
        "max_ms": round(max(values), 1),
    }


class BusyEngine(FakeEngine):
    """A fake engine whose state moves on with each event it emits, as a dispatching pool's does."""

    def __init__(self, snap: Snapshot) -> None:
        super().__init__(snap, tails={f"ccl-auto-{11 + i}": AGENT_PANE for i in range(SESSIONS)})
        self.moves = 0

    def dispatch_one(self) -> None:
        self.moves += 1
        n = self.moves
        sessions = tuple(
            replace(s, state=STATES[n % len(STATES)], started=NOW + n) if i == n % SESSIONS else s
            for i, s in enumerate(self.snap.sessions)
        )
        self.snap = replace(self.snap, sessions=sessions, inbox=self.snap.inbox[1:])
        self.emit(Event("dispatched", NOW + n, session=sessions[n % SESSIONS].name, task=f"p:{n}"))


def big_snapshot() -> Snapshot:
    sessions = tuple(
        SessionRow(
            name=f"ccl-auto-{11 + i}",
            kind="pool",
            state=STATES[i % len(STATES)],
            task=f"project-{i % 7}:{i:04d}-task",
            title=f"Task number {i} with a reasonably long title to ellipsize",
            account="primary",
            model="sonnet",
            started=NOW - 60 * i,
            last_fail="crashed: the agent exited" if i % 9 == 0 else None,
        )
        for i in range(SESSIONS)
    )
    priorities = ("critical", "high", "default", "low")
    inbox = tuple(
        TaskRow(
            f"project-{i % 7}:{i:05d}",
            f"project-{i % 7}",
            f"Queued task {i}",
            priorities[i * 4 // TASKS],
            NOW - i,
        )
        for i in range(TASKS)
    )
    blocked = tuple(
        TaskRow(
            f"project-1:b{i:03d}", "project-1", f"Blocked {i}", "default", NOW - i, NOW - i, "project-2:0001"
        )
        for i in range(200)
    )
    return Snapshot(
        taken_at=NOW,
        active_account="primary",
        dispatch="running",
        accounts={"primary": None, "secondary": None},
        sessions=sessions,
        inbox=inbox,
        blocked=blocked,
        delegated=(),
        swaps=(),
        swap_target="secondary",
        counters={"completed": 1234, "failed": 5, f"completed:{day_of(NOW)}": 88},
    )


async def until(what: str, predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.perf_counter() + timeout
    while not predicate():
        if time.perf_counter() > deadline:
            raise SystemExit(f"benchmark: timed out waiting for {what}")
        await asyncio.sleep(0)


class Probe:
    """Times frames (compose + encode) and full refreshes of a running app."""

    def __init__(self, app: CfoApp) -> None:
        self.app = app
        self.frames: list[float] = []
        self.frame_costs: list[float] = []
        self.refreshes: list[float] = []
        compose = app.screen._compositor.render_update
        display = app._display
        show = app.show_snapshot

        def timed_compose(*args: object, **kwargs: object) -> object:
            t0 = time.perf_counter()
            update = compose(*args, **kwargs)  # type: ignore[arg-type]
            if isinstance(update, CompositorUpdate):
                # Headless runs skip encoding the frame for the terminal; do it here so it counts.
                update.render_segments(app.console)
            self.frame_costs.append((time.perf_counter() - t0) * 1000)
            return update

        def recording_display(screen: Screen[object], renderable: RenderableType | None) -> None:
            if renderable is not None:
                self.frames.append(time.perf_counter())
            display(screen, renderable)

        def timed_show() -> None:
            t0 = time.perf_counter()
            show()
            self.refreshes.append((time.perf_counter() - t0) * 1000)

        app.screen._compositor.render_update = timed_compose  # type: ignore[assignment]
        app._display = recording_display  # type: ignore[method-assign]
        app.show_snapshot = timed_show  # type: ignore[method-assign]

    async def key(self, key: str, char: str | None, done: Callable[[], bool]) -> float:
        driver = self.app._driver
        assert driver is not None
        t0 = time.perf_counter()
        event = events.Key(key, char)
        event.set_sender(self.app)
        driver.send_message(event)
        await until(f"key {key}", done)
        answered = time.perf_counter()
        await until(f"a frame after {key}", lambda: bool(self.frames) and self.frames[-1] >= answered)
        latency = (self.frames[-1] - t0) * 1000
        await asyncio.sleep(0.03)
        return latency


async def run_load(rate: float) -> dict[str, object]:
    engine = BusyEngine(big_snapshot())
    started = time.monotonic()
    # With the engine worker started, as `cfo` runs it (the fake engine's run waits for the stop).
    app = make_app(make_config(), engine, now=lambda: NOW + time.monotonic() - started)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        probe = Probe(app)
        stop = asyncio.Event()

        async def load() -> None:
            while not stop.is_set():
                engine.dispatch_one()
                await asyncio.sleep(1 / rate)

        loader = asyncio.create_task(load())
        t0, refreshes_before = time.perf_counter(), len(probe.refreshes)
        pause: list[float] = []
        down: list[float] = []
        for _ in range(ROUNDS):
            calls = len(engine.calls)
            pause.append(await probe.key("p", "p", lambda calls=calls: len(engine.calls) > calls))  # type: ignore[misc]
            row = app.sessions.cursor_row
            down.append(await probe.key("down", None, lambda row=row: app.sessions.cursor_row != row))  # type: ignore[misc]
        await pilot.press("slash")
        typing: list[float] = []
        digits = "1234"
        for i in range(ROUNDS):
            needle = digits[: 1 + i % len(digits)]
            if i and i % len(digits) == 0:
                app.task_filter.input.value = ""
                await asyncio.sleep(0.03)
            typing.append(await probe.key(needle[-1], needle[-1], lambda n=needle: app._filter == n))  # type: ignore[misc]
        await pilot.press("escape")
        seconds = time.perf_counter() - t0
        refresh_rate = (len(probe.refreshes) - refreshes_before) / seconds
        collected = time.perf_counter()
        gc.collect()
        full_collection = (time.perf_counter() - collected) * 1000
        stop.set()
        await loader
        await app.stop_engine()
    every = pause + down + typing
    return {
        "events_per_second": rate,
        "key_all": figures(every),
        "key_p_pause_resume": figures(pause),
        "key_down_select": figures(down),
        "key_filter_char": figures(typing),
        "keys_over_100ms": sum(v > 100 for v in every),
        "keys_measured": len(every),
        "refresh": figures(probe.refreshes),
        "frame": figures(probe.frame_costs),
        "refreshes_per_second": round(refresh_rate, 2),
        "full_collection_ms": round(full_collection, 1),
    }


async def main() -> dict[str, object]:
    result: dict[str, object] = {
        "sessions": SESSIONS,
        "queued_tasks": TASKS,
        "terminal": f"{SIZE[0]}x{SIZE[1]}",
        "cpu_count": os.cpu_count(),
    }
    for name, rate in LOADS.items():
        result[name] = await run_load(rate)
    return result


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main())))
