"""The sessions table: one row per managed session, state as a coloured word, in a stable order."""

from __future__ import annotations

from collections.abc import Sequence

from rich.text import Text

from cfo_tui.widgets.format import STATE_STYLES, clock, elapsed, natural_key
from cfo_tui.widgets.table import Cell, ColumnSpec, LiveTable, Row
from engine.snapshot import SessionRow

FAIL_STYLE = "red"
FAIL_CLEARED = "dim"
"""A failure followed by a completed task of the same session is history: no longer red."""


def _order(row: SessionRow) -> tuple[int, tuple[str | int, ...]]:
    return (0 if row.kind == "dedicated" else 1, natural_key(row.name))


def session_cells(row: SessionRow, now: float) -> dict[str, Cell]:
    running = row.started is not None and row.state not in ("idle", "recycling")
    return {
        "name": (row.name, "bold" if row.kind == "dedicated" else ""),
        "kind": (row.kind, "dim"),
        "state": _state(row, now),
        "project": (row.task.split(":", 1)[0] if row.task else "", ""),
        "task": (row.title or row.task or "", ""),
        "elapsed": (elapsed(now - row.started) if running and row.started is not None else "", ""),
        "account": _account(row),
        "model": (row.model or "", "dim"),
        "fail": (row.last_fail or "", FAIL_CLEARED if row.last_fail_cleared else FAIL_STYLE),
    }


def _account(row: SessionRow) -> Cell:
    """The account the session's agent runs under; one the pool has left since is marked `(old)`."""
    if row.account is None:
        return ("", "")
    if row.account_old:
        return (f"{row.account} (old)", "yellow")
    return (row.account, "")


def failure_note(row: SessionRow | None, now: float) -> Text | None:
    """The selected session's last failure in full, for the pane tail: red while it is the latest news
    of the session, dim once a task of the session has completed after it."""
    if row is None or row.last_fail is None:
        return None
    when = f", {clock(row.last_fail_at, now)}" if row.last_fail_at is not None else ""
    since = " (a task completed since)" if row.last_fail_cleared else ""
    style = FAIL_CLEARED if row.last_fail_cleared else f"bold {FAIL_STYLE}"
    return Text(f"Last failure{when}{since} — {row.last_fail}", style=style)


def _state(row: SessionRow, now: float) -> Cell:
    """A session held after a failed launch says so, with how long it still waits."""
    if row.held_until is not None and row.held_until > now and row.state == "idle":
        return (f"held {elapsed(row.held_until - now)}", "bold yellow")
    return (row.state, STATE_STYLES.get(row.state, ""))


class SessionsTable(LiveTable):
    EMPTY = "no managed session yet"
    COLUMNS = (
        ColumnSpec("name", "Session", 12, flex=1),
        ColumnSpec("kind", "Kind", 9, drop=4),
        ColumnSpec("state", "State", 11),
        ColumnSpec("project", "Project", 10, flex=1, drop=6),
        ColumnSpec("task", "Task", 16, flex=4),
        ColumnSpec("elapsed", "Elapsed", 7),
        ColumnSpec("account", "Account", 13, drop=2),
        ColumnSpec("model", "Model", 6, drop=3),
        ColumnSpec("fail", "Last failure", 14, flex=3, drop=5),
    )

    def show(self, sessions: Sequence[SessionRow], now: float) -> None:
        rows: list[Row] = [(s.name, session_cells(s, now)) for s in sorted(sessions, key=_order)]
        self.sync(rows)
