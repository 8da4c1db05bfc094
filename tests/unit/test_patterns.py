"""The patterns file: every entry matches its example, and a user file can replace or add entries."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine import screen
from engine.patterns import LAYOUT_KEYS, STOP_KINDS, Pattern, PatternError, load_patterns

SHIPPED = load_patterns()
RULE = "─" * 40


@pytest.mark.parametrize("pattern", SHIPPED.all(), ids=lambda p: f"{p.kind or 'layout'}:{p.name}")
def test_every_shipped_pattern_matches_its_example(pattern: Pattern) -> None:
    assert pattern.regex.search(pattern.example)


def test_the_shipped_file_has_every_layout_key_and_unique_names() -> None:
    assert set(SHIPPED.layout) == set(LAYOUT_KEYS)
    names = [p.name for p in (*SHIPPED.stops, *SHIPPED.warnings)]
    assert len(names) == len(set(names))
    assert {p.kind for p in SHIPPED.stops} == set(STOP_KINDS)


def test_the_shipped_patterns_are_loaded_once() -> None:
    assert load_patterns() is load_patterns()


def test_stop_examples_classify_as_their_own_kind() -> None:
    for p in SHIPPED.stops:
        stop = screen.match_stop(p.example)
        assert stop is not None and stop.kind == p.kind, p.name


def test_warning_examples_are_not_stops() -> None:
    for p in SHIPPED.warnings:
        assert screen.match_stop(p.example) is None, p.name


@pytest.mark.parametrize("pattern", [*SHIPPED.stops, *SHIPPED.warnings], ids=lambda p: p.name)
def test_every_shipped_stop_and_warning_has_a_readable_label(pattern: Pattern) -> None:
    assert pattern.label is not None and pattern.label.strip()
    assert "_" not in pattern.label  # a person's words, not an id
    assert SHIPPED.label(pattern.name) == pattern.label


@pytest.mark.parametrize(
    ("name", "label"),
    [
        ("hit_your_session_limit", "session limit"),
        ("hit_your_weekly_limit", "weekly limit"),
        ("hit_your_spend_limit", "monthly spend limit"),
        ("request_rejected_429", "API 429"),
        ("limit_menu", "limit menu"),
        ("transcript:hit_your_weekly_limit", "weekly limit"),
        ("transcript:rate_limit", "API 429"),
        ("transcript:429", "API 429"),
        ("operator", "operator"),
        ("limit_reset", "limit reset"),
        ("back_to_first", "back to first account"),
        ("someones_own_limit", "someones own limit"),
        (None, ""),
    ],
)
def test_every_trigger_of_a_swap_has_a_readable_name(name: str | None, label: str) -> None:
    assert SHIPPED.label(name) == label


@pytest.mark.parametrize(
    ("line", "name"),
    [
        ("You've hit your session limit · resets 4:15pm (UTC)", "hit_your_session_limit"),
        ("You've hit your monthly spend limit", "hit_your_spend_limit"),
        ("You've hit your org's monthly spend limit · ask your admin to raise it", "hit_your_spend_limit"),
        ("You've hit your weekly limit · resets Mon 9am", "hit_your_weekly_limit"),
        ("You've hit your limit · resets 2am (Europe/Paris)", "hit_your_limit"),
        ("You've hit your Opus limit · resets 2am", "hit_your_limit"),
    ],
)
def test_each_limit_wording_is_named_for_what_ran_out(line: str, name: str) -> None:
    stop = screen.match_stop(line)
    assert stop is not None and stop.pattern == name


def test_a_users_label_is_read_and_a_pattern_without_one_reads_as_its_name(tmp_path: Path) -> None:
    path = _override(
        tmp_path,
        "stops:\n"
        "  - {name: plan_limit, label: plan limit, kind: quota, regex: 'Plan limit', example: 'Plan limit'}\n"
        "  - {name: team_cap_hit, kind: quota, regex: 'Team cap', example: 'Team cap'}\n",
    )
    patterns = load_patterns(path)
    assert patterns.label("plan_limit") == "plan limit"
    assert patterns.label("team_cap_hit") == "team cap hit"


def _override(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "patterns.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_an_override_replaces_a_layout_pattern(tmp_path: Path) -> None:
    # A future version drawing its spinner with a new glyph.
    path = _override(
        tmp_path,
        "layout:\n  spinner:\n    regex: '^[◐◓◑◒] \\S.*…'\n    example: '◐ Thinking… (3s)'\n",
    )
    pane = f"> go\n\n◐ Thinking… (3s)\n\n{RULE}\n❯ \n{RULE}\n"
    assert screen.read_state(pane) != "working"
    patterns = load_patterns(path)
    assert screen.read_state(pane, patterns) == "working"
    assert patterns.layout["spinner"].source == str(path)
    assert patterns.layout["box"] == SHIPPED.layout["box"]


def test_an_override_replaces_a_stop_by_name_and_adds_new_ones(tmp_path: Path) -> None:
    path = _override(
        tmp_path,
        """
