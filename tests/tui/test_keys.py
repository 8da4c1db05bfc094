"""Pilot tests: each key calls the right engine command, and the screen then shows the outcome."""

from __future__ import annotations

import asyncio
import gc
import io
import logging
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace

import pytest
from rich.console import Console
from rich.text import Text
from textual.pilot import Pilot
from textual.widgets import Static, Tabs
from textual.widgets._footer import FooterKey
from textual.widgets.data_table import RowKey

from cfo_tui.app import CfoApp, make_app
from cfo_tui.gcpause import collection_due
from cfo_tui.widgets.confirm import ConfirmScreen
from cfo_tui.widgets.help import KEYS, HelpScreen
from cfo_tui.widgets.pane_tail import PaneTail, TailScreen
from cfo_tui.widgets.queues import INBOX_ROWS
from cfo_tui.widgets.table import CellText
from engine.events import Event
from engine.snapshot import Snapshot, TaskRow
from tests.tui.fakes import NOW, FakeEngine, make_config
from tests.tui.scenes import AGENT_PANE, busy, settle, still, swapped

Script = Callable[[Pilot[int], CfoApp, FakeEngine], Awaitable[None]]


def drive(
    script: Script,
    snap: Snapshot | None = None,
    size: tuple[int, int] = (120, 36),
    swap_to: str | None = "secondary",
    start_engine: bool = False,
    engine: FakeEngine | None = None,
) -> CfoApp:
    """Run `script` against a console on a recording fake engine."""
    fake = engine or FakeEngine(snap or busy(), tails={"ccl-1-conformvault": AGENT_PANE}, swap_to=swap_to)
    app = still(make_app(make_config(), fake, now=lambda: NOW, start_engine=start_engine))

    async def main() -> None:
        async with app.run_test(size=size, notifications=True) as pilot:
            await settle(pilot)
            await script(pilot, app, fake)

    asyncio.run(main())
    return app


def header(app: CfoApp) -> str:
    return app.summary.text.plain


def toasts(app: CfoApp) -> list[str]:
    # On a short terminal a toast has no title of its own: it leads the text.
    return [f"{n.title}: {n.message}" if n.title else n.message for n in app._notifications]


def footer_actions(app: CfoApp) -> set[str]:
    return {b.binding.action for b in app.screen.active_bindings.values() if b.binding.show}


def footer_labels(app: CfoApp) -> list[str]:
    return [f"{k.key_display} {k.description}" for k in app.screen.query(FooterKey) if k.key != "enter"]


def test_p_pauses_dispatch_and_p_again_resumes_it() -> None:
    async def script(pilot: Pilot[int], app: CfoApp, engine: FakeEngine) -> None:
        await pilot.press("p")
        assert engine.calls == [("pause_dispatch",)]
        assert "PAUSED" in header(app)
        assert "resume" in footer_actions(app) and "pause" not in footer_actions(app)
        await pilot.pause()
        assert footer_labels(app)[:3] == ["q Quit", "p Resume", "c Complete"]
        await pilot.press("p")
        assert engine.calls == [("pause_dispatch",), ("resume_dispatch",)]
        assert "RUNNING" in header(app)
        assert "pause" in footer_actions(app)
        await pilot.pause()
        assert footer_labels(app)[:3] == ["q Quit", "p Pause", "c Complete"]

    drive(script)


def test_toggling_dispatch_leaves_no_dead_footer_keys_behind() -> None:
    async def script(pilot: Pilot[int], app: CfoApp, engine: FakeEngine) -> None:
        shown = list(app.screen.query(FooterKey))
        await pilot.press(*"pppppp")
        await pilot.pause()
        # Only the p key's label changed: the footer relabelled it rather than rebuilding itself.
        assert list(app.screen.query(FooterKey)) == shown
        gc.collect()
        keys = [o for o in gc.get_objects() if isinstance(o, FooterKey) and o.app is app]
        assert keys and all(k.is_attached for k in keys)

    drive(script)


def test_c_asks_first_then_force_completes_the_selected_session() -> None:
    async def script(pilot: Pilot[int], app: CfoApp, engine: FakeEngine) -> None:
        app.sessions.select_key("ccl-auto-11")
        await pilot.press("c")
        assert isinstance(app.screen, ConfirmScreen)
        assert engine.calls == []
        await pilot.press("y")
        await pilot.pause()
        assert engine.calls == [("force_complete", "ccl-auto-11")]
        assert not isinstance(app.screen, ConfirmScreen)
        assert any("billing-api:001-fix-rounding marked done" in t for t in toasts(app))

    drive(script)


