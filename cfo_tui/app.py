"""The operator console: composes the panes, runs the Engine as a worker and renders its snapshots."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import replace
from pathlib import Path
from typing import Any, ClassVar, Protocol

from rich.text import Text
from textual import events, on
from textual.app import App, ComposeResult, SystemCommand
from textual.binding import Binding, BindingType
from textual.command import DiscoveryHit, Hits
from textual.containers import Container, Horizontal
from textual.notifications import Notification, Notifications, SeverityLevel
from textual.screen import Screen
from textual.system_commands import SystemCommandsProvider
from textual.widget import Widget
from textual.widgets import DataTable, Input, Tab, Tabs
from textual.widgets._toast import ToastHolder, ToastRack
from textual.worker import Worker, WorkerCancelled, WorkerFailed, WorkerState, WorkType

from cfo_tui.gcpause import KEYS_QUIET, FullCollections
from cfo_tui.messages import EngineEvent, EngineLog
from cfo_tui.toasts import Toast, Toasts
from cfo_tui.widgets.confirm import ALTERNATIVE, ConfirmScreen
from cfo_tui.widgets.events import KEPT, EventsTable, cycle_type
from cfo_tui.widgets.filter import FilterInput, TaskFilter
from cfo_tui.widgets.fleet import FleetScreen
from cfo_tui.widgets.footer import KeysFooter
from cfo_tui.widgets.format import count
from cfo_tui.widgets.header import SummaryBar
from cfo_tui.widgets.help import HelpScreen
from cfo_tui.widgets.pane_tail import PaneTail, TailScreen
from cfo_tui.widgets.queues import (
    BlockedTable,
    DelegatedTable,
    InboxTable,
    Outcome,
    RecentTable,
    matches,
)
from cfo_tui.widgets.sessions import SessionsTable, failure_note
from cfo_tui.widgets.swaps import SwapsTable
from engine.config import Config
from engine.events import Event
from engine.loglines import guard
from engine.redact import readable
from engine.snapshot import SessionRow, Snapshot, TaskRow
from engine.state import WORKING
from engine.tmux import TmuxClient

log = logging.getLogger(__name__)

REFRESH = 0.5
"""Re-render at most twice a second, however many events arrive in between."""
IDLE_REFRESH = 1.0
"""Without events, elapsed times and ages still move: re-render once a second."""
TAIL_REFRESH = 1.0
STOP_TIMEOUT = 20.0
"""How long quitting waits for the engine to stop and save before leaving anyway."""
RECENT = 50
EVENTS_KEPT = KEPT
QUIET_LOGGERS = ("watchfiles", "libtmux", "httpx")
TAIL_SHARE = 0.3
"""On a wide terminal the pane tail beside the sessions gets the width the table does not need, and at
least this share of it."""
SHORT = 40
"""Below this many rows (the `-short` layout) a toast is one line (app.tcss) and SHORT_TOASTS show."""
SHORT_TOASTS = 2
"""Toasts shown at once on a short terminal: the newest; the others wait, their time running."""

BOTTOM: tuple[tuple[str, str], ...] = (
    ("inbox", "Inbox"),
    ("blocked", "Blocked"),
    ("delegated", "Delegated"),
    ("recent", "Recent"),
    ("swaps", "Swaps"),
    ("events", "Events"),
    ("tail", "Tail"),
)
"""The panes under the sessions table, in tab order; on a small terminal one shows at a time."""


class EngineApi(Protocol):
    """What the console needs from the engine: snapshots, events, pane tails and the commands."""

    def snapshot(self) -> Snapshot: ...

    def subscribe(self, callback: Callable[[Event], None]) -> Callable[[], None]: ...

    async def pane_tail(self, name: str, lines: int = 40) -> str: ...

    def pause_dispatch(self) -> None: ...

    def resume_dispatch(self) -> None: ...

    def force_complete(self, name: str) -> bool: ...

    def request_swap(self, reason: str, drain: bool = False) -> str | None: ...

    def retry_launches(self) -> list[str]: ...

    async def run(self, stop: asyncio.Event) -> None: ...


class _ErrorsToApp(logging.Handler):
    """Posts ERROR records to the app, from whichever thread logged them."""

    def __init__(self, app: CfoApp) -> None:
        super().__init__(logging.ERROR)
        self.app = app

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage()
        if record.exc_info and record.exc_info[1] is not None:
            text += f": {readable(repr(record.exc_info[1]))}"
        with contextlib.suppress(RuntimeError):  # the app's loop has already closed
            self.app.post_message(EngineLog(text))


class PaletteCommands(SystemCommandsProvider):
    """The palette's list, in the order `CfoApp.get_system_commands` gives it (cfo's own first), not
    sorted by name as Textual's provider does."""

    async def discover(self) -> Hits:
        for title, help_text, callback, discover in self.app.get_system_commands(self.screen):
            if discover:
                yield DiscoveryHit(title, callback, help=help_text)


