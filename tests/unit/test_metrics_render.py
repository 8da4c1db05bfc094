"""Prometheus text rendering: prefixes, HELP/TYPE lines, counter suffixes, escaping and value formats."""

from __future__ import annotations

import pytest

from engine.statusapi import Metric, render_metrics


def test_families_render_help_then_type_then_samples_with_the_cfo_prefix() -> None:
    text = render_metrics(
        [
            Metric(
                "sessions", "Sessions by state.", "gauge", [({"state": "working"}, 3), ({"state": "idle"}, 1)]
            ),
            Metric("swaps", "Account swaps since start.", "counter", [({}, 2)]),
        ]
    )

    assert text == (
        "# HELP cfo_sessions Sessions by state.\n"
        "# TYPE cfo_sessions gauge\n"
        'cfo_sessions{state="working"} 3\n'
        'cfo_sessions{state="idle"} 1\n'
        "# HELP cfo_swaps_total Account swaps since start.\n"
        "# TYPE cfo_swaps_total counter\n"
        "cfo_swaps_total 2\n"
    )


def test_counter_already_ending_in_total_is_not_suffixed_twice_and_gauges_never_are() -> None:
    text = render_metrics(
        [
            Metric("tasks_done_total", "Tasks finished.", "counter", [({}, 7)]),
            Metric("queue_total", "Tasks queued now.", "gauge", [({}, 4)]),
            Metric("inbox", "Tasks in inbox.", "gauge", [({}, 5)]),
        ]
    )

    assert text == (
        "# HELP cfo_tasks_done_total Tasks finished.\n"
        "# TYPE cfo_tasks_done_total counter\n"
        "cfo_tasks_done_total 7\n"
        "# HELP cfo_queue_total Tasks queued now.\n"
        "# TYPE cfo_queue_total gauge\n"
        "cfo_queue_total 4\n"
        "# HELP cfo_inbox Tasks in inbox.\n"
        "# TYPE cfo_inbox gauge\n"
        "cfo_inbox 5\n"
    )


def test_label_values_escape_backslash_quote_and_newline_and_help_escapes_backslash_and_newline() -> None:
    text = render_metrics(
        [
            Metric(
                "task_info",
                'Path C:\\q "quoted"\nsecond line',
                "gauge",
                [({"project": 'a\\b "c"\nd', "kind": "plain"}, 1)],
            )
        ]
    )

    assert text == (
        '# HELP cfo_task_info Path C:\\\\q "quoted"\\nsecond line\n'
        "# TYPE cfo_task_info gauge\n"
        'cfo_task_info{project="a\\\\b \\"c\\"\\nd",kind="plain"} 1\n'
    )


def test_values_render_whole_numbers_plainly_and_special_floats_by_their_prometheus_names() -> None:
    samples: list[tuple[dict[str, str], float]] = [
        ({"v": "int"}, 12),
        ({"v": "whole"}, 3.0),
        ({"v": "fraction"}, 0.25),
        ({"v": "nan"}, float("nan")),
        ({"v": "up"}, float("inf")),
        ({"v": "down"}, float("-inf")),
    ]

    lines = render_metrics([Metric("x", "X.", "gauge", samples)]).splitlines()[2:]

    assert lines == [
        'cfo_x{v="int"} 12',
        'cfo_x{v="whole"} 3',
        'cfo_x{v="fraction"} 0.25',
        'cfo_x{v="nan"} NaN',
        'cfo_x{v="up"} +Inf',
        'cfo_x{v="down"} -Inf',
    ]


def test_a_family_without_samples_still_declares_itself_and_no_families_render_nothing() -> None:
    assert render_metrics([Metric("idle", "Idle sessions.", "gauge", [])]) == (
        "# HELP cfo_idle Idle sessions.\n# TYPE cfo_idle gauge\n"
    )
    assert render_metrics([]) == ""


@pytest.mark.parametrize(
    ("metric", "message"),
    [
        (Metric("bad-name", "h", "gauge", []), "invalid metric name 'cfo_bad-name'"),
        (Metric("x", "h", "gauge", [({"bad-label": "v"}, 1)]), "invalid label name 'bad-label'"),
        (Metric("x", "h", "gauge", [({"__reserved": "v"}, 1)]), "invalid label name '__reserved'"),
    ],
)
def test_names_prometheus_would_reject_raise(metric: Metric, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        render_metrics([metric])


def test_a_family_named_twice_raises_because_scrapers_reject_split_families() -> None:
    with pytest.raises(ValueError, match="'cfo_swaps_total' appears twice"):
        render_metrics([Metric("swaps", "a", "counter", []), Metric("swaps_total", "b", "counter", [])])