def test_c_cancelled_leaves_the_task_running() -> None:
    async def script(pilot: Pilot[int], app: CfoApp, engine: FakeEngine) -> None:
        await pilot.press("c", "n")
        await pilot.pause()
        assert engine.calls == []
        assert app.screen is app.screen_stack[0]

    drive(script)


def test_c_on_an_idle_session_only_warns() -> None:
    async def script(pilot: Pilot[int], app: CfoApp, engine: FakeEngine) -> None:
        app.sessions.select_key("ccl-auto-14")
        await pilot.press("c")
        assert not isinstance(app.screen, ConfirmScreen)
        assert engine.calls == []
        assert any("ccl-auto-14 is idle" in t for t in toasts(app))

    drive(script)


def test_s_names_the_next_account_then_requests_the_swap() -> None:
    async def script(pilot: Pilot[int], app: CfoApp, engine: FakeEngine) -> None:
        await pilot.press("s")
        assert isinstance(app.screen, ConfirmScreen)
        assert "secondary" in str(app.screen.query_one("#dialog-body", Static).content)
        await pilot.press("y")
        await pilot.pause()
        assert engine.calls == [("request_swap", "operator")]
        assert (
            "Account swapped: primary → secondary: operator (now: tasks move at once); "
            "0 session(s) resumed" in toasts(app)
        )
        assert "account secondary" in header(app)
        assert len(app.swaps.keys) == 2
        app.show_snapshot()
        newest = app.swaps.keys[0]
        assert app.swaps.cell(newest, "trigger") == "operator"
        assert app.swaps.cell(newest, "detail") == "now: tasks move at once"

    drive(script)


def test_s_then_d_requests_a_swap_that_lets_working_sessions_finish() -> None:
    async def script(pilot: Pilot[int], app: CfoApp, engine: FakeEngine) -> None:
        await pilot.press("s")
        assert "Drain" in str(app.screen.query_one("#dialog-body", Static).content)
        await pilot.press("d")
        await pilot.pause()
        assert engine.calls == [("request_swap", "operator (drain)")]

    drive(script)


def test_s_when_no_other_account_is_usable_says_the_swap_was_refused() -> None:
    async def script(pilot: Pilot[int], app: CfoApp, engine: FakeEngine) -> None:
        await pilot.press("s", "y")
        await pilot.pause()
        assert engine.calls == [("request_swap", "operator")]
        assert any(t.startswith("Swap refused") for t in toasts(app))
        assert "account primary" in header(app)

    drive(script, swap_to=None)


def test_s_with_every_other_account_limited_only_warns() -> None:
    async def script(pilot: Pilot[int], app: CfoApp, engine: FakeEngine) -> None:
        await pilot.press("s")
        assert not isinstance(app.screen, ConfirmScreen)
        assert engine.calls == []
        assert any(t.startswith("Nothing to swap to") for t in toasts(app))

    limited = replace(busy(), accounts={"primary": None, "secondary": NOW + 600}, swap_target=None)
    drive(script, snap=limited)


def test_enter_zooms_the_selected_pane_and_enter_or_escape_come_back() -> None:
    async def script(pilot: Pilot[int], app: CfoApp, engine: FakeEngine) -> None:
        await pilot.press("enter")
        await settle(pilot)
        assert isinstance(app.screen, TailScreen)
        zoomed = app.screen.query_one(PaneTail)
        assert zoomed.session == "ccl-1-conformvault"
        assert "Crunching" in zoomed.text.plain
        await pilot.press("enter")
        assert app.screen is app.screen_stack[0]
        await pilot.press("enter", "escape")
        assert app.screen is app.screen_stack[0]
        assert engine.calls == []

    drive(script)


