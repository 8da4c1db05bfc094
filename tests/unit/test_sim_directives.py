"""The simulated agent's parts that need no terminal: its `sim:` directives and its transcript order."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.sim.directives import parse_line
from engine.sim.transcript import Transcript, in_order, load


@pytest.mark.parametrize(
    ("line", "failure", "recovered"),
    [
        ("sim: error 529", "529", False),
        ("sim: error 500", "500", False),
        ("sim: error 429", "429", False),
        ("sim: error", "500", False),
        ("sim: error 503", "500", False),
        ("sim: error 529 recovered", "529", True),
        ("sim: throttle", "throttle", False),
        ("sim: throttle recovered", "throttle", True),
    ],
)
def test_failed_requests_parse_to_the_failure_they_name(line: str, failure: str, recovered: bool) -> None:
    step = parse_line(line)
    assert step is not None
    assert (step.kind, step.text, step.recovered, step.timed) == ("error", failure, recovered, False)


def test_a_held_prompt_is_written_after_a_stop_and_before_anything_else(tmp_path: Path) -> None:
    path = tmp_path / "s.jsonl"
    t = Transcript(str(path), "0b0b0b0b-0000-4000-8000-000000000000", str(tmp_path), "m")
    t.user("first", [], hold=True)
    t.api_error("You've hit your limit", 429, "rate_limit", [])
    t.turn_duration(0.2, [])
    t.user("second", [], hold=True)
    t.answer("fine", [])
    records = [json.loads(line) for line in path.read_text().splitlines()]
    assert [r["type"] for r in records] == ["assistant", "user", "system", "user", "assistant"]
    assert [r["parentUuid"] for r in records] == [
        records[1]["uuid"],
        None,
        records[0]["uuid"],
        records[2]["uuid"],
        records[3]["uuid"],
    ]
    assert [r["uuid"] for r in in_order(records)] == [records[i]["uuid"] for i in (1, 0, 2, 3, 4)]
    history = load(str(path))
    assert [(e.kind, e.text) for e in history.entries] == [
        ("user", "first"),
        ("error", "You've hit your limit"),
        ("user", "second"),
        ("answer", "fine"),
    ]
    assert history.last_uuid == records[4]["uuid"]


def test_records_without_a_known_parent_keep_their_place_in_the_file() -> None:
    records: list[dict[str, object]] = [
        {"type": "mode"},
        {"uuid": "a", "parentUuid": None},
        {"uuid": "c", "parentUuid": "b"},
        {"uuid": "b", "parentUuid": "a"},
        {"uuid": "x", "parentUuid": "gone"},
    ]
    assert [r.get("uuid") for r in in_order(records)] == [None, "a", "b", "c", "x"]