stops:
  - name: hit_your_limit
    kind: quota
    regex: 'You have reached your plan limit'
    example: 'You have reached your plan limit · resets 4pm'
  - name: billing_disabled
    kind: auth
    regex: 'Your organization has been disabled'
    example: 'API Error: 400 Your organization has been disabled.'
warnings:
  - name: extra_usage_on
    regex: 'Now using extra usage'
    example: 'Now using extra usage · resets 4pm'
""",
    )
    patterns = load_patterns(path)
    names = [p.name for p in patterns.stops]
    assert names.count("hit_your_limit") == 1
    assert names.index("hit_your_limit") == [p.name for p in SHIPPED.stops].index("hit_your_limit")
    assert names[-1] == "billing_disabled"
    assert len(patterns.stops) == len(SHIPPED.stops) + 1
    replaced = screen.match_stop("You have reached your plan limit · resets 4pm", patterns)
    assert replaced is not None and replaced.pattern == "hit_your_limit"
    added = screen.match_stop("API Error: 400 Your organization has been disabled.", patterns)
    assert added is not None and (added.kind, added.pattern) == ("auth", "billing_disabled")
    assert screen.match_stop("Now using extra usage · resets 4pm", patterns) is None


def test_an_override_is_what_cfo_screen_reads(tmp_path: Path) -> None:
    path = _override(
        tmp_path,
        "stops:\n  - name: new_limit\n    kind: quota\n    regex: 'Plan limit hit'\n"
        "    example: 'Plan limit hit · resets 4pm'\n",
    )
    pane = f"> go\n\n⏺ Working on it.\n  ⎿  Plan limit hit · resets 4pm\n\n{RULE}\n❯ \n{RULE}\n"
    assert screen.read(pane).stop is None
    reading = screen.read(pane, patterns=load_patterns(path))
    assert (reading.stop, reading.pattern) == ("quota", "new_limit")


BAD_OVERRIDES = {
    "does not compile": (
        "layout:\n  spinner:\n    regex: '^[✻'\n    example: '✻ x'\n",
        "layout.spinner.regex",
    ),
    "misses its example": (
        "stops:\n  - name: hit_your_limit\n    kind: quota\n    regex: 'You hit it'\n"
        '    example: "You\'ve hit your limit"\n',
        "stops.hit_your_limit",
    ),
    "unknown layout key": ("layout:\n  spinnner:\n    regex: 'x'\n    example: 'x'\n", "layout.spinnner"),
    "unknown entry key": (
        "layout:\n  box:\n    regex: 'x'\n    example: 'x'\n    flags: i\n",
        "layout.box",
    ),
    "missing example": ("layout:\n  box:\n    regex: 'x'\n", "layout.box.example"),
    "bad kind": (
        "stops:\n  - name: x_limit\n    kind: quotaa\n    regex: 'x'\n    example: 'x'\n",
        "stops.x_limit.kind",
    ),
    "missing name": ("stops:\n  - kind: quota\n    regex: 'x'\n    example: 'x'\n", "stops[0].name"),
    "name twice": (
        "warnings:\n  - {name: w, regex: 'x', example: 'x'}\n  - {name: w, regex: 'y', example: 'y'}\n",
        "warnings.w",
    ),
    "stop and warning": (
        "warnings:\n  - {name: hit_your_limit, regex: 'x', example: 'x'}\n",
        "hit_your_limit",
    ),
    "reset without its group": (
        "layout:\n  reset_clock:\n    regex: 'resets (\\d+)'\n    example: 'resets 3'\n",
        "layout.reset_clock.regex",
    ),
    "empty label": (
        "stops:\n  - name: x_limit\n    label: ''\n    kind: quota\n    regex: 'x'\n    example: 'x'\n",
        "stops.x_limit.label",
    ),
    "unknown section": ("patterns:\n  - x\n", "patterns"),
    "not a list": ("stops:\n  name: x\n", "stops"),
    "not YAML": ("layout: [\n", "not valid YAML"),
}


@pytest.mark.parametrize("case", sorted(BAD_OVERRIDES))
def test_a_bad_override_names_the_file_and_the_key(tmp_path: Path, case: str) -> None:
    text, key = BAD_OVERRIDES[case]
    path = _override(tmp_path, text)
    with pytest.raises(PatternError) as err:
        load_patterns(path)
    assert str(path) in str(err.value)
    assert key in str(err.value)


def test_a_missing_override_file_is_a_pattern_error(tmp_path: Path) -> None:
    with pytest.raises(PatternError, match="cannot read"):
        load_patterns(tmp_path / "nope.yaml")


def test_an_empty_override_changes_nothing(tmp_path: Path) -> None:
    patterns = load_patterns(_override(tmp_path, ""))
    assert [p.name for p in patterns.all()] == [p.name for p in SHIPPED.all()]
