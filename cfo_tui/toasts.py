"""Which toast the console shows for an engine event, an exhaustion or an engine error, if any."""

from __future__ import annotations

from dataclasses import dataclass

from textual.notifications import SeverityLevel

from cfo_tui.widgets.format import clock, elapsed
from cfo_tui.widgets.header import exhausted
from engine.events import Event
from engine.snapshot import Snapshot

REPEAT_TOAST = 60.0
"""The same engine error is shown again only after this many seconds."""


@dataclass(frozen=True)
class Toast:
    """One notification. Its text comes from the engine (task titles, pane lines): show it without markup."""

    text: str
    title: str
    severity: SeverityLevel = "information"
    timeout: float | None = None
    """Seconds on screen; None leaves Textual's default."""


def _swap(event: Event, snap: Snapshot) -> Toast:
    if snap.swaps:
        w = snap.swaps[-1]
        text = f"{w.from_account or '—'} → {w.to_account}: {w.trigger or 'a limit'}"
        if w.trigger_session:
            text += f" in {w.trigger_session}"
        elif w.snippet:
            text += f" ({w.snippet})"
        text += f"; {len(w.sessions_resumed)} session(s) resumed"
    else:
        text = f"now on {event.account or 'another account'}"
    return Toast(text, "Account swapped", timeout=10)


def _exhaustion(until: float | None, account: str | None, now: float) -> Toast:
    when = (
        f"{account or 'the earliest account'} is usable again at {clock(until, now)}"
        f" (in {elapsed(until - now)})"
        if until is not None
        else "no account says when it resets"
    )
    return Toast(f"Dispatch waits; {when}.", "All accounts exhausted", "error", timeout=30)


class Toasts:
    """Decides the toasts, remembering what it has said: one toast per exhaustion, whether the engine's
    event or a snapshot tells first, and the same engine error at most once per REPEAT_TOAST seconds."""

    def __init__(self) -> None:
        self._exhausted = False
        self._errors_shown: dict[str, float] = {}

    def for_event(self, event: Event, snap: Snapshot, now: float) -> Toast | None:
        """`snap` must be taken after the event: a swap's toast tells the snapshot's last swap."""
        if event.type == "failed":
            where = f" in {event.session}" if event.session else ""
            text = f"{event.task or 'a task'}{where}: {event.reason or 'no reason given'}"
            return Toast(text, "Task failed", "error", timeout=10)
        if event.type in ("launch_failed", "auth_failed"):
            title = "Launch failed" if event.type == "launch_failed" else "Login failed"
            return Toast(f"{event.session}: {event.reason}", title, "warning")
        if event.type == "stalled":
            text = f"{event.session} on {event.task}: {event.reason}"
            return Toast(text, "Session stalled", "warning", timeout=15)
        if event.type == "blocked_too_long":
            return Toast(f"{event.task}: {event.reason}", "Task blocked", "warning")
        if event.type == "swap":
            return _swap(event, snap)
        if event.type == "all_exhausted":
            until = event.extra.get("until")
            return self._announce(float(until) if isinstance(until, int | float) else None, None, now)
        return None

    def for_snapshot(self, snap: Snapshot, now: float) -> Toast | None:
        """The exhaustion a snapshot shows, naming the account usable again first; a snapshot with a
        usable account ends the exhaustion, so the next one is told again."""
        if not exhausted(snap, now):
            self._exhausted = False
            return None
        until, name = min((t, n) for n, t in snap.accounts.items() if t is not None)
        return self._announce(until, name, now)

    def for_error(self, text: str, now: float) -> Toast | None:
        """An engine ERROR log record's toast; `now` in monotonic seconds."""
        if now - self._errors_shown.get(text, -REPEAT_TOAST) < REPEAT_TOAST:
            return None
        self._errors_shown[text] = now
        return Toast(text, "Engine error", "error", timeout=15)

    def _announce(self, until: float | None, account: str | None, now: float) -> Toast | None:
        if self._exhausted:
            return None
        self._exhausted = True
        return _exhaustion(until, account, now)
