"""The quota monitor's decision rule: strong evidence swaps at once, screen-only needs a second look."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from engine import screen
from engine.clock import FakeClock
from engine.config import config_from_dict
from engine.core import Engine
from engine.runtime import Running
from engine.switcher import Trigger
from engine.tasks import parse_task


class NoTmux:
    """Pure decision logic never reaches tmux; any call is a test failure."""

    socket_name = None

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"tmux.{name} called")


@pytest.fixture
def setup(tmp_path: Path) -> tuple[Engine, Running, FakeClock, list[Trigger]]:
    homes = [tmp_path / "a", tmp_path / "b"]
    for home in homes:
        home.mkdir()
    config = config_from_dict(
        {
            "accounts": [{"name": "a", "home": str(homes[0])}, {"name": "b", "home": str(homes[1])}],
            "state_dir": str(tmp_path / "state"),
            "projects_dir": str(tmp_path / "src"),
            "quota": {"reactivate_cooldown": "5m"},
        }
    )
    inbox = tmp_path / "src" / "web" / ".agent-queue" / "inbox"
    inbox.mkdir(parents=True)
    (inbox / "t.md").write_text("Task\n")
    task = parse_task(inbox / "t.md", "web")
    clock = FakeClock()
    engine = Engine(config, NoTmux(), clock=clock)  # type: ignore[arg-type]
    run = Running("ccl-auto-11", task, inbox / "t.md", "a", "sonnet", clock.now(), "working")
    swaps: list[Trigger] = []

    async def record(trigger: Trigger) -> None:
        swaps.append(trigger)

    engine._swap = record  # type: ignore[method-assign]
    return engine, run, clock, swaps


def stop(message: str) -> screen.Stop:
    found = screen.match_stop(message)
    assert found is not None and found.kind == "quota"
    return found


def test_a_screen_only_hit_without_reset_swaps_only_on_a_second_look_two_seconds_later(
    setup: tuple[Engine, Running, FakeClock, list[Trigger]],
) -> None:
    engine, run, clock, swaps = setup
    hit = stop("Claude usage limit reached.")
    asyncio.run(engine._on_quota(run, hit, clock.now()))
    assert swaps == []
    clock.advance(1.0)
    asyncio.run(engine._on_quota(run, hit, clock.now()))
    assert swaps == []
    clock.advance(1.0)
    asyncio.run(engine._on_quota(run, hit, clock.now()))
    assert [t.pattern for t in swaps] == [hit.pattern]


def test_a_hit_with_a_reset_time_swaps_at_once(
    setup: tuple[Engine, Running, FakeClock, list[Trigger]],
) -> None:
    engine, run, clock, swaps = setup
    asyncio.run(engine._on_quota(run, stop("5-hour limit reached ∙ resets 3am"), clock.now()))
    assert len(swaps) == 1 and swaps[0].reset_at is not None and swaps[0].reset_at > clock.now()


def test_a_hit_inside_the_cooldown_is_ignored(
    setup: tuple[Engine, Running, FakeClock, list[Trigger]],
) -> None:
    engine, run, clock, swaps = setup
    engine.cooldown_until = clock.now() + 300
    asyncio.run(engine._on_quota(run, stop("5-hour limit reached ∙ resets 3am"), clock.now()))
    assert swaps == []
    clock.advance(301)
    asyncio.run(engine._on_quota(run, stop("5-hour limit reached ∙ resets 3am"), clock.now()))
    assert len(swaps) == 1
