"""Headless log lines: one per event, with a time of their own only when journald does not add one."""

from __future__ import annotations

import io
import logging

import pytest

from cfo_tui.headless import format_event, setup_logging
from engine.events import Event

pytestmark = pytest.mark.usefixtures("keep_root_logging")

TS = 1_800_000_000.0  # 2027-01-15 08:00:00 UTC


def test_an_event_is_one_line_with_its_fields_and_no_empty_ones() -> None:
    event = Event("dispatched", TS, session="ccl-auto-11", task="web:001", account="primary", reason="")
    assert format_event(event) == "08:00:00 dispatched session=ccl-auto-11 task=web:001 account=primary"
    assert (
        format_event(event, with_time=False) == "dispatched session=ccl-auto-11 task=web:001 account=primary"
    )


def test_outside_journald_log_lines_carry_their_time(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("JOURNAL_STREAM", raising=False)
    out = io.StringIO()
    assert setup_logging(out) is True
    logging.getLogger("engine.core").error("tmux went away")
    line = out.getvalue().strip()
    assert line.endswith(" ERROR engine.core: tmux went away")
    assert line[2] == ":" and line[5] == ":"  # HH:MM:SS first


def test_under_journald_no_second_timestamp_is_written(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JOURNAL_STREAM", "8:12345")
    out = io.StringIO()
    assert setup_logging(out) is False
    logging.getLogger("engine.core").warning("slow capture")
    assert out.getvalue() == "WARNING engine.core: slow capture\n"


def test_chatty_libraries_only_log_warnings(monkeypatch: pytest.MonkeyPatch) -> None:
    out = io.StringIO()
    setup_logging(out)
    logging.getLogger("httpx").info("HTTP Request: POST http://127.0.0.1/hook")
    logging.getLogger("watchfiles").info("1 change detected")
    assert out.getvalue() == ""