class CfoApp(App[int]):
    """Build it with `make_app`; `start_engine=False` and a fixed `now` give a still picture for tests."""

    CSS_PATH = "app.tcss"
    TITLE = "cfo"
    COMMANDS: ClassVar[set[Any]] = {PaletteCommands}
    # Screen classes that app.tcss keys the layout on; Textual types these as instance attributes,
    # so they cannot be marked ClassVar.
    HORIZONTAL_BREAKPOINTS: list[tuple[int, str]] | None = [(0, "-narrow"), (150, "-wide")]  # noqa: RUF012
    VERTICAL_BREAKPOINTS: list[tuple[int, str]] | None = [(0, "-short"), (40, "-tall")]  # noqa: RUF012
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("q", "quit", "Quit", tooltip="Stop the engine (its state is saved) and leave", id="quit"),
        # Textual's own ctrl+c only says how to quit; here it quits, from the filter line and dialogs too.
        Binding(
            "ctrl+c",
            "quit",
            "Quit",
            show=False,
            priority=True,
            tooltip="Stop the engine (its state is saved) and leave",
            id="quit-ctrl-c",
        ),
        Binding("p", "pause", "Pause", tooltip="Stop dispatching new tasks; running ones go on", id="pause"),
        Binding("p", "resume", "Resume", tooltip="Dispatch queued tasks again", id="resume"),
        Binding(
            "c",
            "force_complete",
            "Complete",
            tooltip="Mark the selected session's task done now (asks first)",
            id="force-complete",
        ),
        Binding("s", "swap", "Swap", tooltip="Fail over to the next account (asks first)", id="swap"),
        Binding(
            "enter",
            "zoom",
            "Zoom",
            tooltip="Show the selected session's pane full size",
            id="zoom",
            priority=True,
        ),
        Binding("slash", "filter", "Filter", tooltip="Filter the task lists", id="filter"),
        Binding("question_mark", "help", "Help", tooltip="Keys and state words", id="help"),
        Binding("f", "fleet", "Fleet", show=False, tooltip="Every host of the fleet", id="fleet"),
        Binding(
            "t",
            "event_type",
            "Event type",
            show=False,
            tooltip="Show only one type of event in the Events pane; again for the next type",
            id="event-type",
        ),
        Binding(
            "left_square_bracket",
            "cycle_pane(-1)",
            "Previous tab",
            show=False,
            tooltip="The previous pane under the sessions (small terminals)",
            id="previous-tab",
        ),
        Binding(
            "right_square_bracket",
            "cycle_pane(1)",
            "Next tab",
            show=False,
            tooltip="The next pane under the sessions (small terminals)",
            id="next-tab",
        ),
    ]

    def __init__(
        self,
        config: Config,
        engine: EngineApi,
        *,
        now: Callable[[], float] | None = None,
        start_engine: bool = True,
    ) -> None:
        super().__init__()
        self.config = config
        self.engine = engine
        self._now = now or time.time
        self._start_engine = start_engine
        self._stop = asyncio.Event()
        self._engine_worker: Worker[None] | None = None
        self._engine_note: str | None = None
        self._starting = start_engine
        """Until the engine's `started` event its snapshot is not the pool yet: the console says so."""
        self._sessions_width: int | None = None
        self._unsubscribe: Callable[[], None] | None = None
        self._snap: Snapshot | None = None
        self._dirty = False
        self._rendered_at = 0.0
        self._filter = ""
        self._quitting = False
        self._recent: deque[Outcome] = deque(maxlen=RECENT)
        self._seq = 0
        self._titles: dict[str, str] = {}
        self._toasts = Toasts()
        self._collections = FullCollections()
        self._matched: dict[str, tuple[tuple[TaskRow, ...], str, tuple[TaskRow, ...]]] = {}
        self.summary = SummaryBar(id="summary")
        self.sessions = SessionsTable(id="sessions")
        self.sessions.fit_content = True  # the pane tail beside it gets what it does not need
        self.tabs = Tabs(*(Tab(label, id=f"tab-{pane}") for pane, label in BOTTOM), id="pane-tabs")
        self.tab_tail = PaneTail(id="tail", classes="bottom")
        """The pane tail behind its tab (small terminals)."""
        self.side_tail = PaneTail(id="side-tail")
        """The pane tail beside the sessions (wide terminals)."""
        self.inbox = InboxTable(id="inbox", classes="bottom")
        self.blocked = BlockedTable(id="blocked", classes="bottom")
        self.delegated = DelegatedTable(id="delegated", classes="bottom")
        self.swaps = SwapsTable(id="swaps", classes="bottom")
        self.recent = RecentTable(id="recent", classes="bottom")
        self.events_table = EventsTable(id="events", classes="bottom")
        # Appended on whichever thread emits (deque.append is atomic): coalesced messages lose no event.
        self._events: deque[tuple[int, Event]] = deque(maxlen=EVENTS_KEPT)
        self._event_seq = itertools.count(1)
        self._event_type: str | None = None
        self.task_filter = TaskFilter(id="filter")
        self.panes: dict[str, Widget] = {
            "inbox": self.inbox,
            "blocked": self.blocked,
            "delegated": self.delegated,
            "recent": self.recent,
            "swaps": self.swaps,
            "events": self.events_table,
            "tail": self.tab_tail,
        }

    # ----------------------------------------------------------------- composition and lifetime

    def compose(self) -> ComposeResult:
        yield self.summary
        with Container(id="body"):
            with Horizontal(id="top"):
                yield self.sessions
                yield self.side_tail
            yield self.tabs
            with Container(id="panes"):
                yield self.tab_tail
                yield self.inbox
                yield self.blocked
                yield self.delegated
                # Before the swaps: the wide grid fills the cell beside the blocked list with it.
                yield self.recent
                yield self.swaps
                yield self.events_table
        yield self.task_filter
        yield KeysFooter()

    @property
    def tail(self) -> PaneTail:
        """The pane tail of this layout: beside the sessions when wide, behind its tab when small."""
        return self.side_tail if self.side_tail.display else self.tab_tail

    def on_mount(self) -> None:
        self._unsubscribe = self.engine.subscribe(self._forward)
        self.sessions.focus()
        self.show_snapshot()
        self.set_interval(REFRESH, self._tick)
        self.set_interval(TAIL_REFRESH, self.refresh_tail)
        if self._start_engine:
            self._engine_worker = self.run_worker(
                self._serve(), name="engine", group="engine", exclusive=True, exit_on_error=False
            )
            self.call_after_refresh(self._start_collections)

    def _start_collections(self) -> None:
        self._collections.start()
        self.set_interval(KEYS_QUIET, self._collections.collect_if_due, name="full collection")

    async def on_event(self, event: events.Event) -> None:
        if isinstance(event, events.Key):
            self._collections.key_pressed()
        await super().on_event(event)

    def on_unmount(self) -> None:
        self._collections.stop()
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None

    async def _serve(self) -> None:
        await self.engine.run(self._stop)

    async def stop_engine(self) -> None:
        """Ask the engine to stop and wait until it has saved its state."""
        self._stop.set()
        worker = self._engine_worker
        if worker is None or worker.is_finished:
            return
        with contextlib.suppress(TimeoutError, WorkerFailed, WorkerCancelled):
            await asyncio.wait_for(worker.wait(), STOP_TIMEOUT)

    @on(Worker.StateChanged)
    def _worker_changed(self, event: Worker.StateChanged) -> None:
        worker = event.worker
        if event.state == WorkerState.ERROR:
            log.error("worker %s failed", worker.name, exc_info=worker.error)
        if worker.group == "engine":
            if event.state == WorkerState.ERROR:
                self._engine_note = f"ENGINE STOPPED: {readable(worker.error)}"
                self.notify(
                    readable(worker.error),
                    title="The engine stopped",
                    severity="error",
                    timeout=60,
                    markup=False,
                )
            elif event.state == WorkerState.SUCCESS and not self._quitting:
                self._engine_note = "ENGINE STOPPED"
            self._dirty = True
            if event.state in (WorkerState.ERROR, WorkerState.SUCCESS):
                self._started()
        elif worker.group == "tail" and event.state == WorkerState.ERROR:
            self.tail.show(self.tail.session, f"could not read the pane: {worker.error}")

    def _started(self) -> None:
        """The engine's snapshots now show the pool (or it stopped and the header says so)."""
        if self._starting:
            self._starting = False
            self._dirty = True

    # ----------------------------------------------------------------- engine events

    def _forward(self, event: Event) -> None:
        """Subscriber callback: runs on whichever thread emitted, so it only posts a message."""
        self._events.append((next(self._event_seq), event))
        with contextlib.suppress(RuntimeError):  # the app's loop has already closed
            self.post_message(EngineEvent(event))

    def on_engine_event(self, message: EngineEvent) -> None:
        event = message.event
        self._dirty = True
        if event.type == "started":
            self._started()
        if event.type in ("completed", "failed"):
            self._seq += 1
            result = "done" if event.type == "completed" else "failed"
            self._recent.append(
                Outcome(self._seq, event.ts, result, event.task or "", event.session, event.reason)
            )
        if event.type in ("swap", "all_exhausted"):
            # Their toasts read the new snapshot: the swap's details, the account usable again first.
            self.show_snapshot()
        self._toast(self._toasts.for_event(event, self._snapshot(), self._now()))

    def errors_handler(self) -> logging.Handler:
        """A logging handler that turns the engine's ERROR records into toasts."""
        return _ErrorsToApp(self)

    def on_engine_log(self, message: EngineLog) -> None:
        self._toast(self._toasts.for_error(message.text, time.monotonic()))

    def notify(
        self,
        message: str,
        *,
        title: str = "",
        severity: SeverityLevel = "information",
        timeout: float | None = None,
        markup: bool = True,
    ) -> None:
        """On a short terminal a toast is one line: its title leads its text (app.tcss cuts it to a line
        and shows two at once)."""
        if self.size.height < SHORT:
            if title:
                message = f"{title}: {message}"
                title = ""
            message = " ".join(message.split())
        super().notify(message, title=title, severity=severity, timeout=timeout, markup=markup)

    def _refresh_notifications(self) -> None:
        """Textual's, except that a short terminal shows only the newest SHORT_TOASTS toasts."""
        if self.size.height >= SHORT or len(self._notifications) <= SHORT_TOASTS:
            super()._refresh_notifications()
            return
        rack = next(iter(self.screen.query_children(ToastRack)), None) if self.screen_stack else None
        if rack is None:
            return
        newest = Notifications()
        for notification in list(self._notifications)[-SHORT_TOASTS:]:
            newest.add(notification)

        def show() -> None:
            # The rack drops a hidden toast but keeps its holder, which would keep it from coming back.
            kept = {ToastRack._toast_id(n) for n in newest}
            for holder in list(rack.query_children(ToastHolder)):
                if holder.id not in kept:
                    holder.remove()
            rack.show(newest)

        self.call_later(show)

    def _unnotify(self, notification: Notification, refresh: bool = True) -> None:
        # A toast that expires does not ask for a refresh; here one waiting behind it may show then.
        super()._unnotify(notification, refresh=True)

    def _toast(self, toast: Toast | None) -> None:
        if toast is not None:
            # Toast texts quote task names, reasons and log lines: anything may be in them.
            self.notify(
                readable(toast.text),
                title=toast.title,
                severity=toast.severity,
                timeout=toast.timeout,
                markup=False,
            )

    # ----------------------------------------------------------------- rendering

    def _tick(self) -> None:
        if self._dirty or time.monotonic() - self._rendered_at >= IDLE_REFRESH:
            self.show_snapshot()

    def _set_title(self, widget: Widget, title: str) -> None:
        if widget.border_title != title:
            widget.border_title = title

    def _set_tab(self, pane: str, label: str) -> None:
        if self._titles.get(pane) != label:
            self._titles[pane] = label
            # A new label can change the tab's width (a layout pass): skip it while the tabs are hidden.
            if self.tabs.display:
                self.tabs.query_one(f"#tab-{pane}", Tab).label = label

    def on_resize(self, event: events.Resize) -> None:
        # Labels skipped while the tabs were hidden catch up once the new layout's classes apply;
        # the sessions' width follows the new layout too.
        self.call_after_refresh(self._label_tabs)
        self.call_after_refresh(self._fit_sessions)

    def _fit_sessions(self) -> None:
        """Wide: the sessions table as wide as its content, the pane tail beside it gets the rest (at
        least TAIL_SHARE of the width). Small: the table takes the full width (app.tcss)."""
        width: int | None = None
        top = self.sessions.parent
        if self.side_tail.display and isinstance(top, Widget) and top.size.width:
            styles = self.sessions.styles
            chrome = styles.gutter.width + styles.scrollbar_size_vertical
            room = top.size.width - max(1, int(top.size.width * TAIL_SHARE))
            width = max(1, min(self.sessions.natural_width() + chrome, room))
        if width != self._sessions_width:
            self._sessions_width = width
            self.sessions.styles.width = width

    def _label_tabs(self) -> None:
        if self.tabs.display:
            for pane, label in self._titles.items():
                self.tabs.query_one(f"#tab-{pane}", Tab).label = label

    def show_snapshot(self) -> None:
        """Take the engine's snapshot and render it into every pane (diffed, in one batch)."""
        snap = self._shown(self._take_snapshot())
        now = self._now()
        self._dirty = False
        self._rendered_at = time.monotonic()
        for table in (self.sessions, self.inbox, self.blocked, self.delegated, self.swaps):
            table.starting = self._starting
        with self.batch_update():
            self._show_header()
            self.sessions.show(snap.sessions, now)
            self._fit_sessions()
            self._set_title(self.sessions, f"Sessions {len(snap.sessions)}")
            self._show_queues()
            self.swaps.show(snap.swaps, now)
            self.recent.show(tuple(self._recent), now)
            self._set_tab("recent", f"Recent {len(self._recent)}")
            self._set_title(self.recent, f"Recent {len(self._recent)}")
            self._set_tab("swaps", f"Swaps {len(snap.swaps)}")
            self._set_title(self.swaps, f"Swaps {len(snap.swaps)}")
            self._show_events(now)

    def _shown(self, snap: Snapshot) -> Snapshot:
        """What the panes show of `snap`: nothing yet while the engine is starting (its sessions and
        queues are last run's, or none, until its startup has looked at them)."""
        if not self._starting:
            return snap
        return replace(snap, sessions=(), inbox=(), blocked=(), delegated=(), swaps=())

    def _show_events(self, now: float) -> None:
        shown = self.events_table.show(list(self._events), now, self._event_type)
        only = f" · {self._event_type}" if self._event_type else ""
        self._set_tab("events", f"Events {shown}{only}")
        self._set_title(self.events_table, f"Events {shown}{only or ' · t: filter by type'}")

    def _snapshot(self) -> Snapshot:
        """The last snapshot taken (one is taken if none was yet)."""
        return self._snap or self._take_snapshot()

    def _take_snapshot(self) -> Snapshot:
        snap = self.engine.snapshot()
        # Until the first snapshot the footer offers Pause; it changes only if the dispatch mode does.
        shown = self._snap.dispatch if self._snap is not None else "running"
        self._snap = snap
        if snap.dispatch != shown:
            self.refresh_bindings()
        self._toast(self._toasts.for_snapshot(snap, self._now()))
        return snap

    def _show_header(self) -> None:
        self.summary.show(self._snapshot(), self._now(), self._engine_note, self._starting)

    def _show_queues(self) -> None:
        """The task lists from the last snapshot, through the filter."""
        snap, now = self._shown(self._snapshot()), self._now()
        needle = self._filter.lower()
        note = f" · filter “{self._filter}”" if needle else ""
        for pane, table, tasks in (
            ("inbox", self.inbox, snap.inbox),
            ("blocked", self.blocked, snap.blocked),
            ("delegated", self.delegated, snap.delegated),
        ):
            shown = self._matching(pane, tasks, needle) if needle else tasks
            if table is self.blocked:
                self.blocked.show(shown, now, snap.blocked_warn)
            else:
                table.show(shown, now)
            name, total = dict(BOTTOM)[pane], count(len(tasks))
            if needle:
                self._set_tab(pane, f"{name} {count(len(shown))}/{total}")
                self._set_title(table, f"{name} {count(len(shown))} of {total}{note}")
            else:
                self._set_tab(pane, f"{name} {total}")
                self._set_title(table, f"{name} {total}")

    def _matching(self, pane: str, tasks: tuple[TaskRow, ...], needle: str) -> tuple[TaskRow, ...]:
        """The tasks that match `needle`. Typing narrows: while the snapshot stays the same, the next
        letter searches only what the previous text matched, not all 10,000 tasks again."""
        source = tasks
        last = self._matched.get(pane)
        if last is not None and last[0] is tasks and last[1] in needle:
            source = last[2]
        shown = tuple(t for t in source if matches(t, needle))
        self._matched[pane] = (tasks, needle, shown)
        return shown

    # ----------------------------------------------------------------- pane tail

    def selected_session(self) -> SessionRow | None:
        name = self.sessions.selected_key
        if name is None or self._snap is None:
            return None
        return next((s for s in self._snap.sessions if s.name == name), None)

    def _visible_tail(self) -> PaneTail | None:
        if isinstance(self.screen, TailScreen):
            return self.screen.query_one(PaneTail)
        if self.screen is self.screen_stack[0] and self.tail.display:
            return self.tail
        return None

    def refresh_tail(self) -> None:
        """Fetch the selected session's pane into the visible tail widget (none visible: no fetch)."""
        tail = self._visible_tail()
        if tail is None:
            return
        name = self.sessions.selected_key
        if name is None:
            tail.show(None, "")
            return

        async def load() -> None:
            text = await self.engine.pane_tail(name, tail.lines_wanted)
            if tail.is_mounted:
                tail.show(name, text, failure_note(self.selected_session(), self._now()))

        # A function, not a coroutine object: a fetch superseded before it starts is dropped cleanly.
        work: WorkType[None] = load
        self.run_worker(work, group="tail", exclusive=True, exit_on_error=False)

    @on(DataTable.RowHighlighted, "#sessions")
    def _session_highlighted(self) -> None:
        if self.sessions.selected_key != self.tail.session:
            self.refresh_tail()

    def screenshot_folder(self) -> Path:
        """Where ctrl+p → Screenshot saves: ~/Downloads if there is one, else the state folder."""
        downloads = Path.home() / "Downloads"
        return downloads if downloads.is_dir() else self.config.state_dir

    def action_screenshot(self, filename: str | None = None, path: str | None = None) -> None:
        """Save an SVG of the screen into a folder that exists, and say where (or why not) in a toast."""
        folder = Path(path) if path else self.screenshot_folder()
        try:
            saved = self.save_screenshot(filename, str(folder))
        except OSError as exc:
            self.notify(
                f"could not write to {folder}: {exc.strerror or exc}",
                title="Screenshot not saved",
                severity="error",
                markup=False,
            )
            return
        self.notify(saved, title="Screenshot saved", markup=False)

    @on(Tabs.TabActivated, "#pane-tabs")
    def _tab_activated(self, event: Tabs.TabActivated) -> None:
        shown = (event.tab.id or "").removeprefix("tab-")
        for pane, widget in self.panes.items():
            widget.set_class(pane == shown, "-shown")
        if shown == "tail":
            self.call_after_refresh(self.refresh_tail)

    # ----------------------------------------------------------------- actions

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        paused = self._snap is not None and self._snap.dispatch == "paused"
        if action == "pause":
            return not paused
        if action == "resume":
            return paused
        if action == "zoom":
            if isinstance(self.screen, TailScreen):
                return True
            # Elsewhere `enter` belongs to the focused input, button or dialog.
            return self.screen is self.screen_stack[0] and not isinstance(self.focused, Input)
        if action in ("filter", "cycle_pane"):
            # They act on the panes under the zoomed tail; hidden there, the footer also fits 80 columns.
            return not isinstance(self.screen, TailScreen)
        return True

    def _command(self, what: str, call: Callable[[], Any]) -> Any:
        """Run an engine command; if it raises, say so instead of taking the console down."""
        try:
            return call()
        except Exception as exc:
            log.exception("%s failed", what)
            self.notify(f"{what} failed: {exc}", severity="error", timeout=15, markup=False)
            return None
        finally:
            self._dirty = True

    def action_pause(self) -> None:
        self._command("pause", self.engine.pause_dispatch)
        # The header answers the key now; the tables follow on the next tick.
        self._take_snapshot()
        self._show_header()

    def action_resume(self) -> None:
        self._command("resume", self.engine.resume_dispatch)
        self._take_snapshot()
        self._show_header()

    def action_force_complete(self) -> None:
        row = self.selected_session()
        if row is None:
            self.notify("No session selected.", severity="warning")
            return
        if row.state != WORKING or row.task is None:
            self.notify(f"{row.name} is {row.state}: no task to complete.", severity="warning", markup=False)
            return
        name, task = row.name, row.task
        body = Text.assemble(
            "Mark ",
            (task, "bold"),
            f" ({row.title})\n" if row.title else "\n",
            "running in ",
            (name, "bold"),
            " as done now?\nIts file moves to done/ and the session is recycled.",
        )

        def answer(choice: str | None) -> None:
            if choice is None:
                return
            if self._command("force-complete", lambda: self.engine.force_complete(name)):
                self.notify(f"{task} marked done.", title=f"{name} force-completed", markup=False)
            else:
                self.notify(f"{name} no longer runs a task.", severity="warning", markup=False)

        self.push_screen(ConfirmScreen("Force-complete this task?", body, "Complete", danger=True), answer)

    def action_swap(self) -> None:
        snap = self._snapshot()
        target = snap.swap_target
        if target is None:
            self.notify("No other account is usable now.", title="Nothing to swap to", severity="warning")
            return
        body = Text.assemble(
            "Swap from ",
            (snap.active_account or "—", "bold"),
            " to ",
            (target, "bold"),
            "?\nNow: running tasks move at once, each resumed there.\n",
            "Drain: running turns finish here; new tasks start there.\n",
            (snap.active_account or "the current account", "bold"),
            " stays usable.",
        )

        def answer(choice: str | None) -> None:
            if choice is None:
                return
            drain = choice == ALTERNATIVE
            result = self._command("swap", lambda: self.engine.request_swap("operator", drain=drain))
            if result is None:
                self.notify("No other account is usable now.", title="Swap refused", severity="error")

        confirm = ConfirmScreen(f"Swap to {target}?", body, "Swap now", alternative="Drain")
        self.push_screen(confirm, answer)

    def action_retry_launches(self) -> None:
        lifted = self._command("retry launches", self.engine.retry_launches) or []
        self.notify(", ".join(lifted) or "No session was held.", title="Launches retried", markup=False)

    def action_zoom(self) -> None:
        if isinstance(self.screen, TailScreen):
            self.pop_screen()
            return
        if self.screen is not self.screen_stack[0]:
            return
        if self.sessions.selected_key is None:
            self.notify("No session selected.", severity="warning")
            return
        self.push_screen(TailScreen())
        self.call_after_refresh(self.refresh_tail)

    def action_filter(self) -> None:
        self.task_filter.add_class("-active")
        self.task_filter.input.focus()

    def action_fleet(self) -> None:
        if self._snapshot().fleet is None:
            self.notify("no fleet: section in the config; this host works alone", timeout=4)
            return
        self.push_screen(FleetScreen(lambda: self._snapshot().fleet))

    def action_help(self) -> None:
        self.push_screen(HelpScreen())

    def action_event_type(self) -> None:
        """Cycle the Events pane through every type seen so far, then back to all of them."""
        self._event_type = cycle_type(self._event_type, [e.type for _, e in list(self._events)])
        self._show_events(self._now())

    def action_cycle_pane(self, step: int) -> None:
        if step > 0:
            self.tabs.action_next_tab()
        else:
            self.tabs.action_previous_tab()

    async def action_quit(self) -> None:
        if self._quitting:
            return
        self._quitting = True
        if self._engine_worker is not None and not self._engine_worker.is_finished:
            self.notify("Stopping the engine…", timeout=STOP_TIMEOUT)
        await self.stop_engine()
        self.exit(0)

    @on(Input.Changed, "#filter FilterInput")
    def _filter_changed(self, event: Input.Changed) -> None:
        self._filter = event.value.strip()
        with self.batch_update():
            self._show_queues()

    @on(Input.Submitted, "#filter FilterInput")
    def _filter_submitted(self) -> None:
        self.task_filter.set_class(bool(self._filter), "-active")
        self.sessions.focus()

    @on(FilterInput.Cleared)
    def _filter_cleared(self) -> None:
        self.task_filter.remove_class("-active")
        self.sessions.focus()

    def get_system_commands(self, screen: Screen[Any]) -> Iterable[SystemCommand]:
        """cfo's own commands first, then Textual's (theme, keys, …) with its Screenshot made cfo's."""
        yield from self._cfo_commands()
        for command in super().get_system_commands(screen):
            if command.title == "Screenshot":
                # After a moment: the palette closes first and is not in the picture.
                yield SystemCommand(
                    "Screenshot",
                    "Save an SVG of the screen to ~/Downloads, or the state folder if there is none",
                    lambda: self.set_timer(0.1, self.action_screenshot),
                )
            else:
                yield command

    def _cfo_commands(self) -> Iterable[SystemCommand]:
        if self._snap is not None and self._snap.dispatch == "paused":
            yield SystemCommand("Resume dispatch", "Dispatch queued tasks again (p)", self.action_resume)
        else:
            yield SystemCommand(
                "Pause dispatch", "Stop dispatching new tasks; running ones go on (p)", self.action_pause
            )
        yield SystemCommand(
            "Force-complete the selected session",
            "Mark its task done now, after a confirmation (c)",
            self.action_force_complete,
        )
        target = self._snapshot().swap_target
        yield SystemCommand(
            "Swap account",
            f"Fail over to {target or 'the next usable account'}, after a confirmation (s)",
            self.action_swap,
        )
        if any(s.held_until is not None for s in self._snapshot().sessions):
            yield SystemCommand(
                "Retry failed launches now",
                "Use the sessions held after a failed launch again (you fixed the cause)",
                self.action_retry_launches,
            )
        yield SystemCommand(
            "Zoom the pane tail", "The selected session's pane, full size (enter)", self.action_zoom
        )
        yield SystemCommand(
            "Filter tasks", "Narrow the task lists by project, id or title (/)", self.action_filter
        )
        yield SystemCommand(
            "Filter events by type",
            "Show one type of event, then the next, then all (t)",
            self.action_event_type,
        )
        if self._snap is not None and self._snap.fleet is not None:
            yield SystemCommand(
                "Fleet", "Every host of the fleet, its sessions and what each runs (f)", self.action_fleet
            )
        yield SystemCommand("Help", "Keys and what the state words mean (?)", self.action_help)


def make_app(
    config: Config,
    engine: EngineApi,
    *,
    now: Callable[[], float] | None = None,
    start_engine: bool = True,
) -> CfoApp:
    """The console for `engine`; the CLI, the demo, the snapshot apps and the tests all build it here."""
    return CfoApp(config, engine, now=now, start_engine=start_engine)


def route_logs(app: CfoApp) -> None:
    """Engine logs go to the Textual console (`textual console`) and errors to toasts, never onto
    the screen being drawn; both see the same safe, de-duplicated lines."""
    from textual.logging import TextualHandler

    root = logging.getLogger()
    root.handlers[:] = [TextualHandler(stderr=False), app.errors_handler()]
    guard(*root.handlers)
    root.setLevel(logging.INFO)
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)


def run_app(config: Config, tmux: TmuxClient) -> int:
    """Run the console with a real Engine until the operator quits."""
    from engine.core import Engine

    app = make_app(config, Engine(config, tmux))
    route_logs(app)
    app.run()
    return app.return_code or 0