def test_slash_filters_the_task_lists_and_escape_clears_the_filter() -> None:
    async def script(pilot: Pilot[int], app: CfoApp, engine: FakeEngine) -> None:
        await pilot.press("slash", *"app")
        assert app.inbox.keys == ("webapp:004-login-rate-limit", "webapp:005-translate-settings")
        assert app.blocked.keys == ("webapp:006-release-notes",)
        assert app.inbox.border_title == "Inbox 2 of 5 · filter “app”"
        await pilot.press("enter")
        assert app.focused is app.sessions
        assert app.task_filter.display
        await pilot.press("slash", "escape")
        assert len(app.inbox.keys) == 5
        assert not app.task_filter.display
        # Letters typed into the filter are text, never commands.
        assert engine.calls == []

    drive(script)


def test_question_mark_opens_help_and_escape_closes_it() -> None:
    async def script(pilot: Pilot[int], app: CfoApp, engine: FakeEngine) -> None:
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        help_box = app.screen.query_one("#help Static", Static)
        console = Console(width=help_box.content_region.width, file=io.StringIO(), record=True)
        console.print(help_box.content)
        shown = " ".join(console.export_text().split())
        for key, what in KEYS:
            assert " ".join(f"{key} {what}".split()) in shown
        assert "? this help; escape or ? closes it" in shown
        assert "q ctrl+c quit: the engine stops and saves its state" in shown
        assert "out of pool the account's login failed" in shown
        await pilot.press("escape")
        assert app.screen is app.screen_stack[0]
        await pilot.press("question_mark", "question_mark")
        assert app.screen is app.screen_stack[0]

    drive(script)


def test_q_stops_the_engine_and_exits_cleanly() -> None:
    async def script(pilot: Pilot[int], app: CfoApp, engine: FakeEngine) -> None:
        assert not engine.stopped
        await pilot.press("q")
        await pilot.pause()

    engine = FakeEngine(busy())
    app = drive(script, engine=engine, start_engine=True)
    assert engine.stopped
    assert app.return_code == 0


@pytest.mark.parametrize("where", ["console", "filter line", "dialog"])
def test_ctrl_c_stops_the_engine_and_exits_cleanly_wherever_the_focus_is(where: str) -> None:
    async def script(pilot: Pilot[int], app: CfoApp, engine: FakeEngine) -> None:
        if where == "filter line":
            await pilot.press("slash", "a")
            assert app.focused is app.task_filter.input
        elif where == "dialog":
            await pilot.press("s")
            assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("ctrl+c")
        await pilot.pause()

    engine = FakeEngine(busy())
    app = drive(script, engine=engine, start_engine=True)
    assert engine.stopped
    assert app.return_code == 0
    assert engine.calls == []


def test_the_console_runs_full_collections_itself_and_gives_them_back_on_quit() -> None:
    before = gc.get_threshold()

    async def script(pilot: Pilot[int], app: CfoApp, engine: FakeEngine) -> None:
        await pilot.pause()
        young, middle, full = gc.get_threshold()
        assert (young, middle) == before[:2] and full > 10**6
        assert any(t.name == "full collection" for t in app._timers)
        typed = time.monotonic()
        await pilot.press("down")
        assert app._collections.key_at >= typed
        await pilot.press("q")

    drive(script, engine=FakeEngine(busy()), start_engine=True)
    assert gc.get_threshold() == before


def test_a_full_collection_waits_for_a_pause_in_the_typing_but_not_forever() -> None:
    assert not collection_due(now=1030.0, collected=1000.0, key=0.0)  # not a minute yet
    assert collection_due(now=1060.0, collected=1000.0, key=1000.0)
    assert not collection_due(now=1060.0, collected=1000.0, key=1059.5)  # a key half a second ago
    assert collection_due(now=1300.0, collected=1000.0, key=1299.9)  # five minutes: now anyway


def test_an_engine_that_dies_is_shown_in_the_header() -> None:
    class Crashing(FakeEngine):
        async def run(self, stop: asyncio.Event) -> None:
            raise RuntimeError("state file unreadable")

    async def script(pilot: Pilot[int], app: CfoApp, engine: FakeEngine) -> None:
        await settle(pilot)
        app.show_snapshot()
        assert "ENGINE STOPPED: state file unreadable" in header(app)
        assert any(t.startswith("The engine stopped") for t in toasts(app))

    drive(script, engine=Crashing(busy()), start_engine=True)


