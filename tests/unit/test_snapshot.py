"""Snapshots: rows built once per queue scan and split by sidecar, per-day counts, the swap target."""

from __future__ import annotations

from pathlib import Path

from engine import queue as q
from engine.config import Config
from engine.config_reader import config_from_dict
from engine.runtime import Running
from engine.snapshot import build_snapshot, queue_rows, snapshot_json
from engine.state import AccountState, Failure, SessionState, State, SwapRecord
from engine.status import render_status
from engine.tasks import Task


def test_rows_are_built_once_per_scan_and_split_by_sidecar(tmp_path: Path) -> None:
    inbox = tmp_path / "web" / ".agent-queue" / "inbox"
    inbox.mkdir(parents=True)
    for name in ("a", "b", "c"):
        (inbox / f"{name}.md").write_text(f"Task {name}\n")
    (inbox / "b.md.blocked").write_text("depends_on not met: x:y\n")
    (inbox / "c.md.delegated").write_text("job-1\n")
    queue = q.Queue(settle=0.0)
    scan = queue.scan({"web": tmp_path / "web"})
    inbox_rows, blocked, delegated = queue_rows(scan)
    assert [r.key for r in inbox_rows] == ["web:a"]
    assert [r.key for r in blocked] == ["web:b"] and blocked[0].blocked_since is not None
    assert [r.key for r in delegated] == ["web:c"]
    assert queue_rows(scan) is queue_rows(scan)
    assert queue_rows(queue.scan({"web": tmp_path / "web"})) is not queue_rows(scan)


def test_done_today_counts_per_local_day_and_old_days_age_out(tmp_path: Path) -> None:
    from engine.clock import FakeClock
    from engine.core import Engine
    from engine.snapshot import day_of
    from tests.unit.test_quota_decision import NoTmux

    config = config_from_dict(
        {"accounts": [{"name": "a", "home": str(tmp_path / "a")}], "state_dir": str(tmp_path / "state")}
    )
    clock = FakeClock()
    engine = Engine(config, NoTmux(), clock=clock)  # type: ignore[arg-type]
    first_day = day_of(clock.now())
    engine.ctx.emit("completed", task="p:1")
    engine.ctx.emit("completed", task="p:2")
    clock.advance(86400)
    engine.ctx.emit("completed", task="p:3")
    engine.ctx.emit("failed", task="p:4", reason="not UTF-8")
    snap = engine.snapshot()
    assert snap.today("completed") == 1 and snap.today("failed") == 1
    assert snap.counters["completed"] == 3 and snap.counters[f"completed:{first_day}"] == 2
    clock.advance(8 * 86400)
    engine.ctx.emit("completed", task="p:5")
    assert f"completed:{first_day}" not in engine.state.counters
    assert engine.snapshot().today("completed") == 1


def test_the_swap_target_is_the_next_usable_account_in_config_order(tmp_path: Path) -> None:
    now = 1_800_000_000.0

    def config(*names: str) -> Config:
        accounts = [{"name": n, "home": str(tmp_path / n)} for n in names]
        return config_from_dict({"accounts": accounts, "state_dir": str(tmp_path / "state")})

    def target(active: str | None, names: tuple[str, ...] = ("a", "b", "c"), **limits: float) -> str | None:
        state = State(active_account=active, accounts={n: AccountState(n, at) for n, at in limits.items()})
        snap = build_snapshot(config(*names), state, q.ScanResult(), {}, now)
        assert snapshot_json(snap)["swap_target"] == snap.swap_target
        return snap.swap_target

    assert target("a") == "b"
    assert target("c") == "a"
    assert target(None) == "a"
    assert target("a", b=now + 60) == "c"
    assert target("a", b=now - 60) == "b"
    assert target("a", b=now + 1, c=now + 1) is None
    assert target("only", ("only",)) is None


NOW = 1_800_000_000.0


def _pool_config(tmp_path: Path) -> Config:
    return config_from_dict(
        {
            "accounts": [
                {"name": "primary", "home": str(tmp_path / "a")},
                {"name": "secondary", "home": str(tmp_path / "b")},
            ],
            "pool": {
                "dedicated": [{"name": "ccl-1-vault", "project": str(tmp_path / "vault")}],
                "autonomous": {"prefix": "ccl-auto-", "start_index": 11, "min": 1, "max": 4},
            },
            "state_dir": str(tmp_path / "state"),
        }
    )


def _run(tmp_path: Path, session: str, account: str) -> Running:
    task = Task("web", tmp_path / "web", "t1", tmp_path / "web" / "t1.md", "Fix it")
    return Running(session, task, task.path, account, "sonnet", NOW - 60, "working")


