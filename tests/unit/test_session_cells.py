"""The sessions table's cells: the account a session's agent runs under, and a failure that fades."""

from __future__ import annotations

from dataclasses import replace

from cfo_tui.widgets.sessions import failure_note, session_cells
from engine.snapshot import SessionRow

NOW = 1_800_000_000.0
ROW = SessionRow("ccl-auto-11", "pool", "idle", None, None, None, None, None, None)


def test_a_failure_is_red_until_a_task_of_the_session_completes_after_it() -> None:
    failed = replace(
        ROW, last_fail="launch failed: bash: cfo-sim-claude: command not found", last_fail_at=NOW
    )
    assert session_cells(failed, NOW)["fail"] == (failed.last_fail, "red")
    assert session_cells(replace(failed, last_fail_cleared=True), NOW)["fail"] == (failed.last_fail, "dim")
    assert session_cells(ROW, NOW)["fail"][0] == ""


def test_the_failure_note_quotes_the_whole_reason() -> None:
    reason = "launch failed: " + "x" * 300
    note = failure_note(replace(ROW, last_fail=reason, last_fail_at=NOW), NOW)
    assert note is not None and note.plain.endswith(reason)
    assert failure_note(ROW, NOW) is None and failure_note(None, NOW) is None


def test_an_account_the_pool_has_left_is_marked_old() -> None:
    working = replace(ROW, state="working", account="primary")
    assert session_cells(working, NOW)["account"] == ("primary", "")
    assert session_cells(replace(working, account_old=True), NOW)["account"] == ("primary (old)", "yellow")
    assert session_cells(ROW, NOW)["account"] == ("", "")
