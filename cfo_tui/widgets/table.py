"""LiveTable: a keyed DataTable updated by diffing rows in place, with columns fitted to its width."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import ClassVar

from rich.cells import cell_len, set_cell_size
from rich.console import Console, ConsoleOptions, RenderResult
from rich.measure import Measurement
from rich.segment import Segment
from rich.style import Style
from textual import events
from textual._types import SegmentLines
from textual.cache import LRUCache
from textual.widgets import DataTable

from engine.redact import readable

Cell = tuple[str, str]
"""A cell's plain text and Rich style: compared as data; a CellText is made only for what changed."""
Row = tuple[str, Mapping[str, Cell]]
"""A row's key and its cells by column key (every column, shown or not)."""
CELL_CACHE = 1000
"""Rendered cells kept per table: a 200x60 screen shows a few hundred."""
ROW_CACHE = 200
"""Rendered rows and lines kept per table: a screen shows at most about 60."""
NOTE = "\x00"
"""Keys of rows that say something about the table (`… 9,900 more`, `nothing blocked`) start with
NUL, which no session name or task key contains; they are never a selection."""


@dataclass(frozen=True)
class ColumnSpec:
    key: str
    label: str
    width: int
    """Fixed width, or the least width of a flexible column."""
    flex: int = 0
    """Share of the spare width; 0 keeps the column at `width`."""
    drop: int = 0
    """When the table is too narrow, columns with the highest `drop` go first; 0 never goes."""


CONTENT_CAP = 40
"""The most a flexible column asks for its content (see `fit_columns`): a long title is cut there."""


