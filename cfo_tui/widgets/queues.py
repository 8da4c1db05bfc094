"""The queue tables: inbox in dispatch order, blocked tasks, delegated tasks, and recent outcomes."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from textual import events

from cfo_tui.widgets.format import JOB_STYLES, OUTCOME_STYLES, PRIORITY_STYLES, age, clock, count
from cfo_tui.widgets.table import Cell, ColumnSpec, LiveTable, Row, note_row
from engine.snapshot import TaskRow

INBOX_ROWS = 100
"""Rows a task list renders before it has a size (a pane behind a tab)."""


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


class HeadTable(LiveTable):
    """A task list that renders the head that fits its height and counts the rest in its last row.

    With 10,000 tasks, rows no one sees would only cost time: and as long as more tasks match than
    fit, a new filter or a dispatched task rewrites cells in place, never adding or removing rows
    (each of which makes Textual lay the whole screen out again).
    """

    POSITIONAL = True

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self._shown: tuple[Sequence[TaskRow], float, float | None] | None = None
        self._fitted = 0

    def fits(self) -> int:
        """Rows shown without scrolling; INBOX_ROWS until the table has a size."""
        rows = self.scrollable_content_region.height - self.header_height
        return rows if rows > 0 else INBOX_ROWS

    def cells(self, task: TaskRow, now: float, warn_after: float | None) -> dict[str, Cell]:
        raise NotImplementedError

    def show(self, tasks: Sequence[TaskRow], now: float, warn_after: float | None = None) -> None:
        """`tasks` in order; the rows that fit are rendered, the last one counting those that do not."""
        self._shown = (tasks, now, warn_after)
        self._fitted = fits = self.fits()
        head = tasks if len(tasks) <= fits else tasks[: fits - 1]
        rows: list[Row] = [(t.key, self.cells(t, now, warn_after)) for t in head]
        if len(tasks) > len(head):
            rows.append(_more(len(tasks) - len(head), self.COLUMNS))
        self.sync(rows)

    def on_resize(self, event: events.Resize) -> None:
        super().on_resize(event)
        if self._shown is not None and self.fits() != self._fitted:
            self.show(*self._shown)


class InboxTable(HeadTable):
    EMPTY = "empty: new task files in <project>/.agent-queue/inbox show here"
    COLUMNS = (
        ColumnSpec("priority", "Priority", 8),
        ColumnSpec("project", "Project", 12, flex=1, drop=1),
        ColumnSpec("title", "Title", 16, flex=4),
        ColumnSpec("age", "Age", 4),
    )

    def cells(self, task: TaskRow, now: float, warn_after: float | None) -> dict[str, Cell]:
        return {
            "priority": (task.priority, PRIORITY_STYLES.get(task.priority, "")),
            "project": (task.project, ""),
            "title": (task.title, ""),
            "age": (age(now - task.created), "dim"),
        }


class BlockedTable(HeadTable):
    EMPTY = "nothing is waiting for a dependency"
    COLUMNS = (
        ColumnSpec("project", "Project", 10, flex=1, drop=1),
        ColumnSpec("title", "Title", 12, flex=2),
        ColumnSpec("waiting", "Waiting for", 12, flex=2),
        ColumnSpec("since", "Since", 5),
    )

    def cells(self, task: TaskRow, now: float, warn_after: float | None) -> dict[str, Cell]:
        """A task blocked longer than `warn_after` seconds has its age in bold red (the watchdog warned)."""
        since: Cell = ("", "dim")
        if task.blocked_since is not None:
            waited = now - task.blocked_since
            late = warn_after is not None and waited >= warn_after
            since = (age(waited) + ("!" if late else ""), "bold red" if late else "dim")
        return {
            "project": (task.project, ""),
            "title": (task.title, ""),
            "waiting": (task.waiting_for or "", "yellow"),
            "since": since,
        }


class DelegatedTable(HeadTable):
    EMPTY = "nothing delegated"
    COLUMNS = (
        ColumnSpec("project", "Project", 10, flex=1, drop=1),
        ColumnSpec("title", "Title", 12, flex=3),
        ColumnSpec("provider", "Provider", 8),
        ColumnSpec("status", "Status", 10),
        ColumnSpec("age", "Age", 4, drop=2),
    )

    def cells(self, task: TaskRow, now: float, warn_after: float | None) -> dict[str, Cell]:
        return {
            "project": (task.project, ""),
            "title": (task.title, ""),
            "provider": (task.provider or "", "cyan"),
            "status": (task.job_status or "", JOB_STYLES.get(task.job_status or "", "")),
            "age": (age(now - task.created), "dim"),
        }


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
