"""The console's layout at 80x24, 120x40 and 200x60: nothing an operator needs is cut or covered."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path

import pytest
from textual.command import CommandList
from textual.pilot import Pilot
from textual.widget import Widget
from textual.widgets._toast import Toast

from cfo_tui.app import BOTTOM, SHORT_TOASTS, CfoApp
from cfo_tui.widgets.events import EventsTable
from cfo_tui.widgets.queues import BlockedTable, DelegatedTable, InboxTable, RecentTable
from cfo_tui.widgets.sessions import SessionsTable
from cfo_tui.widgets.swaps import SwapsTable
from engine.snapshot import TaskRow
from tests.tui.fakes import FakeEngine
from tests.tui.scenes import DEGRADED, TOASTED, busy, empty
from tests.tui.test_keys import Script, drive, header, toasts

SIZES = [(80, 24), (120, 40), (200, 60)]


def shown(app: CfoApp, widget: Widget) -> list[str]:
    """The lines of the screen inside `widget`, as drawn."""
    region = app.screen.find_widget(widget).region
    lines = app.screen._compositor.render_strips()
    return [lines[y].crop(region.x, region.right).text for y in range(region.y, region.bottom)]


def wide(size: tuple[int, int]) -> bool:
    return size[0] >= 150 and size[1] >= 40


@pytest.mark.parametrize("size", SIZES, ids=[f"{w}x{h}" for w, h in SIZES])
def test_every_empty_state_is_shown_whole_at_every_size(size: tuple[int, int]) -> None:
    empties: dict[str, str] = {
        "inbox": InboxTable.EMPTY,
        "blocked": BlockedTable.EMPTY,
        "delegated": DelegatedTable.EMPTY,
        "recent": RecentTable.EMPTY,
        "swaps": SwapsTable.EMPTY,
        "events": EventsTable.EMPTY,
        "tail": "No session selected.",
    }
    assert set(empties) == {pane for pane, _ in BOTTOM}

    async def script(pilot: Pilot[int], app: CfoApp, engine: FakeEngine) -> None:
        assert any(SessionsTable.EMPTY in line for line in shown(app, app.sessions))
        for pane, text in empties.items():
            if not wide(size):
                app.tabs.active = f"tab-{pane}"
                await pilot.pause()
                await pilot.pause()
            widget = app.side_tail if pane == "tail" and wide(size) else app.panes[pane]
            lines = shown(app, widget)
            assert any(text in line for line in lines), (pane, lines)

    drive(script, snap=empty(), size=size)


def test_the_counts_line_has_one_format_that_fits_80_columns() -> None:
    lines: dict[int, list[str]] = {}

    def at(width: int) -> Script:
        async def script(pilot: Pilot[int], app: CfoApp, engine: FakeEngine) -> None:
            lines[width] = header(app).split("\n")

        return script

    for width, height in SIZES:
        drive(at(width), size=(width, height))
    counts = {width: shown[1] for width, shown in lines.items()}
    assert counts[80] == counts[120] == counts[200]
    assert counts[80] == " 3 working · 2 idle · 1 stalled · 5 queued · 3 blocked · 2 delegated"
    # Under them, what got done: whole figures as far as they fit, then a mark that more follows.
    assert lines[80][2] == " 37 done today · 2 failed today · 14 done in the last hour · median 4m 12s · …"
    assert lines[200][2].endswith("secondary 4 tasks 25m 10s in 5h")


def many(tasks: tuple[TaskRow, ...], times: int) -> tuple[TaskRow, ...]:
    return tuple(replace(t, key=f"{t.key}-{i}") for i in range(times) for t in tasks)


def test_the_counts_of_a_big_pool_and_queue_still_fit_80_columns() -> None:
    one = busy().sessions[1]
    states = ["working"] * 10 + ["idle"] * 5 + ["stalled"] * 2
    big = replace(
        busy(),
        sessions=tuple(replace(one, name=f"ccl-auto-{i}", state=state) for i, state in enumerate(states)),
        inbox=many(busy().inbox, 2000),
        blocked=many(busy().blocked, 134),
        delegated=many(busy().delegated, 300),
    )

    async def script(pilot: Pilot[int], app: CfoApp, engine: FakeEngine) -> None:
        counts = header(app).split("\n")[1]
        assert counts == " 10 working · 5 idle · 2 stalled · 10,000 queued · 402 blocked · 600 delegated"
        assert len(counts) <= 80

    drive(script, snap=big, size=(80, 24))


def test_wide_the_sessions_table_is_as_wide_as_its_content_and_the_tail_gets_the_rest() -> None:
    short = replace(
        busy(),
        sessions=tuple(replace(s, last_fail=None, title=s.title and s.title[:20]) for s in busy().sessions),
    )

    async def script(pilot: Pilot[int], app: CfoApp, engine: FakeEngine) -> None:
        await pilot.pause()
        table, tail = app.sessions, app.side_tail
        assert app.tail is tail and not app.tab_tail.display
        assert table.outer_size.width + tail.outer_size.width == 200
        # Every cell whole, and no more room than that: the tail has the rest.
        lines = shown(app, table)
        assert not any("…" in line for line in lines)
        for s in short.sessions:
            assert any(s.name in line and (s.title or "") in line for line in lines)
        chrome = table.outer_size.width - table.scrollable_content_region.width
        assert table.outer_size.width == table.natural_width() + chrome
        assert tail.outer_size.width > 60

    drive(script, snap=short, size=(200, 60))


def test_wide_a_busy_table_leaves_the_tail_at_least_its_share() -> None:
    async def script(pilot: Pilot[int], app: CfoApp, engine: FakeEngine) -> None:
        await pilot.pause()
        assert app.side_tail.outer_size.width >= 60
        # The short names are shown whole before the long titles get more width.
        lines = shown(app, app.sessions)
        assert any("ccl-1-conformvault" in line for line in lines)

    drive(script, size=(200, 60))


def test_toasts_on_a_short_terminal_are_one_line_each_and_only_the_newest_two_show() -> None:
    async def script(pilot: Pilot[int], app: CfoApp, engine: FakeEngine) -> None:
        for event in TOASTED:
            engine.emit(event)
            await pilot.pause()
        await pilot.pause()
        await pilot.pause()
        shown_toasts = list(app.screen.query(Toast))
        assert len(shown_toasts) == SHORT_TOASTS
        assert all(t.outer_size.height == 1 for t in shown_toasts)
        texts = [str(t.render()) for t in shown_toasts]
        assert texts[0].startswith("Session stalled: ccl-auto-15")
        assert texts[1] == "Launch failed: ccl-auto-14: claude: command not found"
        # The oldest waits its turn: when a shown one goes, it shows.
        shown_toasts[1]._expire()
        await pilot.pause()
        await pilot.pause()
        assert any(str(t.render()).startswith("Task failed") for t in app.screen.query(Toast))

    drive(script, size=(80, 24))


def test_toasts_on_a_tall_terminal_keep_their_title_line_and_all_show() -> None:
    async def script(pilot: Pilot[int], app: CfoApp, engine: FakeEngine) -> None:
        for event in TOASTED:
            engine.emit(event)
            await pilot.pause()
        await pilot.pause()
        await pilot.pause()
        assert len(app.screen.query(Toast)) == len(TOASTED)
        assert "Task failed: webapp:003-old-browser in ccl-auto-16: crashed twice" in " ".join(toasts(app))

    drive(script, size=(200, 60))


class SlowStart(FakeEngine):
    """An engine whose startup (state, pool, recovery) takes until `go` is set."""

    def __init__(self) -> None:
        super().__init__(busy())
        self.go = asyncio.Event()

    async def run(self, stop: asyncio.Event) -> None:
        await self.go.wait()
        await super().run(stop)


def test_the_first_frames_say_starting_until_the_engine_has_started() -> None:
    async def script(pilot: Pilot[int], app: CfoApp, engine: FakeEngine) -> None:
        assert isinstance(engine, SlowStart)
        first = header(app)
        assert "starting…" in first and "account" not in first and "working" not in first
        assert any("starting…" in line for line in shown(app, app.sessions))
        engine.go.set()
        await pilot.pause()
        await pilot.pause()
        app.show_snapshot()
        await pilot.pause()
        assert "starting…" not in header(app) and "account primary" in header(app)
        assert app.sessions.keys[0] == "ccl-1-conformvault"
        await pilot.press("q")

    drive(script, engine=SlowStart(), start_engine=True)


def test_an_engine_that_fails_to_start_is_not_shown_as_starting() -> None:
    class Failing(FakeEngine):
        async def run(self, stop: asyncio.Event) -> None:
            raise RuntimeError("state_dir /x: cannot write state")

    async def script(pilot: Pilot[int], app: CfoApp, engine: FakeEngine) -> None:
        await pilot.pause()
        app.show_snapshot()
        assert "starting…" not in header(app)
        assert "ENGINE STOPPED: state_dir /x: cannot write state" in header(app)

    drive(script, engine=Failing(busy()), start_engine=True)


def test_the_degraded_engine_is_on_the_first_line_of_the_header_in_the_error_colour() -> None:
    async def script(pilot: Pilot[int], app: CfoApp, engine: FakeEngine) -> None:
        first = app.summary.text.split("\n")[0]
        assert first.plain.startswith(f" ⚠ DEGRADED: {DEGRADED}")
        # The whole line, not just its words, in the error colour.
        assert [(span.start, span.end, str(span.style)) for span in first.spans] == [
            (0, len(first), "bold white on red")
        ]
        assert len(first) == app.summary.content_region.width
        assert app.summary.outer_size.height == 4
        engine.snap = replace(engine.snap, degraded=None)
        app.show_snapshot()
        await pilot.pause()
        assert "DEGRADED" not in header(app)
        assert app.summary.outer_size.height == 3

    for size in SIZES:
        drive(script, snap=replace(busy(), degraded=DEGRADED), size=size)


def test_the_screenshot_goes_to_downloads_if_there_is_one_else_to_the_state_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home, state = tmp_path / "home", tmp_path / "state"
    home.mkdir()
    state.mkdir()
    monkeypatch.setenv("HOME", str(home))

    async def script(pilot: Pilot[int], app: CfoApp, engine: FakeEngine) -> None:
        app.config = replace(app.config, state_dir=state)
        app.action_screenshot()
        await pilot.pause()
        [saved] = state.glob("*.svg")
        assert any(str(saved) in t and t.startswith("Screenshot saved") for t in toasts(app))
        (home / "Downloads").mkdir()
        app.action_screenshot(filename="again.svg")
        await pilot.pause()
        assert (home / "Downloads" / "again.svg").read_text(encoding="utf-8").startswith("<svg")
        app.config = replace(app.config, state_dir=tmp_path / "gone")
        (home / "Downloads").rename(home / "elsewhere")
        app.action_screenshot()
        await pilot.pause()
        assert any(t.startswith("Screenshot not saved") and "gone" in t for t in toasts(app))

    drive(script)


def test_cfo_commands_come_first_in_the_palette_and_its_screenshot_is_cfos() -> None:
    async def script(pilot: Pilot[int], app: CfoApp, engine: FakeEngine) -> None:
        titles = [c.title for c in app.get_system_commands(app.screen)]
        textual_own = titles.index("Theme")
        assert titles[0] == "Pause dispatch" and "Help" in titles[:textual_own]
        assert {"Keys", "Quit", "Screenshot"} <= set(titles[textual_own:])
        [screenshot] = [c for c in app.get_system_commands(app.screen) if c.title == "Screenshot"]
        assert "state folder" in screenshot.help
        await pilot.press("ctrl+p")
        for _ in range(20):
            await pilot.pause(0.05)
            listed = app.screen.query_one(CommandList)
            if listed.option_count >= len(titles):
                break
        listed = app.screen.query_one(CommandList)
        palette = [
            str(listed.get_option_at_index(i).prompt).split("\n")[0] for i in range(listed.option_count)
        ]
        assert palette == titles

    drive(script)
