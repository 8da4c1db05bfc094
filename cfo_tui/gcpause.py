"""The console's own full garbage collections: rare, and held back while the operator is typing."""

from __future__ import annotations

import gc
import time

FULL_COLLECTION = 60.0
"""Seconds between the console's own full garbage collections (Python's would come every second or two)."""
KEYS_QUIET = 2.0
"""A full collection waits until no key has been pressed for this long..."""
FULL_COLLECTION_LATEST = 300.0
"""...but runs anyway once this many seconds have passed since the last one."""


def collection_due(now: float, collected: float, key: float) -> bool:
    """Whether to run the full collection at `now`, the last one having run at `collected` and the
    last key come at `key` (monotonic seconds): its pause of 100 ms or so should not meet a key."""
    since = now - collected
    return since >= FULL_COLLECTION_LATEST or (since >= FULL_COLLECTION and now - key >= KEYS_QUIET)


class FullCollections:
    """Takes full collections over from Python on `start`, runs them through `collect_if_due` (every
    KEYS_QUIET seconds) and gives them back on `stop`."""

    def __init__(self) -> None:
        self._threshold: tuple[int, int, int] | None = None
        self.collected_at = 0.0
        self.key_at = 0.0

    def start(self) -> None:
        """Call once the startup objects exist: they are frozen out of every later collection."""
        # Modules, styles and the widget tree live as long as the console. Moved out of the collector's
        # sight, they no longer lengthen every full collection, the longest pauses a key can meet.
        gc.collect()
        gc.freeze()
        # Rendered lines churn through the tables' caches and age into the oldest generation, so
        # Python would run a full collection (50-100 ms at 100 sessions) every second or two. Young
        # collections still free most cycles; the full one runs once a minute instead.
        self._threshold = gc.get_threshold()
        gc.set_threshold(self._threshold[0], self._threshold[1], 2**31 - 1)
        self.collected_at = time.monotonic()

    def key_pressed(self) -> None:
        self.key_at = time.monotonic()

    def collect_if_due(self) -> None:
        if collection_due(time.monotonic(), self.collected_at, self.key_at):
            gc.collect()
            self.collected_at = time.monotonic()

    def stop(self) -> None:
        if self._threshold is not None:
            gc.set_threshold(*self._threshold)
            self._threshold = None
