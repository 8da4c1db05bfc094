"""A yes/no modal (with an optional second way to say yes) for commands that change what the agents do."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Static

YES, ALTERNATIVE = "yes", "alternative"


class ConfirmScreen(ModalScreen[str | None]):
    """Dismissed with "yes" on `y` or the confirm button, "alternative" on `d` or its button when one is
    offered, None on `n`, `escape` or Cancel."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("y", "answer('yes')", "Yes", tooltip="Go ahead", id="confirm-yes"),
        Binding("d", "answer('alternative')", "Other", tooltip="Go ahead the other way", id="confirm-other"),
        Binding("n,escape", "answer('')", "No", tooltip="Leave things as they are", id="confirm-no"),
    ]

    def __init__(
        self,
        title: str,
        body: Text | str,
        confirm: str,
        *,
        danger: bool = False,
        alternative: str | None = None,
    ) -> None:
        super().__init__()
        self._title = title
        self._body = body
        self._confirm = confirm
        self._danger = danger
        self._alternative = alternative

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Static(Text(self._title, style="bold"), id="dialog-title")
            yield Static(self._body, id="dialog-body")
            with Horizontal(id="dialog-buttons"):
                yield Button(f"{self._confirm} (y)", variant="error" if self._danger else "primary", id=YES)
                if self._alternative is not None:
                    yield Button(f"{self._alternative} (d)", id=ALTERNATIVE)
                yield Button("Cancel (n)", id="no")

    def on_mount(self) -> None:
        self.query_one(f"#{YES}", Button).focus()

    def action_answer(self, answer: str) -> None:
        if answer == ALTERNATIVE and self._alternative is None:
            return
        self.dismiss(answer or None)

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id if event.button.id in (YES, ALTERNATIVE) else None)
