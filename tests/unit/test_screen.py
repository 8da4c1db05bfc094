"""Reading captured panes: every sample under tests/data/panes has its expected reading here."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from engine import screen

PANES = Path(__file__).parent.parent / "data" / "panes"
TZ = ZoneInfo("Europe/Madrid")
# A Wednesday morning: 3am has passed (so "resets 3am" means tomorrow), Monday is five days away.
NOW = datetime(2026, 1, 14, 10, 30, tzinfo=TZ)


@dataclass(frozen=True)
class Expect:
    state: screen.State
    stop: screen.StopKind | None = None
    pattern: str | None = None
    reset_at: str | None = None
    box: str = ""
    paste: bool = False
    session_id: str | None = None
    turn_ended: bool = False


SID_EXIT = "3f2c9a1e-8b4d-4c1a-9e7f-2d6b5a8c0e14"

EXPECTED: dict[str, Expect] = {
    # Idle, working, and the layout around the box.
    "real-idle-fresh.txt": Expect("idle"),
    "real-idle-placeholder.txt": Expect("idle"),
    "real-idle-after-turn.txt": Expect("idle", turn_ended=True),
    "real-working-thinking.txt": Expect("working"),
    "real-working-long-no-esc.txt": Expect("working"),
    "real-working-compacting.txt": Expect("working"),
    "real-working-typed-ahead.txt": Expect("working", box="also update the changelog when you are done"),
    "real-working-retry-529.txt": Expect("working"),
    "real-working-newer-echo.txt": Expect("working"),
    # A prompt with nothing under it waits for input (as a resumed turn cut off before any answer does);
    # just after a submit the spinner follows within a moment, and only a turn-end line means done.
    "real-submitted-no-spinner.txt": Expect("idle"),
    "real-paste-pending.txt": Expect("unknown", box="[Pasted text #1 +40 lines]", paste=True),
    "real-interrupted.txt": Expect("idle", turn_ended=True),
    "real-shell-no-agent.txt": Expect("unknown"),
    "real-agent-exited.txt": Expect("unknown", session_id=SID_EXIT, turn_ended=True),
    "real-status.txt": Expect("idle", session_id="5966a933-6df3-4017-9468-bbf5f50bdf52", turn_ended=True),
    "real-status-panel.txt": Expect(
        "unknown", session_id="605d46b9-cbaf-4d65-833b-3ba8b940c183", turn_ended=True
    ),
    # Quota, oldest wording first.
    "real-quota-usage-limit-epoch.txt": Expect(
        "idle", "quota", "usage_limit_epoch", "2026-01-14T16:00:00+01:00", turn_ended=True
    ),
    "real-quota-madrid.txt": Expect(
        "idle", "quota", "usage_limit_reached", "2026-01-14T13:00:00+01:00", turn_ended=True
    ),
    "real-quota-5hour.txt": Expect(
        "idle", "quota", "five_hour_limit", "2026-01-15T03:00:00+01:00", turn_ended=True
    ),
    "real-quota-hit-your-limit-paris.txt": Expect(
        "idle", "quota", "hit_your_limit", "2026-01-15T02:00:00+01:00", turn_ended=True
    ),
    # 12:50am in Los Angeles has passed there (it is 1:30am), so it means tomorrow in that zone.
    "real-quota-session-la.txt": Expect(
        "idle", "quota", "hit_your_session_limit", "2026-01-15T00:50:00-08:00", turn_ended=True
    ),
    "real-quota-weekly.txt": Expect(
        "idle", "quota", "hit_your_weekly_limit", "2026-01-19T09:00:00+01:00", turn_ended=True
    ),
    "real-quota-weekly-weekday.txt": Expect(
        "idle", "quota", "weekly_limit_reached", "2026-01-19T09:00:00+01:00", turn_ended=True
    ),
    "real-quota-rate-limit-error.txt": Expect("idle", "quota", "rate_limit_error", turn_ended=True),
    "real-quota-newer-echo.txt": Expect(
        "idle", "quota", "hit_your_session_limit", "2026-01-14T22:30:00+01:00", turn_ended=True
    ),
    "real-limit-menu.txt": Expect(
        "menu", "quota", "hit_your_session_limit", "2026-01-14T18:50:00+00:00", turn_ended=True
    ),
    "real-limit-menu-bare.txt": Expect("menu", "quota", "limit_menu", turn_ended=True),
    # Server errors never read as quota, and an old one does not veto a fresh hit.
    "real-server-529.txt": Expect("idle", "server_error", "overloaded_error", turn_ended=True),
    "real-server-500.txt": Expect("idle", "server_error", "api_error", turn_ended=True),
    "real-server-throttle.txt": Expect("idle", "server_error", "server_throttle", turn_ended=True),
    "real-server-burst.txt": Expect("idle", "server_error", "overloaded_error", turn_ended=True),
    "real-stale-529-then-fresh-quota.txt": Expect(
        "idle", "quota", "hit_your_limit", "2026-01-15T02:00:00+01:00", turn_ended=True
    ),
    "real-old-quota-answered.txt": Expect("idle", turn_ended=True),
    # Quota words that are not the agent's own error line.
    "real-quota-words-in-task.txt": Expect("working"),
    # A task's own ⎿ lines are echoed with the prompt: never the agent's error line, nor a veto.
    "real-submitted-result-line-in-task.txt": Expect("idle"),
    "real-quota-under-result-line-in-task.txt": Expect(
        "idle", "quota", "hit_your_limit", "2026-01-15T02:00:00+01:00", turn_ended=True
    ),
    "real-quota-words-in-answer.txt": Expect("idle", turn_ended=True),
    "real-quota-words-in-tool-output.txt": Expect("idle", turn_ended=True),
    "real-rate-limit-prose.txt": Expect("idle", turn_ended=True),
    "real-approaching-limit.txt": Expect("idle", turn_ended=True),
    # Authentication.
    "real-auth-not-logged-in.txt": Expect("idle", "auth", "not_logged_in", turn_ended=True),
    "real-auth-token-expired.txt": Expect("idle", "auth", "oauth_expired", turn_ended=True),
    "real-auth-token-revoked.txt": Expect("idle", "auth", "oauth_revoked", turn_ended=True),
    # Captured from the simulator, which every integration test stands on.
    "sim-idle.txt": Expect("idle"),
    "sim-working.txt": Expect("working"),
    "sim-working-long.txt": Expect("working"),
    "sim-paste-pending.txt": Expect("unknown", box="[Pasted text #1 +40 lines]", paste=True),
    "sim-turn-ended.txt": Expect("idle", turn_ended=True),
    "sim-queued-input.txt": Expect("working"),
    "sim-status.txt": Expect("idle", session_id="048a2e3d-a4c2-4391-8f62-977d81bbaaac", turn_ended=True),
    "sim-quota-stop.txt": Expect(
        "idle", "quota", "hit_your_limit", "2026-01-15T03:00:00+01:00", turn_ended=True
    ),
    "sim-limit-menu.txt": Expect(
        "menu", "quota", "hit_your_limit", "2026-01-15T03:00:00+01:00", turn_ended=True
    ),
    "sim-error-529.txt": Expect("idle", "server_error", "overloaded_error", turn_ended=True),
    "sim-error-500.txt": Expect("idle", "server_error", "internal_server_error", turn_ended=True),
    "sim-error-429.txt": Expect("idle", "quota", "request_rejected_429", turn_ended=True),
    "sim-throttle.txt": Expect("idle", "server_error", "server_throttle", turn_ended=True),
    "sim-retrying.txt": Expect("working"),
    "sim-auth.txt": Expect("idle", "auth", "not_logged_in", turn_ended=True),
    "sim-resumed-cut-off.txt": Expect("idle"),
}


def _pane(name: str) -> str:
    return (PANES / name).read_text(encoding="utf-8")


def test_every_sample_has_an_expected_reading() -> None:
    on_disk = {p.name for p in PANES.glob("*.txt")}
    assert on_disk - set(EXPECTED) == set(), "samples without an expected reading"
    assert set(EXPECTED) - on_disk == set(), "expected readings without a sample"


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_sample_reads_as_expected(name: str) -> None:
    text, want = _pane(name), EXPECTED[name]
    reading = screen.read(text, now=NOW, tz=TZ)
    assert reading.to_json() == {
        "state": want.state,
        "stop": want.stop,
        "reset_at": want.reset_at,
        "pattern": want.pattern,
    }
    assert screen.read_state(text) == want.state
    assert screen.box_text(text) == want.box
    assert screen.paste_pending(text) is want.paste
    assert screen.last_session_id(text) == want.session_id
    assert screen.turn_ended(text) is want.turn_ended
    stop = screen.classify(text)
    assert (stop.kind if stop else None, stop.pattern if stop else None) == (want.stop, want.pattern)


def test_reading_prints_as_one_json_object() -> None:
    reading = screen.read(_pane("real-quota-5hour.txt"), now=NOW, tz=TZ)
    assert json.loads(json.dumps(reading.to_json())) == {
        "state": "idle",
        "stop": "quota",
        "reset_at": "2026-01-15T03:00:00+01:00",
        "pattern": "five_hour_limit",
    }
    assert reading.snippet == "5-hour limit reached ∙ resets 3am /upgrade to increase your usage limit."


def test_snippet_is_at_most_120_characters_around_the_match() -> None:
    stop = screen.classify(_pane("real-auth-token-expired.txt"))
    assert stop is not None and len(stop.snippet) == screen.SNIPPET_CHARS
    assert "OAuth token has expired" in stop.snippet


# --- the box, the menu and what is below -----------------------------------------------------------------

RULE = "─" * 40


def test_the_box_is_the_last_prompt_line_between_rules() -> None:
    text = "\n".join(["> old prompt", "", RULE, "❯ first row of a long", "  request", RULE, "  ⏵⏵ footer"])
    view = screen.split_pane(text)
    assert view.box == (3, 5)
    assert view.box_lines == ("❯ first row of a long", "  request")
    assert view.below == ("  ⏵⏵ footer",)
    assert screen.box_text(text) == "first row of a long\nrequest"


def test_a_prompt_line_without_rules_is_not_a_box() -> None:
    view = screen.split_pane("❯ continue\n  ⎿  You've hit your limit · resets 2am\n")
    assert view.box is None
    assert screen.read_state("❯ continue\n") == "unknown"


def test_the_menu_is_not_a_box_and_a_quoted_menu_above_a_box_is_not_the_menu() -> None:
    menu = ["What do you want to do?", "❯ 1. Stop and wait for limit to reset", "  2. Add funds"]
    assert screen.read_state("\n".join(["> go", "", *menu])) == "menu"
    quoted = ["> go", "", "⏺ The menu reads:", *("  " + line for line in menu), "", RULE, "❯ ", RULE]
    assert screen.read_state("\n".join(quoted)) == "idle"


def test_no_break_space_after_the_prompt_mark_is_read_as_a_space() -> None:
    assert screen.read_state(f"{RULE}\n❯\u00a0\n{RULE}\n") == "idle"


def test_a_shell_prompt_under_a_leftover_box_means_the_agent_is_gone() -> None:
    text = f"> hi\n\n⏺ Hello.\n\n✻ Worked for 2s\n\n{RULE}\n❯ \n{RULE}\n  ⏵⏵ footer\n$ "
    assert screen.split_pane(text).exited
    assert screen.read_state(text) == "unknown"
    assert screen.read_state(text.removesuffix("$ ")) == "idle"


def test_output_below_a_leftover_spinner_means_it_is_not_the_live_one() -> None:
    text = f"> hi\n\n✻ Thinking… (2s)\n\n⏺ Hello.\n\n{RULE}\n❯ \n{RULE}\n"
    assert screen.read_state(text) == "idle"
    assert not screen.turn_ended(text)


def test_a_resumed_conversation_without_turn_end_lines_is_idle_but_not_a_finished_turn() -> None:
    text = f"> [a.md] do it\n\n⏺ Working on: [a.md] do it\n\n⏺ Done: [a.md] do it\n\n{RULE}\n❯ \n{RULE}\n"
    assert screen.read_state(text) == "idle"
    assert not screen.turn_ended(text)


def test_last_session_id_rejects_what_is_not_a_uuid() -> None:
    good = "605d46b9-cbaf-4d65-833b-3ba8b940c183"
    assert screen.last_session_id(f"Session ID: {good}\nSession ID: ----") == good
    assert screen.last_session_id(f"claude --resume {good}e REPL") is None
    assert screen.last_session_id("Session ID: 605d46b9-cbaf-4d65-833b-3ba8b940c18z") is None


# --- what is new since the last look ----------------------------------------------------------------------

BOX = f"\n{RULE}\n❯ \n{RULE}\n  ⏵⏵ bypass permissions on (shift+tab to cycle)\n"
PROMPT = "> [fix.md] fix it\n\n⏺ Working on: [fix.md] fix it\n"
ERR_529 = '  ⎿  API Error: 529 {"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}\n'
ERR_QUOTA = "  ⎿  You've hit your limit · resets 2am (Europe/Paris)\n"


def test_new_lines_survive_scrolling() -> None:
    before = "a\nb\nc\n" + BOX
    after = "b\nc\nd\n" + BOX  # scrolled by one, one line printed, the bottom redrawn under it
    fresh = screen.new_line_numbers(before, after)
    assert min(fresh) == 2 and max(fresh) == len(after.splitlines()) - 1


def test_a_message_printed_again_is_new() -> None:
    before = PROMPT + ERR_QUOTA + BOX
    after = PROMPT + ERR_QUOTA + "\n> continue\n" + ERR_QUOTA + BOX
    fresh = screen.new_line_numbers(before, after)
    lines = after.splitlines()
    assert min(fresh) == lines.index("> continue")
    assert lines.index(ERR_QUOTA.rstrip("\n"), min(fresh)) in fresh


def test_a_capture_without_overlap_is_new_throughout() -> None:
    assert screen.new_line_numbers("x\ny\n", "a\nb\n") == frozenset({0, 1})
    assert screen.new_line_numbers("", "a\n") == frozenset({0})


def test_a_hit_already_seen_does_not_hit_again_with_since() -> None:
    text = PROMPT + ERR_QUOTA + BOX
    assert screen.classify(text) is not None
    assert screen.classify(text, since=text) is None


def test_an_old_server_error_does_not_veto_a_fresh_quota_hit_in_the_same_turn() -> None:
    seen = PROMPT + ERR_529 + BOX
    now = PROMPT + ERR_529 + ERR_QUOTA + BOX
    # Read whole, the 529 in the same turn vetoes: a burst of server errors must never swap.
    whole = screen.classify(now)
    assert whole is not None and (whole.kind, whole.pattern, whole.line) == (
        "server_error",
        "overloaded_error",
        3,
    )
    stop = screen.classify(now, since=seen)
    assert stop is not None and (stop.kind, stop.pattern) == ("quota", "hit_your_limit")


def test_a_fresh_server_error_vetoes_a_quota_hit_in_the_same_new_text() -> None:
    stop = screen.classify(PROMPT + ERR_QUOTA + ERR_529 + BOX, since=PROMPT + BOX)
    assert stop is not None and stop.kind == "server_error"


def test_read_accepts_since_like_classify() -> None:
    text = PROMPT + ERR_QUOTA + BOX
    assert screen.read(text, since=text, now=NOW, tz=TZ).stop is None


# --- whose conversation a pane shows ------------------------------------------------------------------------

UUID_A = "605d46b9-cbaf-4d65-833b-3ba8b940c183"
UUID_B = "11111111-2222-4333-8444-555555555555"


def test_shown_answers_are_the_first_lines_of_the_text_answers_above_the_box() -> None:
    conversation = ["> hello", "", "⏺ Working on: hello", "", "● Done: hello", "  more", ""]
    tool = ["⏺ Bash(ls -la)", "  ⎿  a"]
    text = "\n".join([*conversation, *tool, "", RULE, "❯ ⏺ typed", RULE])
    assert screen.shown_answers(text) == ["Working on: hello", "Done: hello"]


def test_status_session_id_is_read_only_from_a_status_newer_than_those_counted_before() -> None:
    old = ["> /status", f"  ⎿  Session ID: {UUID_A}", ""]
    box = [RULE, "❯ /status", RULE]
    before = "\n".join([*old, *box])
    assert screen.status_echoes(before) == 1  # the command typed in the box is not an echo
    assert screen.status_session_id(before, 1) is None
    after = "\n".join([*old, "> /status", f"  ⎿  Session ID: {UUID_B}", "", RULE, "❯ ", RULE])
    assert screen.status_session_id(after, 1) == UUID_B


def test_status_session_id_is_none_until_the_id_shows_and_rejects_a_non_uuid() -> None:
    waiting = "\n".join(["❯ /status", "", RULE, "❯ ", RULE])
    assert screen.status_session_id(waiting, 0) is None
    broken = "\n".join(["❯ /status", f"  ⎿  Session ID: {UUID_A}x", "", RULE, "❯ ", RULE])
    assert screen.status_session_id(broken, 0) is None


# --- what Claude Code 2.1 prints: API errors as answer bullets, retry spinners, the limit menu it opens ---

BANNER = " ▐▛███▜▌   Claude Code v2.1.197\n▝▜█████▛▘  Sonnet 5 · Claude API\n  ▘▘ ▝▝    /w/proj\n"
BOX2 = f"{RULE}\n❯\u00a0\n{RULE}\n  ⏵⏵ bypass permissions on (shift+tab to cycle)\n"
ECHO = "❯ [t.md] Do the thing.\n  Second line of the task.\n"


def pane2(*middle: str) -> str:
    return BANNER + ECHO + "".join(middle) + BOX2


@pytest.mark.parametrize(
    ("bullet", "kind", "pattern"),
    [
        (
            "● API Error: Request rejected (429) · This request would exceed your account's rate limit. "
            "Please try again\n  later.\n",
            "quota",
            "request_rejected_429",
        ),
        (
            "● API Error: Server is temporarily limiting requests (not your usage limit) · Rate limited\n",
            "server_error",
            "server_throttle",
        ),
        ("● API Error: 500 Internal server error. This is a server-side issue.\n", "server_error", None),
        (
            "● API Error: 529 Overloaded. This is a server-side issue, usually temporary.\n",
            "server_error",
            None,
        ),
        ("● You've hit your monthly spend limit\n", "quota", "hit_your_spend_limit"),
    ],
)
def test_an_api_error_shown_as_an_answer_bullet_then_a_turn_end_line_is_the_turns_stop(
    bullet: str, kind: str, pattern: str | None
) -> None:
    text = pane2(bullet, "✻ Worked for 4s\n")
    stop = screen.classify(text)
    assert stop is not None and stop.kind == kind
    assert pattern is None or stop.pattern == pattern
    assert screen.turn_ended(text) and screen.read_state(text) == "idle"


def test_limit_words_inside_a_models_answer_are_not_a_stop() -> None:
    text = pane2(
        "● The log says You've hit your limit · resets 2am, and API Error: 429 rate limit.\n",
        "✻ Worked for 2s\n",
    )
    assert screen.classify(text) is None


@pytest.mark.parametrize(
    "spinner",
    ["✻ API error · Retrying in 33s · attempt 7/10", "✻ 529 Overloaded · Retrying in 1s · attempt 2/2"],
)
def test_a_retry_spinner_is_work_in_progress_never_a_stop(spinner: str) -> None:
    text = pane2(spinner + "\n  ⎿  Tip: Use /btw to ask a quick side question\n")
    assert screen.read_state(text) == "working"
    assert screen.classify(text) is None and not screen.turn_ended(text)


def test_the_reset_time_beside_the_limit_menu_the_agent_opened_itself_is_read() -> None:
    menu = (
        "  What do you want to do?\n  ❯ 1. Stop and wait for limit to reset\n    2. Upgrade your plan\n"
        "  Enter to confirm · Esc to cancel\n"
    )
    text = (
        BANNER
        + ECHO
        + "  ⎿  You've hit your session limit · resets 4:15pm (UTC)\n"
        + "✻ Crunched for 0s\n❯ /rate-limit-options\n"
        + RULE
        + "\n"
        + menu
    )
    reading = screen.read(text, now=NOW, tz=TZ)
    assert (reading.state, reading.stop, reading.pattern) == ("menu", "quota", "hit_your_session_limit")
    assert reading.reset_at is not None and reading.reset_at.hour == 16 and reading.reset_at.minute == 15


def test_a_resumed_conversation_cut_off_before_any_answer_waits_for_input() -> None:
    assert screen.read_state(pane2()) == "idle"
    assert not screen.turn_ended(pane2())


@pytest.mark.parametrize(
    "wording",
    [
        "You've hit your Sonnet limit · resets 2am",
        "You've hit your monthly spend limit",
        "You're out of usage credits",
        "Your org is out of usage",
    ],
)
def test_the_newer_limit_wordings_are_quota(wording: str) -> None:
    stop = screen.classify(pane2(f"  ⎿  {wording}\n", "✻ Worked for 1s\n"))
    assert stop is not None and stop.kind == "quota"


def test_a_limit_line_right_under_a_tools_result_is_the_turns_stop() -> None:
    text = pane2(
        "● Bash(sleep 2)\n  ⎿  (No output)\n  ⎿  You've hit your session limit · resets 6:37pm (UTC)\n",
        "✻ Cogitated for 2s\n",
    )
    stop = screen.classify(text)
    assert stop is not None and stop.kind == "quota"
    # The tool's own (single) result is never the agent's line, whatever it says.
    quoted = pane2(
        "● Bash(grep -r limit logs/)\n  ⎿  You've hit your session limit · resets 6pm\n", "✻ Worked for 1s\n"
    )
    assert screen.classify(quoted) is None


def test_the_agents_own_error_bullets_are_not_answers_that_identify_a_conversation() -> None:
    text = pane2(
        "● I looked at it.\n", "✻ Worked for 1s\n", "❯ go on\n", "● API Error: 500 Internal server error.\n"
    )
    assert screen.shown_answers(text) == ["I looked at it."]