def test_the_selection_stays_on_its_session_while_rows_come_and_go() -> None:
    async def script(pilot: Pilot[int], app: CfoApp, engine: FakeEngine) -> None:
        app.sessions.select_key("ccl-auto-13")
        sessions = [s for s in engine.snap.sessions if s.name not in ("ccl-auto-11", "ccl-auto-12")]
        sessions[0] = replace(sessions[0], state="stalled")
        sessions.append(replace(sessions[-1], name="ccl-auto-12b"))
        engine.snap = replace(
            engine.snap,
            sessions=tuple(s if s.name != "ccl-auto-13" else replace(s, state="working") for s in sessions),
        )
        app.show_snapshot()
        await pilot.pause()
        assert app.sessions.selected_key == "ccl-auto-13"
        assert app.sessions.cell("ccl-auto-13", "state") == "working"
        assert "ccl-auto-11" not in app.sessions.keys

    drive(script)


def test_an_update_changes_cells_in_place_instead_of_rebuilding_rows() -> None:
    async def script(pilot: Pilot[int], app: CfoApp, engine: FakeEngine) -> None:
        added: list[str | None] = []
        original = app.sessions.add_row

        def spy(
            *cells: CellText, height: int | None = 1, key: str | None = None, label: str | Text | None = None
        ) -> RowKey:
            added.append(key)
            return original(*cells, height=height, key=key, label=label)

        app.sessions.add_row = spy  # type: ignore[method-assign]
        engine.snap = replace(
            engine.snap,
            sessions=tuple(
                replace(s, state="idle") if s.name == "ccl-auto-12" else s for s in engine.snap.sessions
            ),
        )
        app.show_snapshot()
        assert added == []
        assert app.sessions.cell("ccl-auto-12", "state") == "idle"

    drive(script)


def test_the_inbox_renders_the_head_of_a_huge_queue_that_fits_and_counts_the_rest() -> None:
    inbox = tuple(TaskRow(f"p:{i:05d}", "p", f"task {i}", "default", NOW - 10_000 + i) for i in range(10_000))

    async def script(pilot: Pilot[int], app: CfoApp, engine: FakeEngine) -> None:
        visible = app.inbox.scrollable_content_region.height - 1  # under the header row
        assert 10 < visible < INBOX_ROWS
        assert len(app.inbox.keys) == visible
        assert app.inbox.max_scroll_y == 0
        assert app.inbox.keys[0] == "p:00000"
        assert app.inbox.cell(app.inbox.keys[-1], "title") == f"… and {10_000 - visible + 1:,} more"
        assert "10,000 queued" in header(app)
        # The filter line takes a row; then a filter that matches more than fit rewrites rows in place.
        await pilot.press("slash")
        await pilot.pause()
        assert len(app.inbox.keys) == visible - 1
        removed: list[object] = []
        app.inbox.remove_row = removed.append  # type: ignore[method-assign,assignment]
        await pilot.press("1")
        assert app.inbox.keys[0] == "p:00001" and len(app.inbox.keys) == visible - 1
        assert removed == []

    drive(script, snap=replace(busy(), inbox=inbox))


def test_failures_and_swaps_arrive_as_toasts_even_from_worker_threads() -> None:
    async def script(pilot: Pilot[int], app: CfoApp, engine: FakeEngine) -> None:
        failed = Event(
            "failed", NOW, session="ccl-auto-15", task="billing-api:002-flaky-server", reason="timed out"
        )
        thread = threading.Thread(target=engine.emit, args=(failed,))
        thread.start()
        thread.join()
        engine.emit(Event("completed", NOW, session="ccl-auto-11", task="billing-api:001-fix-rounding"))
        await pilot.pause()
        await pilot.pause()
        assert any(
            t == "Task failed: billing-api:002-flaky-server in ccl-auto-15: timed out" for t in toasts(app)
        )
        app.show_snapshot()
        assert sorted(app.recent.cell(k, "result") for k in app.recent.keys) == ["done", "failed"]

    drive(script)


def test_watchdog_findings_arrive_as_warning_toasts() -> None:
    async def script(pilot: Pilot[int], app: CfoApp, engine: FakeEngine) -> None:
        engine.emit(
            Event(
                "stalled",
                NOW,
                session="ccl-auto-15",
                task="billing-api:002-flaky-server",
                reason="no output for 15m",
            )
        )
        engine.emit(Event("blocked_too_long", NOW, task="docs site:003-docs", reason="blocked for 1h: api:x"))
        await pilot.pause()
        await pilot.pause()
        shown = toasts(app)
        assert "Session stalled: ccl-auto-15 on billing-api:002-flaky-server: no output for 15m" in shown
        assert "Task blocked: docs site:003-docs: blocked for 1h: api:x" in shown

    drive(script)


