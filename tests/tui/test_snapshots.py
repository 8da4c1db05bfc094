"""Pictures of the console on fixed engine states; a change to one is made on purpose (--snapshot-update)."""

from __future__ import annotations

from collections.abc import Callable

from tests.tui.scenes import SCENES

SnapCompare = Callable[..., bool]


def looks_as_approved(snap_compare: SnapCompare, name: str) -> bool:
    scene = SCENES[name]
    return snap_compare(scene.build(), terminal_size=scene.size, press=scene.press, run_before=scene.before)


def test_empty_pool(snap_compare: SnapCompare) -> None:
    assert looks_as_approved(snap_compare, "empty_pool")


def test_busy_pool_with_mixed_states_at_200x60(snap_compare: SnapCompare) -> None:
    assert looks_as_approved(snap_compare, "busy_pool")


def test_empty_pool_at_80x24(snap_compare: SnapCompare) -> None:
    assert looks_as_approved(snap_compare, "empty_pool_80x24")


def test_busy_pool_at_120x40(snap_compare: SnapCompare) -> None:
    assert looks_as_approved(snap_compare, "busy_pool_120x40")


def test_busy_pool_at_80x24(snap_compare: SnapCompare) -> None:
    assert looks_as_approved(snap_compare, "busy_pool_80x24")


def test_toasts_at_80x24_are_one_line_each_and_two_at_most(snap_compare: SnapCompare) -> None:
    assert looks_as_approved(snap_compare, "toasts_80x24")


def test_degraded_engine_in_the_header(snap_compare: SnapCompare) -> None:
    assert looks_as_approved(snap_compare, "degraded")


def test_fleet_badge_in_the_header_names_a_silent_host(snap_compare: SnapCompare) -> None:
    assert looks_as_approved(snap_compare, "fleet_header")


def test_fleet_screen_shows_every_host_and_what_it_runs(snap_compare: SnapCompare) -> None:
    assert looks_as_approved(snap_compare, "fleet_screen")


def test_pane_tail_tab_at_80x24(snap_compare: SnapCompare) -> None:
    assert looks_as_approved(snap_compare, "tail_tab_80x24")


def test_blocked_queue(snap_compare: SnapCompare) -> None:
    assert looks_as_approved(snap_compare, "blocked_queue")


def test_after_a_swap(snap_compare: SnapCompare) -> None:
    assert looks_as_approved(snap_compare, "after_swap")


def test_swaps_tab_at_100x30_shows_each_swap_in_full(snap_compare: SnapCompare) -> None:
    assert looks_as_approved(snap_compare, "swaps_tab")


def test_a_sessions_last_failure_reads_in_full_in_its_zoomed_tail(snap_compare: SnapCompare) -> None:
    assert looks_as_approved(snap_compare, "failure_detail")


def test_dispatch_paused(snap_compare: SnapCompare) -> None:
    assert looks_as_approved(snap_compare, "dispatch_paused")


def test_all_accounts_exhausted(snap_compare: SnapCompare) -> None:
    assert looks_as_approved(snap_compare, "all_exhausted")


def test_help_screen(snap_compare: SnapCompare) -> None:
    assert looks_as_approved(snap_compare, "help_screen")


def test_swap_confirm_modal_names_the_target(snap_compare: SnapCompare) -> None:
    assert looks_as_approved(snap_compare, "swap_confirm")


def test_events_pane_with_the_throughput_strip(snap_compare: SnapCompare) -> None:
    assert looks_as_approved(snap_compare, "events_pane")


def test_events_pane_filtered_to_one_type(snap_compare: SnapCompare) -> None:
    assert looks_as_approved(snap_compare, "events_by_type")
