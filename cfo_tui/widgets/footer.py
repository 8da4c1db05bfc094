"""KeysFooter: Textual's Footer, relabelled in place when only a key's label changes, and without the
widgets it leaks each time the shown bindings change."""

from __future__ import annotations

from textual.widgets import Footer
from textual.widgets._footer import FooterKey


class KeysFooter(Footer):
    """Pause <-> resume only renames the `p` key; rebuilding the footer for it (a dozen widgets styled
    and mounted, the screen laid out again) took longer than everything else that key does.

    Each FooterKey binds to the footer's `compact` reactive; Textual drops the watchers of removed
    keys only when `compact` changes, which here it never does. Every full recompose (a focus change)
    would keep ~15 dead widgets alive for the life of the console, and each full garbage collection
    would walk them all."""

    async def recompose(self) -> None:
        if self._relabel():
            return
        await super().recompose()
        watchers: dict[str, list[tuple[object, object]]] = getattr(self, "__watchers", {})
        for entries in watchers.values():
            entries[:] = [(node, call) for node, call in entries if getattr(node, "is_attached", True)]

    def _wanted(self) -> list[tuple[str, str, str, str, bool, str]] | None:
        """The keys `compose` would show (key, display, description, action, enabled, tooltip), or
        None when it would group some (then only a full recompose draws them)."""
        if not self._bindings_ready or not self.is_attached:
            return None
        active = self.screen.active_bindings
        first: dict[str, tuple[str, str, str, str, bool, str]] = {}
        for _, binding, enabled, tooltip in active.values():
            if not binding.show:
                continue
            if binding.group is not None:
                return None
            first.setdefault(
                binding.action,
                (
                    binding.key,
                    self.app.get_key_display(binding),
                    binding.description,
                    binding.action,
                    enabled,
                    tooltip,
                ),
            )
        wanted = list(first.values())
        if self.show_command_palette and self.app.ENABLE_COMMAND_PALETTE:
            palette = active.get(self.app.COMMAND_PALETTE_BINDING)
            if palette is not None:
                _, binding, enabled, _ = palette
                tooltip = binding.tooltip or binding.description
                display = self.app.get_key_display(binding)
                wanted.append((binding.key, display, binding.description, binding.action, enabled, tooltip))
        return wanted

    def _relabel(self) -> bool:
        """Update the shown keys in place if the same keys stay, each as enabled as before."""
        wanted = self._wanted()
        keys = list(self.children)
        if wanted is None or len(wanted) != len(keys) or not all(type(k) is FooterKey for k in keys):
            return False
        shown = [k for k in keys if isinstance(k, FooterKey)]
        for key, (name, display, _, _, enabled, _) in zip(shown, wanted, strict=True):
            if key.key != name or key.key_display != display or key._disabled == enabled:
                return False
        for key, (_, _, description, action, _, tooltip) in zip(shown, wanted, strict=True):
            key.action = action
            if tooltip != (key.tooltip or ""):
                key.tooltip = tooltip or None
            if key.description != description:
                key.description = description
                key.refresh(layout=True)
        return True