def test_t_shows_one_event_type_at_a_time_and_no_event_is_lost_to_coalescing() -> None:
    async def script(pilot: Pilot[int], app: CfoApp, engine: FakeEngine) -> None:
        # Routine events coalesce into one re-render; every one of them must still reach the pane.
        threads = [
            threading.Thread(
                target=engine.emit, args=(Event("dispatched", NOW - n, session=f"s{n}", task=f"p:t{n}"),)
            )
            for n in range(20)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        engine.emit(Event("stalled", NOW, session="s1", task="p:t1", reason="no output for 15m"))
        await pilot.pause()
        app.show_snapshot()
        assert len(app.events_table.keys) == 21
        assert app.events_table.border_title == "Events 21 · t: filter by type"
        await pilot.press("t")
        assert {app.events_table.cell(k, "type") for k in app.events_table.keys} == {"dispatched"}
        assert len(app.events_table.keys) == 20
        assert app.events_table.border_title == "Events 20 · dispatched"
        await pilot.press("t")
        assert [app.events_table.cell(k, "task") for k in app.events_table.keys] == ["p:t1"]
        await pilot.press("t")
        assert len(app.events_table.keys) == 21

    drive(script)


def test_engine_errors_become_toasts_once_a_minute_each() -> None:
    async def script(pilot: Pilot[int], app: CfoApp, engine: FakeEngine) -> None:
        logger = logging.getLogger("engine.core")
        handler = app.errors_handler()
        logger.addHandler(handler)
        try:
            logger.error("launch of %s failed: %s", "web:1", "no prompt")
            logger.error("launch of %s failed: %s", "web:1", "no prompt")
            logger.warning("only a warning")
            await pilot.pause()
        finally:
            logger.removeHandler(handler)
        assert [t for t in toasts(app) if t.startswith("Engine error")] == [
            "Engine error: launch of web:1 failed: no prompt"
        ]

    drive(script)


def test_all_accounts_exhausted_is_announced_once_by_event_or_snapshot() -> None:
    async def script(pilot: Pilot[int], app: CfoApp, engine: FakeEngine) -> None:
        engine.snap = replace(engine.snap, accounts={"primary": NOW + 60, "secondary": NOW + 3600})
        engine.emit(Event("all_exhausted", NOW, account="primary", extra={"until": NOW + 60}))
        await pilot.pause()
        app.show_snapshot()
        app.show_snapshot()
        assert [t for t in toasts(app) if t.startswith("All accounts exhausted")] == [
            "All accounts exhausted: Dispatch waits; primary is usable again at 08:01:00 (in 1m 00s)."
        ]
        assert "ALL ACCOUNTS EXHAUSTED" in header(app)

    drive(script)


def test_a_toast_at_startup_leaves_the_inbox_laid_out_and_filled() -> None:
    async def script(pilot: Pilot[int], app: CfoApp, engine: FakeEngine) -> None:
        assert any(t.startswith("All accounts exhausted") for t in toasts(app))
        assert [str(c.label) for c in app.inbox.columns.values()] == ["Priority", "Project", "Title", "Age"]
        assert app.inbox.row_count == len(engine.snap.inbox) == 5

    exhausted = replace(busy(), accounts={"primary": NOW + 60, "secondary": NOW + 3600})
    drive(script, snap=exhausted)


def test_the_wide_layout_shows_every_detail_of_a_swap() -> None:
    async def script(pilot: Pilot[int], app: CfoApp, engine: FakeEngine) -> None:
        assert [str(c.label) for c in app.swaps.columns.values()] == [
            "Time",
            "From → to",
            "Trigger",
            "Session",
            "Detail",
            "Resumed",
            "Took",
        ]
        newest, _, first = app.swaps.keys
        assert app.swaps.cell(newest, "trigger") == "session limit"
        assert app.swaps.cell(newest, "session") == "ccl-auto-12"
        assert (
            app.swaps.cell(newest, "detail") == "You've hit your session limit · resets 10am (Europe/Paris)"
        )
        assert app.swaps.cell(newest, "resumed") == "3"
        assert (app.swaps.cell(first, "trigger"), app.swaps.cell(first, "session")) == ("operator", "—")
        assert app.swaps.cell(first, "detail") == "now: tasks move at once"

    drive(script, snap=swapped(), size=(200, 60))


def test_the_tail_follows_the_selection_and_fetches_only_that_session() -> None:
    async def script(pilot: Pilot[int], app: CfoApp, engine: FakeEngine) -> None:
        await pilot.press("down")
        await settle(pilot)
        assert app.tail.session == "ccl-auto-11"
        assert set(engine.tail_requests) <= {"ccl-1-conformvault", "ccl-auto-11"}
        assert engine.tail_requests[-1] == "ccl-auto-11"

    drive(script, size=(200, 60))


def test_a_small_terminal_shows_one_pane_under_the_sessions_behind_tabs() -> None:
    async def script(pilot: Pilot[int], app: CfoApp, engine: FakeEngine) -> None:
        shown = [pane for pane, widget in app.panes.items() if widget.display]
        assert app.query_one(Tabs).display and shown == ["inbox"]
        await pilot.press("right_square_bracket")
        assert [pane for pane, widget in app.panes.items() if widget.display] == ["blocked"]
        await pilot.press("left_square_bracket", "left_square_bracket")
        assert [pane for pane, widget in app.panes.items() if widget.display] == ["tail"]

    drive(script, size=(80, 24))


def test_every_action_is_in_the_command_palette() -> None:
    async def script(pilot: Pilot[int], app: CfoApp, engine: FakeEngine) -> None:
        titles = {c.title for c in app.get_system_commands(app.screen)}
        assert {
            "Pause dispatch",
            "Force-complete the selected session",
            "Swap account",
            "Zoom the pane tail",
            "Filter tasks",
            "Help",
            "Quit",
        } <= titles

    drive(script)


def test_a_session_held_after_a_failed_launch_says_so_and_the_palette_retries_it() -> None:
    from dataclasses import replace

    held = replace(
        busy(),
        sessions=tuple(
            replace(s, held_until=NOW + 95) if s.name == "ccl-auto-14" else s for s in busy().sessions
        ),
    )

    async def script(pilot: Pilot[int], app: CfoApp, engine: FakeEngine) -> None:
        assert "held 1m 35s" in [c.plain for c in app.sessions.get_row("ccl-auto-14")]
        [retry] = [c for c in app.get_system_commands(app.screen) if c.title == "Retry failed launches now"]
        retry.callback()
        await pilot.pause()
        assert engine.calls == [("retry_launches", "")]
        assert any("ccl-auto-14" in t for t in toasts(app))
        app.show_snapshot()
        assert not [c for c in app.get_system_commands(app.screen) if c.title == "Retry failed launches now"]
        assert "idle" in [c.plain for c in app.sessions.get_row("ccl-auto-14")]

    drive(script, snap=held)


def test_after_a_swap_a_session_still_on_the_left_account_is_marked_old() -> None:
    async def script(pilot: Pilot[int], app: CfoApp, engine: FakeEngine) -> None:
        assert app.sessions.cell("ccl-auto-11", "account") == "secondary"  # resumed there
        assert app.sessions.cell("ccl-auto-15", "account") == "primary (old)"  # its turn goes on there
        assert app.sessions.cell("ccl-auto-14", "account") == ""  # idle: no agent, no account

    drive(script, snap=swapped(), size=(200, 60))


def test_the_selected_sessions_last_failure_is_shown_in_full_above_its_tail() -> None:
    async def script(pilot: Pilot[int], app: CfoApp, engine: FakeEngine) -> None:
        app.sessions.select_key("ccl-auto-17")
        app.refresh_tail()
        await settle(pilot)
        assert app.tail.session == "ccl-auto-17" and app.tail.note is not None
        assert app.tail.note.plain.endswith(" — auth failed twice: Not logged in · Please run /login")
        assert "bold red" in str(app.tail.note.style)
        app.sessions.select_key("ccl-auto-14")  # it completed a task since its crash
        app.refresh_tail()
        await settle(pilot)
        assert app.tail.note is not None and "(a task completed since)" in app.tail.note.plain
        assert str(app.tail.note.style) == "dim"
        app.sessions.select_key("ccl-auto-11")
        app.refresh_tail()
        await settle(pilot)
        assert app.tail.note is None

    drive(script, size=(200, 60))
