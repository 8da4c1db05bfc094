"""The event log: one JSON object a line, flushed per event, torn-line tolerant, with live subscribers."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from pathlib import Path

import pytest

from engine import events as ev
from engine.events import Event, EventLog, read_events

NOW = 1_800_000_000.0


class Clock:
    def __init__(self) -> None:
        self.t = NOW

    def __call__(self) -> float:
        self.t += 1.0
        return self.t


def test_each_event_is_one_json_line_written_at_once(tmp_path: Path) -> None:
    path = tmp_path / "state" / "events.jsonl"
    log = EventLog(path, now=lambda: NOW + 0.25)
    event = log.emit(ev.DISPATCHED, session="ccl-auto-11", task="web:001", account="primary", model="sonnet")
    # No close or flush: the line must already be on disk for `cfo status` and crash safety.
    line = path.read_text(encoding="utf-8")
    assert line.endswith("\n") and line.count("\n") == 1
    assert json.loads(line) == {
        "ts": "2027-01-15T08:00:00.250Z",
        "type": "dispatched",
        "session": "ccl-auto-11",
        "task": "web:001",
        "account": "primary",
        "model": "sonnet",
    }
    assert read_events(path) == [event]
    log.close()


def test_absent_fields_are_left_out_and_extra_fields_cannot_shadow_core_ones(tmp_path: Path) -> None:
    with EventLog(tmp_path / "e.jsonl", now=lambda: NOW) as log:
        log.append(Event("paused", NOW, extra={"type": "forged", "until": None, "path": Path("/x")}))
    assert json.loads((tmp_path / "e.jsonl").read_text()) == {
        "ts": "2027-01-15T08:00:00.000Z",
        "type": "paused",
        "until": None,
        "path": "/x",
    }


def test_text_with_newlines_and_undecodable_names_stays_on_one_line(tmp_path: Path) -> None:
    path = tmp_path / "e.jsonl"
    odd = b"caf\xe9".decode("utf-8", "surrogateescape")
    with EventLog(path, now=lambda: NOW) as log:
        log.emit(ev.FAILED, task=f"web:{odd}", reason="line one\nline two ⏎")
    assert path.read_bytes().count(b"\n") == 1
    [event] = read_events(path)
    assert event.task == f"web:{odd}" and event.reason == "line one\nline two ⏎"


def test_a_torn_last_line_is_skipped_and_the_next_event_starts_a_new_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "e.jsonl"
    clock = Clock()
    with EventLog(path, now=clock) as log:
        log.emit(ev.DISPATCHED, task="web:a")
        log.emit(ev.COMPLETED, task="web:a")
    with path.open("ab") as f:
        f.write(b'{"ts": "2027-01-15T08:00:09Z", "type": "dispat')
    with caplog.at_level(logging.WARNING, logger="engine.events"):
        assert [e.type for e in read_events(path)] == ["dispatched", "completed"]
    assert caplog.records == []
    with EventLog(path, now=clock) as log:
        log.emit("recovered", reason="engine restarted")
    assert [e.type for e in read_events(path)] == ["dispatched", "completed", "recovered"]


def test_corrupt_lines_inside_the_file_are_skipped_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "e.jsonl"
    good = '{"ts": "2027-01-15T08:00:00Z", "type": "paused"}\n'
    path.write_text(good + "garbage\n" + '{"type": "no ts"}\n' + '"just a string"\n' + "\n" + good)
    with caplog.at_level(logging.WARNING, logger="engine.events"):
        assert [e.type for e in read_events(path)] == ["paused", "paused"]
    assert "skipped 3 corrupt line(s), first at line 2" in caplog.text


def test_events_are_filtered_by_time_type_and_count(tmp_path: Path) -> None:
    path = tmp_path / "e.jsonl"
    with EventLog(path, now=Clock()) as log:
        for kind in (ev.DISPATCHED, ev.COMPLETED, ev.DISPATCHED, ev.FAILED, ev.DISPATCHED):
            log.emit(kind)
    assert [e.ts for e in read_events(path, since=NOW + 3)] == [NOW + 3, NOW + 4, NOW + 5]
    assert [e.ts for e in read_events(path, types={ev.DISPATCHED})] == [NOW + 1, NOW + 3, NOW + 5]
    assert [e.type for e in read_events(path, last=2)] == [ev.FAILED, ev.DISPATCHED]
    assert read_events(tmp_path / "missing.jsonl") == []


def test_subscribers_receive_events_and_a_failing_one_does_not_stop_the_rest(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    seen: list[str] = []

    def broken(event: Event) -> None:
        raise RuntimeError("subscriber bug")

    with EventLog(tmp_path / "e.jsonl", now=Clock()) as log:
        log.subscribe(broken)
        unsubscribe = log.subscribe(lambda e: seen.append(e.type))
        log.emit("swap", account="secondary")
        unsubscribe()
        unsubscribe()
        log.emit("resumed")
    assert seen == ["swap"]
    assert "subscriber" in caplog.text
    assert len(read_events(tmp_path / "e.jsonl")) == 2


def test_an_asyncio_subscriber_gets_events_emitted_from_worker_threads(tmp_path: Path) -> None:
    async def main() -> list[str]:
        with EventLog(tmp_path / "e.jsonl", now=Clock()) as log:
            queue, unsubscribe = log.subscribe_async(asyncio.get_running_loop(), maxsize=2)
            workers = [
                threading.Thread(target=log.emit, args=(kind,)) for kind in ("started", "paused", "resumed")
            ]
            for worker in workers:
                worker.start()
                worker.join()
            got = [(await queue.get()).type for _ in range(2)]
            unsubscribe()
            log.emit("stopped")
            await asyncio.sleep(0)
            assert queue.empty()
            return got

    assert asyncio.run(main()) == ["paused", "resumed"]


def test_a_closed_log_refuses_to_append(tmp_path: Path) -> None:
    log = EventLog(tmp_path / "e.jsonl")
    log.close()
    log.close()
    with pytest.raises(ValueError, match="closed"):
        log.emit(ev.COMPLETED)


def test_known_types_are_plain_strings() -> None:
    assert {"dispatched", "completed", "failed", "requeued", "blocked", "delegated", "swap"} <= ev.KNOWN_TYPES
    assert "quota_hit" in ev.KNOWN_TYPES and "launch_failed" in ev.KNOWN_TYPES
