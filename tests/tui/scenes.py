"""The snapshot apps: fixed engine pictures at fixed sizes, shared by the snapshot tests and screenshots."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace

from textual.pilot import Pilot

from cfo_tui.app import CfoApp, make_app
from engine.events import Event
from engine.snapshot import FleetView, PeerRow, SessionRow, Snapshot, SwapRow, TaskRow, day_of
from engine.throughput import AccountUse, ThroughputView
from tests.tui.fakes import NOW, FakeEngine, make_config

AGENT_PANE = (
    "\x1b[38;5;174m✻\x1b[0m Welcome to \x1b[1mClaude Code\x1b[0m\n"
    "\n"
    "\x1b[2m> [042-audit-export.md] Export the audit log as CSV.\x1b[0m\n"
    "\n"
    "⏺ Export the audit log as CSV: reading \x1b[1msrc/audit/export.py\x1b[0m and the tests first.\n"
    "  ⎿  Read \x1b[1m3\x1b[0m files (ctrl+o to expand)\n"
    "⏺ \x1b[32mUpdate\x1b[0m(src/audit/export.py)\n"
    "  ⎿  Updated src/audit/export.py with \x1b[32m42 additions\x1b[0m and \x1b[31m7 removals\x1b[0m\n"
    "\n"
    "\x1b[38;5;174m✻ Crunching… \x1b[0m\x1b[2m(12m 34s · ↑ 4.2k tokens · esc to interrupt)\x1b[0m\n"
    "\n"
    "\x1b[2m────────────────────────────────────────────────────────────────────────────\x1b[0m\n"
    "❯ \n"
    "\x1b[2m────────────────────────────────────────────────────────────────────────────\x1b[0m\n"
    "  \x1b[38;5;211m⏵⏵ bypass permissions on\x1b[0m \x1b[2m(shift+tab to cycle)\x1b[0m\n"
    "\n"
    "\n"
)

STALLED_PANE = (
    "> [002-flaky-server.md] Retry flaky webhooks with a backoff.\n"
    "\n"
    "⏺ Reading src/webhooks/retry.py first.\n"
    "● API Error: 529 Overloaded. This is a server-side issue, usually temporary.\n"
    "\x1b[38;5;174m✻ Worked for 25m 01s\x1b[0m\n"
    "\n"
    "\x1b[2m────────────────────────────────────────────────────────────────────────────\x1b[0m\n"
    "❯ \n"
    "\x1b[2m────────────────────────────────────────────────────────────────────────────\x1b[0m\n"
)


def _session(
    name: str,
    state: str,
    task: str | None = None,
    title: str | None = None,
    started: float | None = None,
    model: str | None = "sonnet",
    last_fail: str | None = None,
    account: str | None = "primary",
    cleared: bool = False,
) -> SessionRow:
    kind = "dedicated" if name == "ccl-1-conformvault" else "pool"
    if kind == "pool" and state in ("idle", "out of pool"):
        account = None  # no agent runs in an idle pool session
    fail_at = NOW - 600 if last_fail else None
    return SessionRow(
        name,
        kind,
        state,
        task,
        title,
        account,
        model,
        started,
        last_fail,
        last_fail_at=fail_at,
        last_fail_cleared=cleared,
    )


SESSIONS = (
    _session(
        "ccl-auto-11", "working", "billing-api:001-fix-rounding", "Fix rounding of refunds", NOW - 95, "opus"
    ),
    _session(
        "ccl-auto-12",
        "working",
        "webapp:002-quota-banner",
        "Show a banner when the API says usage limit reached",
        NOW - 3723,
    ),
    _session("ccl-auto-13", "launching", "docs site:001-changelog", "Write the changelog entry", NOW - 4),
    # It crashed on one task, then completed another (the events pane shows it): the failure is history.
    _session(
        "ccl-auto-14", "idle", last_fail="crashed: the agent exited (bash is in the foreground)", cleared=True
    ),
    _session(
        "ccl-auto-15",
        "stalled",
        "billing-api:002-flaky-server",
        "Retry flaky webhooks",
        NOW - 1500,
        last_fail=(
            "launch failed: the agent did not reach its prompt within 30s "
            "(bash: line 1: claude: command not found)"
        ),
    ),
    _session("ccl-auto-16", "recycling"),
    _session("ccl-auto-17", "out of pool", last_fail="auth failed twice: Not logged in · Please run /login"),
    _session("ccl-auto-102", "idle", model=None, account=None),
    _session(
        "ccl-1-conformvault",
        "working",
        "conformvault:042-audit-export",
        "Export the audit log as CSV",
        NOW - 754,
        "opus",
    ),
)

INBOX = (
    TaskRow(
        "billing-api:003-refund-webhook",
        "billing-api",
        "Handle refund webhooks delivered twice",
        "critical",
        NOW - 300,
    ),
    TaskRow("webapp:004-login-rate-limit", "webapp", "Rate-limit the login endpoint", "high", NOW - 1800),
    TaskRow(
        "webapp:005-translate-settings",
        "webapp",
        "Translate the settings page into German, French, Spanish and Italian, keeping the glossary terms",
        "default",
        NOW - 7200,
    ),
    TaskRow(
        "docs site:003-export-format", "docs site", "Describe the new export format", "default", NOW - 90_000
    ),
    TaskRow("docs site:004-faq-typos", "docs site", "Fix typos in the FAQ", "low", NOW - 200_000),
)

BLOCKED = (
    TaskRow(
        "docs site:002-document-refunds",
        "docs site",
        "Document the refund rounding fix",
        "default",
        NOW - 4000,
        blocked_since=NOW - 3600,
        waiting_for="billing-api:001-fix-rounding",
    ),
    TaskRow(
        "webapp:006-release-notes",
        "webapp",
        "Draft the release notes",
        "low",
        NOW - 900,
        blocked_since=NOW - 600,
        waiting_for="webapp:004-login-rate-limit, billing-api:003-refund-webhook",
    ),
    TaskRow(
        "billing-api:008-bad-dep",
        "billing-api",
        "Migrate the ledger",
        "default",
        NOW - 90_000,
        blocked_since=NOW - 86_000,
        waiting_for="unsafe depends_on entry '../../etc'",
    ),
)

DELEGATED = (
    TaskRow(
        "billing-api:007-lint",
        "billing-api",
        "Fix the lint warnings",
        "low",
        NOW - 400,
        provider="gpu",
        job="job-7",
        job_status="running",
    ),
    TaskRow(
        "docs site:005-glossary",
        "docs site",
        "Draft a glossary",
        "default",
        NOW - 90,
        provider="gemini",
        job="job-8",
        job_status="queued",
    ),
)

OPERATOR_SWAP = SwapRow(
    NOW - 9000,
    "primary",
    "secondary",
    None,
    "operator",
    "now: tasks move at once",
    ("ccl-auto-11",),
    2.4,
    trigger="operator",
)

OLD_SWAP = SwapRow(
    NOW - 7000,
    "secondary",
    "primary",
    "ccl-auto-12",
    "hit_your_weekly_limit",
    "You've hit your weekly limit · resets Mon 1am",
    ("ccl-auto-11", "ccl-auto-12"),
    4.2,
    trigger="weekly limit",
)

NEW_SWAP = SwapRow(
    NOW - 20,
    "primary",
    "secondary",
    "ccl-auto-12",
    "hit_your_session_limit",
    "You've hit your session limit · resets 10am (Europe/Paris)",
    ("ccl-1-conformvault", "ccl-auto-11", "ccl-auto-12"),
    3.1,
    trigger="session limit",
)


def busy() -> Snapshot:
    return Snapshot(
        taken_at=NOW,
        active_account="primary",
        dispatch="running",
        accounts={"primary": None, "secondary": None},
        sessions=SESSIONS,
        inbox=INBOX,
        blocked=BLOCKED,
        delegated=DELEGATED,
        swaps=(OLD_SWAP,),
        counters={
            "completed": 412,
            "failed": 9,
            f"completed:{day_of(NOW)}": 37,
            f"failed:{day_of(NOW)}": 2,
            f"completed:{day_of(NOW - 86400)}": 51,
        },
        blocked_warn=6 * 3600.0,
        swap_target="secondary",
        throughput=ThroughputView(
            last_hour=14,
            median_seconds=252.0,
            accounts=(
                AccountUse("primary", 23, 3 * 3600 + 640, NOW - 3 * 3600 - 1200, since_reset=True),
                AccountUse("secondary", 4, 1510, NOW - 5 * 3600, since_reset=False),
            ),
        ),
    )


def empty() -> Snapshot:
    return Snapshot(
        taken_at=NOW,
        active_account="primary",
        dispatch="running",
        accounts={"primary": None, "secondary": None},
        sessions=(),
        inbox=(),
        blocked=(),
        delegated=(),
        swaps=(),
        swap_target="secondary",
    )


def _after_swap(row: SessionRow) -> SessionRow:
    """The swap resumed its sessions under secondary and the launch after it started there; the stalled
    run goes on under primary, which the pool has left."""
    if row.name in NEW_SWAP.sessions_resumed or row.state == "launching":
        return replace(row, account="secondary")
    return replace(row, account_old=row.account == "primary")


def swapped() -> Snapshot:
    return replace(
        busy(),
        sessions=tuple(_after_swap(s) for s in SESSIONS),
        active_account="secondary",
        accounts={"primary": NOW + 7200, "secondary": None},
        swaps=(OPERATOR_SWAP, OLD_SWAP, NEW_SWAP),
        swap_target=None,
    )


def exhausted() -> Snapshot:
    return replace(swapped(), accounts={"primary": NOW + 7200, "secondary": NOW + 3000}, dispatch="paused")


def app_for(snap: Snapshot, swap_to: str | None = "secondary") -> CfoApp:
    engine = FakeEngine(
        snap, tails={"ccl-1-conformvault": AGENT_PANE, "ccl-auto-15": STALLED_PANE}, swap_to=swap_to
    )
    return still(make_app(make_config(), engine, now=lambda: NOW, start_engine=False))


def still(app: CfoApp) -> CfoApp:
    """No animations: a picture never depends on how far a tab underline had slid."""
    app.animation_level = "none"
    return app


async def settle(pilot: Pilot[int]) -> None:
    """Wait for the pane tail fetch and the layout, so the picture does not depend on timing."""
    await pilot.pause()
    # The engine worker (when started) runs until quit; only the short fetches are waited for.
    fetches = [w for w in pilot.app.workers if w.group != "engine"]
    if fetches:
        await pilot.app.workers.wait_for_complete(fetches)
    await pilot.pause()
    # Events mark the panes dirty and the next refresh tick renders them; render now instead of racing it.
    if isinstance(pilot.app, CfoApp):
        pilot.app.show_snapshot()
        await pilot.pause()


async def after_swap_event(pilot: Pilot[int]) -> None:
    app = pilot.app
    assert isinstance(app, CfoApp) and isinstance(app.engine, FakeEngine)
    app.engine.emit(
        Event(
            "swap",
            NOW - 20,
            session="ccl-auto-12",
            account="secondary",
            reason="quota: session limit",
            extra={"from_account": "primary", "pattern": "hit_your_session_limit"},
        )
    )
    await settle(pilot)


EVENTS = (
    Event("dispatched", NOW - 95, session="ccl-auto-13", task="docs site:002-changelog", account="primary"),
    Event(
        "delegated",
        NOW - 90,
        task="docs site:005-glossary",
        reason="preferred_ai is gemini",
        extra={"provider": "gemini", "job": "job-8"},
    ),
    Event(
        "completed",
        NOW - 80,
        session="ccl-auto-14",
        task="webapp:001-signup-copy",
        account="primary",
        reason="turn ended",
        extra={"seconds": 312.0},
    ),
    Event(
        "blocked_too_long",
        NOW - 70,
        task="billing-api:009-ledger",
        reason="blocked for 23h: unsafe depends_on entry",
    ),
    Event(
        "stalled",
        NOW - 60,
        session="ccl-auto-15",
        task="billing-api:002-flaky-server",
        account="primary",
        reason="no output for 15m",
    ),
    Event(
        "failed",
        NOW - 40,
        session="ccl-auto-16",
        task="webapp:003-old-browser",
        account="primary",
        reason="crashed twice: the agent exited",
    ),
    Event(
        "api_error",
        NOW - 30,
        session="ccl-auto-12",
        task="webapp:002-banner",
        reason="API Error: 529 overloaded_error",
    ),
    Event(
        "dispatched",
        NOW - 4,
        session="ccl-auto-13",
        task="docs site:003-changelog",
        account="primary",
        extra={"model": "sonnet"},
    ),
)


async def with_events(pilot: Pilot[int]) -> None:
    """A morning's worth of events, as the engine would have sent them."""
    app = pilot.app
    assert isinstance(app, CfoApp) and isinstance(app.engine, FakeEngine)
    for event in EVENTS:
        app.engine.emit(event)
    await settle(pilot)
    app.clear_notifications()  # the toasts were seen at the time; the picture is about the panes
    await settle(pilot)


