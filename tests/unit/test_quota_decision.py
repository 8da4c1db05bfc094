"""The quota monitor's decision rule: strong evidence swaps at once, screen-only needs a second look."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from engine import screen
from engine.clock import FakeClock
from engine.config_reader import config_from_dict
from engine.conversations import conversation_dir
from engine.core import Engine
from engine.quota import SECOND_LOOK, decide
from engine.runtime import Look, Running
from engine.switcher import Trigger
from engine.tasks import parse_task

TRANSCRIPTS = Path(__file__).parent.parent / "data" / "transcripts"


class NoTmux:
    """Pure decision logic never reaches tmux; any call is a test failure."""

    socket_name = None

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"tmux.{name} called")


@pytest.fixture
def setup(tmp_path: Path) -> tuple[Engine, Running, FakeClock, list[Trigger]]:
    homes = [tmp_path / "a", tmp_path / "b"]
    for home in homes:
        home.mkdir()
    config = config_from_dict(
        {
            "accounts": [{"name": "a", "home": str(homes[0])}, {"name": "b", "home": str(homes[1])}],
            "state_dir": str(tmp_path / "state"),
            "projects_dir": str(tmp_path / "src"),
            "quota": {"reactivate_cooldown": "5m"},
            "watcher": {"done_signal_dir": str(tmp_path / "signals")},
        }
    )
    inbox = tmp_path / "src" / "web" / ".agent-queue" / "inbox"
    inbox.mkdir(parents=True)
    (inbox / "t.md").write_text("Task\n")
    task = parse_task(inbox / "t.md", "web")
    clock = FakeClock()
    engine = Engine(config, NoTmux(), clock=clock)  # type: ignore[arg-type]
    run = Running("ccl-auto-11", task, inbox / "t.md", "a", "sonnet", clock.now(), "working")
    swaps: list[Trigger] = []

    engine.switcher.start_swap = swaps.append  # type: ignore[method-assign,assignment]
    return engine, run, clock, swaps


def stop(message: str) -> screen.Stop:
    found = screen.match_stop(message)
    assert found is not None and found.kind == "quota"
    return found


def test_a_screen_only_hit_without_reset_swaps_only_on_a_second_look_two_seconds_later(
    setup: tuple[Engine, Running, FakeClock, list[Trigger]],
) -> None:
    engine, run, clock, swaps = setup
    hit = stop("Claude usage limit reached.")
    asyncio.run(engine.quota.on_pool_stop(run, hit, clock.now()))
    assert swaps == []
    clock.advance(1.0)
    asyncio.run(engine.quota.on_pool_stop(run, hit, clock.now()))
    assert swaps == []
    clock.advance(1.0)
    asyncio.run(engine.quota.on_pool_stop(run, hit, clock.now()))
    assert [t.pattern for t in swaps] == [hit.pattern]


def test_a_hit_with_a_reset_time_swaps_at_once(
    setup: tuple[Engine, Running, FakeClock, list[Trigger]],
) -> None:
    engine, run, clock, swaps = setup
    asyncio.run(engine.quota.on_pool_stop(run, stop("5-hour limit reached ∙ resets 3am"), clock.now()))
    assert len(swaps) == 1 and swaps[0].reset_at is not None and swaps[0].reset_at > clock.now()


def test_a_hit_inside_the_cooldown_is_ignored(
    setup: tuple[Engine, Running, FakeClock, list[Trigger]],
) -> None:
    engine, run, clock, swaps = setup
    engine.switcher.cooldown_until = clock.now() + 300
    asyncio.run(engine.quota.on_pool_stop(run, stop("5-hour limit reached ∙ resets 3am"), clock.now()))
    assert swaps == []
    clock.advance(301)
    asyncio.run(engine.quota.on_pool_stop(run, stop("5-hour limit reached ∙ resets 3am"), clock.now()))
    assert len(swaps) == 1


def test_the_decision_is_a_function_of_the_evidence_the_first_sighting_and_the_time() -> None:
    now = 1000.0
    assert decide((None, False), None, now, False, 0.0) == ("first look: confirm on a second look", now)
    later = now + SECOND_LOOK
    assert decide((None, False), now, later, False, 0.0) == ("swap: seen twice", now)
    assert decide((None, True), None, now, False, 0.0) == ("swap: transcript 429", None)
    assert decide((now + 60, False), None, now, False, 0.0)[0] == "swap: reset time shown"
    assert decide((now + 60, True), None, now, True, 0.0)[0] == "swap under way"
    assert (
        decide((now + 60, True), None, now, False, now + 1)[0] == "ignored: within the cooldown after a swap"
    )


# --- what a look at a working session reads: the transcript first, then what is new on screen --------

RULE = "─" * 60
BOX = f"\n{RULE}\n❯ \n{RULE}\n  ⏵⏵ bypass permissions on (shift+tab to cycle)\n"
PROMPT = "> [t.md] Task\n\n⏺ Working on: [t.md] Task\n"
ERR_529 = '  ⎿  API Error: 529 {"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}\n'
ERR_QUOTA = "  ⎿  You've hit your limit · resets 2am (Europe/Paris)\n"
UNKNOWN_LIMIT = "Your plan's allowance is used up for now"
SID = "3f2c9a1e-8b4d-4c1a-9e7f-2d6b5a8c0e14"


def record(kind: str, **fields: Any) -> str:
    text = fields.pop("text", "")
    role = "user" if kind == "user" else "assistant"
    content: Any = text if kind == "user" else [{"type": "text", "text": text}]
    message = {"role": role, "content": content}
    return json.dumps({"type": kind, "sessionId": SID, "message": message, **fields})


def api_error(status: int, error: str, text: str) -> str:
    return record("assistant", text=text, isApiErrorMessage=True, apiErrorStatus=status, error=error)


def write_conversation(engine: Engine, run: Running, *lines: str) -> Path:
    account = engine.config.account(run.account)
    assert account is not None
    path = conversation_dir(account.home, run.task.project_dir) / f"{SID}.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as f:
        f.writelines(line + "\n" for line in lines)
    return path


def look(text: str) -> Look:
    return Look(command="claude", text=text)


def test_a_429_rate_limit_record_is_a_hit_whatever_the_screen_says(
    setup: tuple[Engine, Running, FakeClock, list[Trigger]],
) -> None:
    engine, run, _, swaps = setup
    write_conversation(engine, run, record("user", text="[t.md] Task"))
    asyncio.run(engine.watcher.check(run, look(PROMPT + BOX)))
    write_conversation(engine, run, api_error(429, "rate_limit", UNKNOWN_LIMIT))
    pane = PROMPT + f"  ⎿  {UNKNOWN_LIMIT}\n\n✻ Worked for 3s\n" + BOX
    assert screen.classify(pane) is None  # wording the patterns do not know
    asyncio.run(engine.watcher.check(run, look(pane)))
    assert [t.pattern for t in swaps] == ["transcript:rate_limit"]
    assert run.phase == "working"  # the turn that ended on the limit is not a completion


def test_a_done_signal_for_a_turn_that_ended_on_an_api_error_record_is_refused(
    setup: tuple[Engine, Running, FakeClock, list[Trigger]],
) -> None:
    engine, run, _, swaps = setup
    write_conversation(
        engine, run, record("user", text="[t.md] Task"), api_error(418, "teapot", "Something went wrong")
    )
    signal = engine.ctx.signal(run.session)
    signal.parent.mkdir(parents=True, exist_ok=True)
    signal.touch()
    pane = PROMPT + "  ⎿  Something went wrong\n\n✻ Worked for 3s\n" + BOX
    asyncio.run(engine.watcher.check(run, look(pane)))  # a completion would reach tmux and fail the test
    assert run.phase == "working" and not signal.exists() and swaps == []


def test_a_server_throttle_429_record_is_a_server_error_not_a_confirmation(
    setup: tuple[Engine, Running, FakeClock, list[Trigger]],
) -> None:
    engine, run, clock, swaps = setup
    throttle = (TRANSCRIPTS / "server-throttle-429.jsonl").read_text(encoding="utf-8").splitlines()[-1]
    write_conversation(engine, run, record("user", text="[t.md] Task"), throttle)
    pane = PROMPT + "  ⎿  Claude usage limit reached.\n" + BOX
    asyncio.run(engine.watcher.check(run, look(pane)))
    assert swaps == [] and run.retry_at is not None  # backing off as for any server error
    run.retry_at, run.stop = None, None
    hit = stop("Claude usage limit reached.")
    assert engine.quota.evidence(run, hit, clock.now()) == (None, False)


def test_an_old_529_in_the_same_turn_does_not_block_a_fresh_hit(
    setup: tuple[Engine, Running, FakeClock, list[Trigger]],
) -> None:
    engine, run, _, swaps = setup
    asyncio.run(engine.watcher.check(run, look(PROMPT + ERR_529 + BOX)))
    assert swaps == [] and run.retry_at is not None
    asyncio.run(engine.watcher.check(run, look(PROMPT + ERR_529 + ERR_QUOTA + BOX)))
    assert [t.pattern for t in swaps] == ["hit_your_limit"]


def test_a_screen_only_hit_is_judged_again_on_the_second_look_though_the_pane_did_not_change(
    setup: tuple[Engine, Running, FakeClock, list[Trigger]],
) -> None:
    engine, run, clock, swaps = setup
    pane = PROMPT + "  ⎿  Claude usage limit reached.\n" + BOX
    asyncio.run(engine.watcher.check(run, look(pane)))
    assert swaps == [] and run.quota_seen_at == clock.now()
    clock.advance(2.0)
    asyncio.run(engine.watcher.check(run, look(pane)))
    assert [t.pattern for t in swaps] == ["usage_limit_reached"]


# --- quota.prefer_first ----------------------------------------------------------------------------


def test_prefer_first_returns_only_once_a_recorded_limit_has_reset_and_the_cooldown_is_over(
    setup: tuple[Engine, Running, FakeClock, list[Trigger]],
) -> None:
    from dataclasses import replace

    from engine.state import AccountState

    engine, _, clock, _ = setup
    engine.ctx.config = replace(engine.config, quota=replace(engine.config.quota, prefer_first=True))
    engine.state.active_account = "b"
    assert not engine.quota.prefer_first_due()  # the operator moved away: no limit of "a" was recorded
    engine.state.accounts["a"] = AccountState("a", usable_again_at=clock.now() + 60)
    assert not engine.quota.prefer_first_due()  # not reset yet
    clock.advance(61)
    engine.switcher.cooldown_until = clock.now() + 10
    assert not engine.quota.prefer_first_due()  # a swap just happened
    clock.advance(10)
    assert engine.quota.prefer_first_due()


def test_the_forensic_line_is_logged_once_per_detection_and_decision(
    setup: tuple[Engine, Running, FakeClock, list[Trigger]], caplog: pytest.LogCaptureFixture
) -> None:
    engine, run, clock, swaps = setup
    engine.switcher.cooldown_until = clock.now() + 300
    pane = PROMPT + "  ⎿  Claude usage limit reached.\n" + BOX
    for _ in range(3):
        asyncio.run(engine.watcher.check(run, look(pane)))
        clock.advance(1.0)
    engine.switcher.cooldown_until = 0.0
    for _ in range(3):
        asyncio.run(engine.watcher.check(run, look(pane)))
        clock.advance(1.0)
    decisions = [r.getMessage().split("decision=")[1] for r in caplog.records if "quota:" in r.getMessage()]
    assert decisions == [
        "ignored: within the cooldown after a swap",
        "first look: confirm on a second look",
        "waiting for the second look",
        "swap: seen twice",
    ]
    assert len(swaps) == 1


def test_a_task_failing_auth_in_two_sessions_fails_on_its_second_failure(
    setup: tuple[Engine, Running, FakeClock, list[Trigger]], monkeypatch: pytest.MonkeyPatch
) -> None:
    from dataclasses import replace

    engine, run, _, _ = setup
    outcomes: list[tuple[str, str, str]] = []

    async def requeue(r: Running, reason: str) -> None:
        outcomes.append(("requeued", r.session, reason))

    async def give_up(r: Running, reason: str) -> None:
        outcomes.append(("failed", r.session, reason))

    monkeypatch.setattr(engine.finisher, "requeue", requeue)
    monkeypatch.setattr(engine.finisher, "give_up", give_up)
    engine.ctx.save = lambda: True  # type: ignore[method-assign]
    auth = screen.match_stop("Not logged in · Please run /login")
    assert auth is not None and auth.kind == "auth"
    asyncio.run(engine.watcher.on_auth(run, auth))
    asyncio.run(engine.watcher.on_auth(replace(run, session="ccl-auto-12", phase="working"), auth))
    assert [o[:2] for o in outcomes] == [("requeued", "ccl-auto-11"), ("failed", "ccl-auto-12")]
    assert "auth failure twice" in outcomes[1][2]
    assert all(s.state != "out of pool" for s in engine.state.sessions.values())  # each failed only once
    assert not [k for k in engine.state.counters if k.startswith("auth_failures:task:")]


def test_the_conversation_of_an_earlier_run_of_the_same_task_is_not_followed(
    setup: tuple[Engine, Running, FakeClock, list[Trigger]],
) -> None:
    import os
    import time
    from datetime import UTC, datetime

    engine, run, _, swaps = setup
    run.claimed_at = time.time()
    before = datetime.fromtimestamp(run.claimed_at - 30, UTC).isoformat().replace("+00:00", "Z")
    old = write_conversation(
        engine,
        run,
        record("user", text="[t.md] Task", timestamp=before),
        api_error(429, "rate_limit", UNKNOWN_LIMIT),
    )
    os.utime(old, (run.claimed_at - 0.5, run.claimed_at - 0.5))  # written just before the claim
    asyncio.run(engine.watcher.check(run, look(PROMPT + BOX)))
    assert run.follower is None and run.stop is None and swaps == []


def test_a_working_run_is_looked_at_four_times_per_interval_an_idle_pool_once(
    setup: tuple[Engine, Running, FakeClock, list[Trigger]],
) -> None:
    engine, run, _, _ = setup
    interval = engine.config.watcher.interval
    assert engine.watcher.period() == interval
    engine.running[run.session] = run
    assert engine.watcher.period() == interval / 4
    run.phase = "finishing"
    assert engine.watcher.period() == interval