def test_the_account_shown_is_the_one_the_sessions_agent_runs_under(tmp_path: Path) -> None:
    # After a swap to secondary: ccl-auto-11 was moved (restarted there), ccl-auto-12 finishes a healthy
    # turn on primary, ccl-auto-13 ran its last task on primary and is idle (no agent runs in it), the
    # dedicated session was left on primary.
    state = State(
        active_account="secondary",
        sessions={
            "ccl-auto-11": SessionState("ccl-auto-11", state="working", task="web:t1", account="secondary"),
            "ccl-auto-12": SessionState("ccl-auto-12", state="working", task="web:t2", account="primary"),
            "ccl-auto-13": SessionState("ccl-auto-13", state="idle", account="primary"),
            "ccl-1-vault": SessionState("ccl-1-vault", kind="dedicated", account="primary"),
        },
    )
    running = {
        "ccl-auto-11": _run(tmp_path, "ccl-auto-11", "secondary"),
        "ccl-auto-12": _run(tmp_path, "ccl-auto-12", "primary"),
    }
    rows = {
        s.name: s
        for s in build_snapshot(_pool_config(tmp_path), state, q.ScanResult(), running, NOW).sessions
    }
    assert (rows["ccl-auto-11"].account, rows["ccl-auto-11"].account_old) == ("secondary", False)
    assert (rows["ccl-auto-12"].account, rows["ccl-auto-12"].account_old) == ("primary", True)
    assert (rows["ccl-auto-13"].account, rows["ccl-auto-13"].account_old) == (None, False)
    assert (rows["ccl-1-vault"].account, rows["ccl-1-vault"].account_old) == ("primary", True)
    # `cfo status` reads the state alone: a working pool session's account is the one its state records.
    status = {
        s["name"]: s
        for s in snapshot_json(build_snapshot(_pool_config(tmp_path), state, q.ScanResult(), {}, NOW))[
            "sessions"
        ]
    }
    assert (status["ccl-auto-12"]["account"], status["ccl-auto-12"]["account_old"]) == ("primary", True)
    assert status["ccl-auto-13"]["account"] is None


def test_a_failure_is_history_once_a_task_of_the_session_completes_after_it(tmp_path: Path) -> None:
    failed = Failure(NOW - 600, "launch failed: bash: cfo-sim-claude: command not found")
    state = State(
        active_account="primary",
        sessions={
            "ccl-auto-11": SessionState("ccl-auto-11", last_fail=failed, last_done=NOW - 60),
            "ccl-auto-12": SessionState("ccl-auto-12", last_fail=failed, last_done=NOW - 900),
            "ccl-auto-13": SessionState("ccl-auto-13", last_fail=failed),
        },
    )
    snap = build_snapshot(_pool_config(tmp_path), state, q.ScanResult(), {}, NOW)
    cleared = {s.name: s.last_fail_cleared for s in snap.sessions}
    assert cleared == {"ccl-auto-11": True, "ccl-auto-12": False, "ccl-auto-13": False}
    assert all(s.last_fail == failed.reason and s.last_fail_at == failed.at for s in snap.sessions)


def test_every_swap_row_names_its_trigger_readably(tmp_path: Path) -> None:
    state = State(
        active_account="primary",
        swaps=[
            SwapRecord(
                NOW - 300, "primary", "secondary", "ccl-auto-11", "hit_your_session_limit", "You've hit…"
            ),
            SwapRecord(
                NOW - 200,
                "secondary",
                "primary",
                None,
                "operator",
                "drain: tasks finish on secondary",
            ),
            SwapRecord(NOW - 100, "primary", "secondary", "ccl-auto-12", "transcript:rate_limit", "429"),
        ],
    )
    snap = build_snapshot(_pool_config(tmp_path), state, q.ScanResult(), {}, NOW)
    assert [w.trigger for w in snap.swaps] == ["session limit", "operator", "API 429"]
    assert [w["trigger"] for w in snapshot_json(snap)["swaps"]] == ["session limit", "operator", "API 429"]


def test_status_counts_today_as_the_console_does(tmp_path: Path) -> None:
    from engine.counters import day_of

    state = State(counters={"failed": 5, f"failed:{day_of(NOW)}": 2, f"failed:{day_of(NOW - 86400)}": 3})
    data = snapshot_json(build_snapshot(_pool_config(tmp_path), state, q.ScanResult(), {}, NOW))
    assert data["today"] == {"completed": 0, "failed": 2}
    assert "today: done 0  failed 2" in render_status(data).splitlines()