TOASTED = (
    Event(
        "failed",
        NOW - 40,
        session="ccl-auto-16",
        task="webapp:003-old-browser",
        reason="crashed twice: the agent exited",
    ),
    Event(
        "stalled",
        NOW - 30,
        session="ccl-auto-15",
        task="billing-api:002-flaky-server",
        reason="no output for 15m",
    ),
    Event("launch_failed", NOW - 20, session="ccl-auto-14", reason="claude: command not found"),
)


async def with_toasts(pilot: Pilot[int]) -> None:
    """Three events that each make a toast, one after the other."""
    app = pilot.app
    assert isinstance(app, CfoApp) and isinstance(app.engine, FakeEngine)
    for event in TOASTED:
        app.engine.emit(event)
        await pilot.pause()
    await settle(pilot)


DEGRADED = "cannot write state — No space left on device"


@dataclass(frozen=True)
class Scene:
    name: str
    build: Callable[[], CfoApp]
    size: tuple[int, int]
    press: tuple[str, ...] = ()
    before: Callable[[Pilot[int]], Awaitable[None]] = settle


def fleet() -> FleetView:
    """Three hosts: this one, one at work, one silent for two minutes."""
    return FleetView(
        host="box-1",
        url="nats://10.0.0.5:4222",
        state="connected",
        swaps=2,
        peers=(
            PeerRow("box-1", 0.4, False, "primary", "running", 3, 9, 3, 5),
            PeerRow(
                "box-2",
                1.1,
                False,
                "primary",
                "running",
                2,
                4,
                2,
                1,
                detail=(
                    ("ccl-auto-11", "working", "webapp:014-cache-headers"),
                    ("ccl-auto-12", "working", "billing-api:031-retry-budget"),
                    ("ccl-auto-13", "idle", None),
                    ("ccl-auto-14", "idle", None),
                ),
            ),
            PeerRow(
                "box-3",
                128.0,
                True,
                "primary",
                "running",
                1,
                2,
                1,
                0,
                detail=(("ccl-auto-11", "working", "docs site:007-glossary"), ("ccl-auto-12", "idle", None)),
            ),
        ),
    )


