"""KeysFooter: Textual's Footer, without the widgets it leaks each time the shown bindings change."""

from __future__ import annotations

from textual.widgets import Footer


class KeysFooter(Footer):
    """Each FooterKey binds to the footer's `compact` reactive; Textual drops the watchers of removed
    keys only when `compact` changes, which here it never does. Every recompose (a focus change,
    pause <-> resume) would keep ~15 dead widgets alive for the life of the console, and each full
    garbage collection would walk them all."""

    async def recompose(self) -> None:
        await super().recompose()
        watchers: dict[str, list[tuple[object, object]]] = getattr(self, "__watchers", {})
        for entries in watchers.values():
            entries[:] = [(node, call) for node, call in entries if getattr(node, "is_attached", True)]
