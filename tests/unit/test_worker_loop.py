"""The engine's worker loop: run its body, then again on its wake event or after its period, until the
engine stops it."""

from __future__ import annotations

import asyncio

import pytest

from engine.core import worker_loop


@pytest.mark.parametrize("turns", [0, 1, 2])
def test_a_stop_that_comes_as_the_wake_event_is_set_still_stops_the_loop(turns: int) -> None:
    # Python 3.11's wait_for drops a cancellation that arrives while the event it waits on completes;
    # the loop must stop all the same, not run on until the engine's 10 s grace ends.
    async def main() -> bool:
        wake = asyncio.Event()
        rounds: list[int] = []

        async def body() -> None:
            rounds.append(1)

        loop = asyncio.create_task(worker_loop(wake, lambda: 10.0, body))
        await asyncio.sleep(0.01)  # the loop waits on its event
        wake.set()
        for _ in range(turns):
            await asyncio.sleep(0)
        loop.cancel()
        done, _ = await asyncio.wait([loop], timeout=0.5)
        if loop not in done:
            loop.cancel()
            await asyncio.wait([loop], timeout=1)
        return loop in done and loop.cancelled()

    assert asyncio.run(main())
