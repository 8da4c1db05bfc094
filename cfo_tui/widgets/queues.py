"""The queue tables: inbox in dispatch order, blocked tasks, delegated tasks, and recent outcomes."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from cfo_tui.widgets.format import JOB_STYLES, OUTCOME_STYLES, PRIORITY_STYLES, age, clock, count
from cfo_tui.widgets.table import ColumnSpec, LiveTable, Row, note_row
from engine.snapshot import TaskRow

INBOX_ROWS = 100
"""The inbox shows the head of the queue: with 10,000 tasks, rendering them all buys nothing."""


@dataclass(frozen=True)
class Outcome:
    """A task that finished while the console was open (from a `completed` or `failed` event)."""

    seq: int
    at: float
    result: str
    task: str
    session: str | None
    note: str | None


def matches(row: TaskRow, needle: str) -> bool:
    """Case-insensitive match of the filter against the task's key and title."""
    return needle in row.key.lower() or needle in row.title.lower()


def _more(hidden: int, columns: Sequence[ColumnSpec]) -> Row:
    return note_row(columns, "more", f"… and {count(hidden)} more")


class InboxTable(LiveTable):
    POSITIONAL = True
    EMPTY = "empty: new task files in <project>/.agent-queue/inbox show here"
    COLUMNS = (
        ColumnSpec("priority", "Priority", 8),
        ColumnSpec("project", "Project", 12, flex=1, drop=1),
        ColumnSpec("title", "Title", 16, flex=4),
        ColumnSpec("age", "Age", 4),
    )

    def show(self, tasks: Sequence[TaskRow], now: float) -> None:
        """`tasks` in dispatch order; only the first INBOX_ROWS are rendered."""
        rows: list[Row] = [
            (
                t.key,
                {
                    "priority": (t.priority, PRIORITY_STYLES.get(t.priority, "")),
                    "project": (t.project, ""),
                    "title": (t.title, ""),
                    "age": (age(now - t.created), "dim"),
                },
            )
            for t in tasks[:INBOX_ROWS]
        ]
        if len(tasks) > INBOX_ROWS:
            rows.append(_more(len(tasks) - INBOX_ROWS, self.COLUMNS))
        self.sync(rows)


class BlockedTable(LiveTable):
    POSITIONAL = True
    EMPTY = "nothing is waiting for a dependency"
    COLUMNS = (
        ColumnSpec("project", "Project", 10, flex=1, drop=1),
        ColumnSpec("title", "Title", 12, flex=2),
        ColumnSpec("waiting", "Waiting for", 12, flex=2),
        ColumnSpec("since", "Since", 5),
    )

    def show(self, tasks: Sequence[TaskRow], now: float, warn_after: float | None = None) -> None:
        """A task blocked longer than `warn_after` seconds has its age in bold red (the watchdog warned)."""

        def since(t: TaskRow) -> tuple[str, str]:
            if t.blocked_since is None:
                return "", "dim"
            waited = now - t.blocked_since
            late = warn_after is not None and waited >= warn_after
            return age(waited) + ("!" if late else ""), "bold red" if late else "dim"

        rows: list[Row] = [
            (
                t.key,
                {
                    "project": (t.project, ""),
                    "title": (t.title, ""),
                    "waiting": (t.waiting_for or "", "yellow"),
                    "since": since(t),
                },
            )
            for t in tasks[:INBOX_ROWS]
        ]
        if len(tasks) > INBOX_ROWS:
            rows.append(_more(len(tasks) - INBOX_ROWS, self.COLUMNS))
        self.sync(rows)


class DelegatedTable(LiveTable):
    POSITIONAL = True
    EMPTY = "nothing delegated"
    COLUMNS = (
        ColumnSpec("project", "Project", 10, flex=1, drop=1),
        ColumnSpec("title", "Title", 12, flex=3),
        ColumnSpec("provider", "Provider", 8),
        ColumnSpec("status", "Status", 10),
        ColumnSpec("age", "Age", 4, drop=2),
    )

    def show(self, tasks: Sequence[TaskRow], now: float) -> None:
        rows: list[Row] = [
            (
                t.key,
                {
                    "project": (t.project, ""),
                    "title": (t.title, ""),
                    "provider": (t.provider or "", "cyan"),
                    "status": (t.job_status or "", JOB_STYLES.get(t.job_status or "", "")),
                    "age": (age(now - t.created), "dim"),
                },
            )
            for t in tasks[:INBOX_ROWS]
        ]
        if len(tasks) > INBOX_ROWS:
            rows.append(_more(len(tasks) - INBOX_ROWS, self.COLUMNS))
        self.sync(rows)


class RecentTable(LiveTable):
    POSITIONAL = True
    EMPTY = "nothing finished yet"
    COLUMNS = (
        ColumnSpec("time", "Time", 8),
        ColumnSpec("result", "Result", 6),
        ColumnSpec("task", "Task", 14, flex=2),
        ColumnSpec("session", "Session", 11, drop=1),
        ColumnSpec("note", "Note", 12, flex=2, drop=2),
    )

    def show(self, outcomes: Sequence[Outcome], now: float) -> None:
        """Newest first."""
        rows: list[Row] = [
            (
                str(o.seq),
                {
                    "time": (clock(o.at, now), "dim"),
                    "result": (o.result, OUTCOME_STYLES.get(o.result, "")),
                    "task": (o.task, ""),
                    "session": (o.session or "", ""),
                    "note": (o.note or "", "dim"),
                },
            )
            for o in reversed(outcomes)
        ]
        self.sync(rows)
