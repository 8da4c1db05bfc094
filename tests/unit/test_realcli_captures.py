"""Every capture of the real Claude Code CLI under tests/data/realcli reads as captures.json says."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from engine import screen, transcript

DATA = Path(__file__).parent.parent / "data" / "realcli"
CAPTURES: list[dict[str, Any]] = json.loads((DATA / "captures.json").read_text(encoding="utf-8"))["captures"]
NOW = datetime(2026, 12, 6, 18, 0, tzinfo=UTC)


def expected_state(capture: dict[str, Any]) -> str:
    # Text waiting in the box (a paste not yet sent) is never idle: nothing may be pasted over it.
    return "unknown" if capture["expected"].get("paste_pending") else str(capture["expected"]["state"])


@pytest.mark.parametrize("capture", CAPTURES, ids=[c["name"] for c in CAPTURES])
def test_the_screen_alone_reads_the_real_capture_right(capture: dict[str, Any]) -> None:
    text = (DATA / capture["pane"]).read_text(encoding="utf-8")
    reading = screen.read(text, now=NOW, tz=UTC)
    want = capture["expected"]
    assert (reading.state, reading.stop) == (expected_state(capture), want["stop"])
    if want.get("reset") == "on screen":
        assert reading.reset_at is not None  # no second look needed: the reset is beside the menu
    assert screen.paste_pending(text) == bool(want.get("paste_pending"))


@pytest.mark.parametrize(
    "capture", [c for c in CAPTURES if c["transcript"]], ids=[c["name"] for c in CAPTURES if c["transcript"]]
)
def test_the_transcript_agrees_with_the_screen(capture: dict[str, Any]) -> None:
    text = (DATA / capture["pane"]).read_text(encoding="utf-8")
    lines = transcript.read_lines(DATA / capture["transcript"])
    reading = screen.read(text, lines, now=NOW, tz=UTC)
    assert reading.stop == capture["expected"]["stop"]
    if capture["expected"]["state"] == "working":
        assert transcript.turn_stop(lines) is None  # retrying: no final error yet