def fit_columns(
    specs: Sequence[ColumnSpec],
    width: int,
    padding: int,
    natural: Mapping[str, int] | None = None,
) -> tuple[tuple[str, int], ...]:
    """The columns that fit in `width` cells and their widths.

    Spare width goes first to the flexible columns whose content (`natural`, capped at CONTENT_CAP)
    is wider than their least width, then to every flexible column by flex. Without `natural`, all of
    it is shared by flex."""
    shown = list(specs)

    def needed(columns: Sequence[ColumnSpec]) -> int:
        return sum(c.width + 2 * padding for c in columns)

    while needed(shown) > width and any(c.drop for c in shown):
        shown.remove(max((c for c in shown if c.drop), key=lambda c: c.drop))
    spare = max(0, width - needed(shown))
    widths = {c.key: c.width for c in shown}
    flexible = [c for c in shown if c.flex]
    wants = {c.key: min(max(c.width, (natural or {}).get(c.key, 0)), CONTENT_CAP) for c in flexible}
    # Toward the content first, the smallest needs first: a short name is shown whole before a long
    # title gets more of the width, then what is left is shared equally among the longer ones.
    hungry = sorted(
        (c for c in flexible if widths[c.key] < wants[c.key]), key=lambda c: wants[c.key] - c.width
    )
    for i, c in enumerate(hungry):
        share = min(wants[c.key] - widths[c.key], spare // (len(hungry) - i))
        widths[c.key] += share
        spare -= share
    if flexible and spare > 0:
        total = sum(c.flex for c in flexible)
        given = 0
        for c in flexible:
            share = spare * c.flex // total
            widths[c.key] += share
            given += share
        widths[flexible[-1].key] += spare - given
    return tuple((c.key, widths[c.key]) for c in shown)


def natural_widths(specs: Sequence[ColumnSpec], rows: Iterable[Mapping[str, Cell]]) -> dict[str, int]:
    """Each flexible column's widest cell (and its label), capped at CONTENT_CAP."""
    widest = {c.key: cell_len(c.label) for c in specs if c.flex}
    for cells in rows:
        for key, most in widest.items():
            cell = cell_len(cells[key][0])
            if cell > most:
                widest[key] = min(cell, CONTENT_CAP)
    return widest


def note_row(columns: Sequence[ColumnSpec], name: str, text: str) -> Row:
    """A row that carries `text` in the widest column that is never dropped, and nothing elsewhere.

    LiveTable draws a note across the whole row: from that column if it fits from there, further
    left if not, so a note is cut only where the row itself is narrower."""
    cells: dict[str, Cell] = {c.key: ("", "") for c in columns}
    kept = [c for c in columns if not c.drop]
    target = max(kept, key=lambda c: c.flex) if kept else columns[0]
    cells[target.key] = (text, "dim italic")
    return (NOTE + name, cells)


def _slot(index: int) -> str:
    return f"\x01{index}"


class CellText:
    """One line of styled text, cut with an ellipsis to the width it is given.

    Rendered straight to one segment (no Rich Text layout); a new one replaces it whenever the
    content changes, which makes the object itself the key of LiveTable's cell cache.
    """

    __slots__ = ("plain", "style")

    def __init__(self, plain: str, style: str) -> None:
        # Every pane draws through here: names, titles and reasons may hold bidi or control characters.
        self.plain = readable(plain)
        self.style = Style.parse(style) if style else Style.null()

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        width = options.max_width
        text = self.plain
        if cell_len(text) > width:
            text = set_cell_size(text, width - 1) + "…" if width > 1 else "…"[:width]
        yield Segment(text, self.style)

    def __rich_measure__(self, console: Console, options: ConsoleOptions) -> Measurement:
        width = cell_len(self.plain)
        return Measurement(min(width, 1), width)


def _text(cell: Cell) -> CellText:
    return CellText(*cell)


class LiveTable(DataTable[CellText]):
    """Rows are synced by key: changed cells are updated, gone rows removed, new rows added.

    An update rebuilds the rows only when most of them are replaced at once (a new filter); either
    way the cursor stays on the same row, by key, while the data moves.
    """

    COLUMNS: ClassVar[tuple[ColumnSpec, ...]] = ()
    EMPTY: ClassVar[str] = ""
    """What an empty table says (see `note_row`)."""
    STARTING: ClassVar[str] = "starting…"
    """What an empty table says while `starting` (the engine has not sent its first snapshot)."""
    POSITIONAL: ClassVar[bool] = False
    """Rows that flow (a queue's head leaves, the newest event comes first) are drawn in fixed slots
    whose cells are rewritten: DataTable lays the whole screen out again on every removed row, and a
    row inserted at the top would mean re-adding all below it. The cursor then keeps its place, not
    its row. Off for tables whose selection must follow a row (the sessions)."""

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes, cursor_type="row", cell_padding=1)
        self.starting = False
        self.fit_content = False
        """Size the flexible columns to their content first (`fit_columns`), and report the width that
        shows every column whole (`natural_width`): the sessions table beside the pane tail."""
        self._natural: dict[str, int] = {}
        self._rows: dict[str, Mapping[str, Cell]] = {}
        self._order: list[str] = []
        self._layout: tuple[tuple[str, int], ...] = ()
        self._cell_lines: LRUCache[tuple[object, ...], SegmentLines] = LRUCache(CELL_CACHE)
        # DataTable keys these caches on its update count, so a live table fills them with lines no
        # frame will ask for again (its cell cache is behind `_cell_lines`, which is keyed better).
        # Sized to a screenful, they stop lengthening every garbage collection.
        self._row_render_cache = LRUCache(ROW_CACHE)
        self._line_cache = LRUCache(ROW_CACHE)
        self._row_renderable_cache = LRUCache(ROW_CACHE)
        self._cell_render_cache = LRUCache(ROW_CACHE)

    def _render_cell(
        self,
        row_index: int,
        column_index: int,
        base_style: Style,
        width: int,
        cursor: bool = False,
        hover: bool = False,
    ) -> SegmentLines:
        # DataTable forgets every rendered cell on any update; with 100 live rows an elapsed time
        # ticking somewhere means repainting them all. Here a cell is rendered again only when its
        # CellText object (replaced on change, kept alive by the key) or its place or look changed.
        row_key = self._row_locations.get_key(row_index)
        column_key = self._column_locations.get_key(column_index)
        if row_key is None or column_key is None:  # the header row or the row-label column
            return super()._render_cell(row_index, column_index, base_style, width, cursor, hover)
        note = self._note(row_index)
        key = (
            note,
            self._data[row_key][column_key],
            row_index,
            column_index,
            base_style,
            width,
            cursor,
            hover,
            self._show_hover_cursor,
            self._pseudo_class_state,
        )
        lines = self._cell_lines.get(key)
        if lines is None:
            if note is None:
                lines = self._render_text_cell(row_index, column_index, base_style, width, cursor, hover)
            else:
                lines = self._render_note_cell(
                    note, row_index, column_index, base_style, width, cursor, hover
                )
            self._cell_lines[key] = lines
        return lines

    def _note(self, row_index: int) -> tuple[str, str, str] | None:
        """(text, style, column) of the note row drawn at `row_index`, if it is one."""
        if not 0 <= row_index < len(self._order) or not self._order[row_index].startswith(NOTE):
            return None
        cells = self._rows[self._order[row_index]]
        shown = [column for column, _ in self._layout]
        for column in shown:
            text, style = cells[column]
            if text:
                return (text, style, column)
        return None

    def _render_note_cell(
        self,
        note: tuple[str, str, str],
        row_index: int,
        column_index: int,
        base_style: Style,
        width: int,
        cursor: bool,
        hover: bool,
    ) -> SegmentLines:
        """This column's part of a note drawn across the row (see `note_row`)."""
        text, style, column = note
        widths = [c.get_render_width(self) for c in self.ordered_columns]
        keys = [c.key.value for c in self.ordered_columns]
        row_width = sum(widths)
        pad = self.cell_padding
        plain = readable(text)
        room = row_width - 2 * pad
        if cell_len(plain) > room:
            plain = set_cell_size(plain, room - 1) + "…" if room > 1 else "…"[: max(room, 0)]
        start = sum(widths[: keys.index(column)]) + pad if column in keys else pad
        start = max(pad, min(start, row_width - pad - cell_len(plain)))
        left = sum(widths[:column_index])
        component_style, post_style = self._get_styles_to_render_cell(
            False,
            False,
            False,
            hover,
            cursor,
            self.show_cursor,
            self._show_hover_cursor,
            self.cursor_foreground_priority == "css",
            self.cursor_background_priority == "css",
        )
        # One meta for the whole row: the note's parts are one style, drawn as one run of text.
        pre = base_style + Style.from_meta({"row": row_index, "column": 0}) + component_style
        styled = pre + (Style.parse(style) if style else Style.null())
        if post_style:
            pre, styled = pre + post_style, styled + post_style
        # Only the text is styled: the blanks around it take the row's own look.
        whole = [
            Segment(" " * start, pre),
            Segment(plain, styled),
            Segment(" " * max(0, row_width - start - cell_len(plain)), pre),
        ]
        parts = list(Segment.divide(whole, [left, left + width]))
        return [parts[1] if len(parts) > 1 else [Segment(" " * width, pre)]]

    def _render_text_cell(
        self, row_index: int, column_index: int, base_style: Style, width: int, cursor: bool, hover: bool
    ) -> SegmentLines:
        """The line DataTable's own rendering gives a one-line CellText (its styles, padding and
        ellipsis), built as segments directly rather than through Rich's Padding and Styled layout:
        a changed row costs a few segments, not a Rich render per cell."""
        row_key = self._row_locations.get_key(row_index)
        column_key = self._column_locations.get_key(column_index)
        assert row_key is not None and column_key is not None
        cell = self._data[row_key][column_key]
        if not isinstance(cell, CellText) or self.rows[row_key].height != 1:
            return super()._render_cell(row_index, column_index, base_style, width, cursor, hover)
        fixed = row_index < self.fixed_rows or column_index < self.fixed_columns
        component_style, post_style = self._get_styles_to_render_cell(
            False,
            False,
            fixed,
            hover,
            cursor,
            self.show_cursor,
            self._show_hover_cursor,
            self.cursor_foreground_priority == "css",
            self.cursor_background_priority == "css",
        )
        pre = base_style + Style.from_meta({"row": row_index, "column": column_index}) + component_style
        padding = min(self.cell_padding, width // 2)
        inner = width - 2 * padding
        text = cell.plain
        if cell_len(text) > inner:
            text = set_cell_size(text, inner - 1) + "…" if inner > 1 else "…"[:inner]
        blank = pre + post_style if post_style else pre
        styled = pre + cell.style
        line = [Segment(" " * padding, blank)] if padding else []
        line.append(Segment(text, styled + post_style if post_style else styled))
        fill = inner - cell_len(text)
        if fill > 0:
            line.append(Segment(" " * fill, blank))
        if padding:
            line.append(Segment(" " * padding, blank))
        return [line]

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._cell_lines.clear()

    def natural_width(self) -> int:
        """The content width that shows every column with its content whole (up to CONTENT_CAP)."""
        return sum(
            max(c.width, self._natural.get(c.key, 0)) if c.flex else c.width for c in self.COLUMNS
        ) + 2 * self.cell_padding * len(self.COLUMNS)

    @property
    def keys(self) -> tuple[str, ...]:
        """Row keys in display order."""
        return tuple(self._order)

    @property
    def selected_key(self) -> str | None:
        if not self._order or not self._layout:
            return None
        key = self._order[min(max(self.cursor_row, 0), len(self._order) - 1)]
        return None if key.startswith(NOTE) else key

    def select_key(self, key: str) -> None:
        if key in self._rows and self._layout:
            self.move_cursor(row=self._order.index(key))

    def cell(self, key: str, column: str) -> str:
        """The plain text of a cell, for tests and callers that read what is shown."""
        return self._rows[key][column][0]

    def _sync_slots(self, rows: Sequence[Row]) -> None:
        old = [self._rows[key] for key in self._order]
        self._rows, self._order = dict(rows), [key for key, _ in rows]
        if not self._layout:
            return
        for i, (_, cells) in enumerate(rows[: len(old)]):
            for column, _ in self._layout:
                if old[i][column] != cells[column]:
                    self.update_cell(_slot(i), column, _text(cells[column]))
        for i in range(len(old) - 1, len(rows) - 1, -1):
            self.remove_row(_slot(i))
        for i in range(len(old), len(rows)):
            self.add_row(*(_text(rows[i][1][column]) for column, _ in self._layout), key=_slot(i))

    def on_resize(self, event: events.Resize) -> None:
        self._relayout()

    def on_mount(self) -> None:
        # Textual does not always send a first Resize (a toast shown while the screen is first laid
        # out loses it): a table with a size but no columns yet lays itself out after the first
        # refresh, and again in `sync`.
        self.call_after_refresh(self._lay_out_once)

    def _lay_out_once(self) -> None:
        if not self._layout:
            self._relayout()

    def _relayout(self) -> None:
        width = self.scrollable_content_region.width
        if width <= 0:
            return
        layout = fit_columns(self.COLUMNS, width, self.cell_padding, self._natural)
        if layout == self._layout:
            return
        selected = self.selected_key
        # Only a change of width (or, fitted to content, of the content's width) rebuilds the columns.
        self.clear(columns=True)
        self._cell_lines.clear()
        self._layout = layout
        labels = {c.key: c.label for c in self.COLUMNS}
        for key, column_width in layout:
            self.add_column(labels[key], width=column_width, key=key)
        for key in self._order:
            self._add(key)
        if selected is not None:
            self.select_key(selected)

    def _add(self, key: str) -> None:
        cells = self._rows[key]
        slot = _slot(self._order.index(key)) if self.POSITIONAL else key
        self.add_row(*(_text(cells[column]) for column, _ in self._layout), key=slot)

    def sync(self, rows: Sequence[Row]) -> None:
        """Show `rows` in this order, touching only what changed."""
        if not rows and self.EMPTY:
            rows = [note_row(self.COLUMNS, "empty", self.STARTING if self.starting else self.EMPTY)]
        if self.fit_content:
            natural = natural_widths(self.COLUMNS, (cells for key, cells in rows if not key.startswith(NOTE)))
            if natural != self._natural:
                self._natural = natural
                self._relayout()
        self._lay_out_once()
        if self.POSITIONAL:
            self._sync_slots(rows)
            return
        selected = self.selected_key
        new = dict(rows)
        order = [key for key, _ in rows]
        live = bool(self._layout)
        if live and 2 * sum(1 for key in self._order if key not in new) > len(self._order):
            # Most rows are gone (a new filter): one rebuild is cheaper than removing them one by one.
            self.clear()
            self._rows, self._order = new, order
            for key in order:
                self._add(key)
            if selected is not None and selected in new:
                self.select_key(selected)
            return
        for key in self._order:
            if key not in new and live:
                self.remove_row(key)
        kept = [key for key in self._order if key in new]
        if live:
            for key in kept:
                old, cells = self._rows[key], new[key]
                for column, _ in self._layout:
                    if old[column] != cells[column]:
                        self.update_cell(key, column, _text(cells[column]))
        # Rows past the first out-of-place one are re-added in order: cheap for appends and removals.
        same = 0
        while same < len(kept) and same < len(order) and kept[same] == order[same]:
            same += 1
        if live:
            for key in kept[same:]:
                self.remove_row(key)
        self._rows = new
        self._order = order
        if live:
            for key in order[same:]:
                self._add(key)
            if selected is not None and selected in new and self.selected_key != selected:
                self.select_key(selected)
