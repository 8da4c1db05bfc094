"""Snapshots: rows built once per queue scan and split by sidecar, per-day counts, the swap target."""

from __future__ import annotations

from pathlib import Path

from engine import queue as q
from engine.config import Config
from engine.config_reader import config_from_dict
from engine.snapshot import build_snapshot, queue_rows, snapshot_json
from engine.state import AccountState, State


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
    engine.ctx.count("completed")
    engine.ctx.count("completed")
    clock.advance(86400)
    engine.ctx.count("completed")
    engine.ctx.count("failed")
    snap = engine.snapshot()
    assert snap.today("completed") == 1 and snap.today("failed") == 1
    assert snap.counters["completed"] == 3 and snap.counters[f"completed:{first_day}"] == 2
    clock.advance(8 * 86400)
    engine.ctx.count("completed")
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