SCENES: dict[str, Scene] = {
    scene.name: scene
    for scene in (
        Scene("empty_pool", lambda: app_for(empty()), (120, 30)),
        Scene("empty_pool_80x24", lambda: app_for(empty()), (80, 24)),
        Scene("busy_pool", lambda: app_for(busy()), (200, 60), before=with_events),
        Scene("busy_pool_120x40", lambda: app_for(busy()), (120, 40), before=with_events),
        Scene("busy_pool_80x24", lambda: app_for(busy()), (80, 24)),
        Scene("toasts_80x24", lambda: app_for(busy()), (80, 24), before=with_toasts),
        Scene("degraded", lambda: app_for(replace(busy(), degraded=DEGRADED)), (80, 24)),
        Scene("fleet_header", lambda: app_for(replace(busy(), fleet=fleet(), in_fleet=3)), (120, 40)),
        Scene("fleet_screen", lambda: app_for(replace(busy(), fleet=fleet())), (120, 40), press=("f",)),
        Scene("tail_tab_80x24", lambda: app_for(busy()), (80, 24), press=("left_square_bracket",)),
        Scene("blocked_queue", lambda: app_for(busy()), (100, 30), press=("right_square_bracket",)),
        Scene("after_swap", lambda: app_for(swapped()), (200, 60), before=after_swap_event),
        Scene(
            "swaps_tab",
            lambda: app_for(swapped()),
            (100, 30),
            press=("right_square_bracket",) * 4,
            before=after_swap_event,
        ),
        Scene("dispatch_paused", lambda: app_for(replace(busy(), dispatch="paused")), (120, 36)),
        Scene("all_exhausted", lambda: app_for(exhausted()), (120, 36)),
        Scene("help_screen", lambda: app_for(busy()), (80, 24), press=("question_mark",)),
        Scene("swap_confirm", lambda: app_for(busy()), (80, 24), press=("s",)),
        Scene("zoomed_tail", lambda: app_for(busy()), (100, 30), press=("enter",)),
        # The stalled session, zoomed: its last failure in full above its pane.
        Scene("failure_detail", lambda: app_for(busy()), (100, 30), press=("down",) * 5 + ("enter",)),
        Scene("filtered", lambda: app_for(busy()), (120, 36), press=("slash", *"app", "enter")),
        Scene(
            "events_pane",
            lambda: app_for(busy()),
            (100, 30),
            press=("left_square_bracket", "left_square_bracket"),
            before=with_events,
        ),
        Scene(
            "events_by_type",
            lambda: app_for(busy()),
            (100, 30),
            press=("left_square_bracket", "left_square_bracket", "t", "t"),
            before=with_events,
        ),
    )
}
