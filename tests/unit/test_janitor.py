"""The janitor on a fake clock: archiving, log rotation, stale signals, and an inbox it never touches."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from engine.clock import FakeClock
from engine.config import Account, AgentConfig, Config, JanitorConfig, WatcherConfig
from engine.events import EventLog, read_events
from engine.janitor import ARCHIVED, CLEANED, INBOX_STALE, ROTATED, Janitor

DAY = 86400.0


@dataclass
class Emitted:
    """Stands in for Engine.emit and keeps what the janitor reported."""

    events: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    def __call__(self, kind: str, **fields: Any) -> None:
        self.events.append((kind, fields))

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [f for k, f in self.events if k == kind]


@dataclass
class World:
    root: Path
    clock: FakeClock
    emitted: Emitted
    janitor: Janitor
    project: Path

    @property
    def queue(self) -> Path:
        return self.project / ".agent-queue"

    @property
    def projects(self) -> dict[str, Path]:
        return {"proj": self.project}

    def put(self, path: Path, text: str = "task\n", age_days: float = 0.0) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        self.age(path, age_days)
        return path

    def age(self, path: Path, age_days: float) -> None:
        t = self.clock.now() - age_days * DAY
        os.utime(path, (t, t), follow_symlinks=False)

    def link(self, path: Path, target: Path, age_days: float) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.symlink_to(target)
        self.age(path, age_days)
        return path


def make_world(root: Path, config: JanitorConfig | None = None, event_log: EventLog | None = None) -> World:
    clock, emitted = FakeClock(), Emitted()
    project = root / "src" / "proj"
    for box in ("inbox", "done", "failed"):
        (project / ".agent-queue" / box).mkdir(parents=True)
    for folder in ("state", "signals", "resume"):
        (root / folder).mkdir(exist_ok=True)
    janitor = Janitor(
        config or JanitorConfig(keep_days=30, inbox_stale_after=7 * DAY, events_max_bytes=400),
        clock,
        emitted,
        state_dir=root / "state",
        done_signal_dir=root / "signals",
        resume_dir=root / "resume",
        event_log=event_log,
    )
    return World(root, clock, emitted, janitor, project)


@pytest.fixture
def world(tmp_path: Path) -> World:
    return make_world(tmp_path)


def snapshot(directory: Path) -> dict[str, tuple[bytes, int, int]]:
    """Every entry below `directory`: bytes (a link's target), mtime in ns and inode; links not followed."""
    out: dict[str, tuple[bytes, int, int]] = {}
    for path in sorted(directory.rglob("*")):
        st = path.lstat()
        if path.is_symlink():
            data = os.readlink(path).encode()
        else:
            data = b"" if path.is_dir() else path.read_bytes()
        out[str(path.relative_to(directory))] = (data, st.st_mtime_ns, st.st_ino)
    return out


def test_old_done_and_failed_files_are_archived_and_recent_ones_kept(world: World) -> None:
    q = world.queue
    world.put(q / "done" / "old.md", "old result\n", age_days=40)
    world.put(q / "done" / "recent.md", age_days=29)
    world.put(q / "failed" / "bad.md", "bad\n", age_days=31)
    world.put(q / "done" / ".half-written.md.tmp", age_days=90)

    report = world.janitor.run_once(world.projects, set())

    # FakeClock starts at 2027-01-15; 40 days before is in December, 31 days before too.
    assert (q / "archive" / "2026-12" / "done" / "old.md").read_text() == "old result\n"
    assert (q / "archive" / "2026-12" / "failed" / "bad.md").read_text() == "bad\n"
    assert sorted(p.name for p in (q / "done").iterdir()) == [".half-written.md.tmp", "recent.md"]
    assert list((q / "failed").iterdir()) == []
    assert sorted(p.name for p in report.archived) == ["bad.md", "old.md"]
    events = world.emitted.of(ARCHIVED)
    assert sorted((e["task"], e["box"]) for e in events) == [("proj:bad", "failed"), ("proj:old", "done")]
    assert all(e["reason"] == "older than 30 days" for e in events)


def test_archiving_never_overwrites_an_archived_file(world: World) -> None:
    q = world.queue
    world.put(q / "archive" / "2026-12" / "done" / "a.md", "first\n")
    world.put(q / "done" / "a.md", "second\n", age_days=40)

    report = world.janitor.run_once(world.projects, set())

    assert report.archived == [q / "archive" / "2026-12" / "done" / "a-1.md"]
    assert (q / "archive" / "2026-12" / "done" / "a.md").read_text() == "first\n"
    assert (q / "archive" / "2026-12" / "done" / "a-1.md").read_text() == "second\n"


def test_a_failed_link_moves_with_its_reason_and_ages_from_the_failure(world: World) -> None:
    q, outside = world.queue, world.put(world.root / "outside.md", "secret\n", age_days=100)
    before = snapshot(world.root / "outside.md")
    # Links keep their own (old) mtime when moved to failed/; the sidecar says when the task failed.
    world.link(q / "failed" / "fresh.md", outside, age_days=100)
    world.put(q / "failed" / "fresh.md.reason", "reason: symlink\n", age_days=1)
    world.link(q / "failed" / "stale.md", outside, age_days=100)
    world.put(q / "failed" / "stale.md.reason", "reason: symlink\n", age_days=45)

    report = world.janitor.run_once(world.projects, set())

    archived = q / "archive" / "2026-12" / "failed"
    assert report.archived == [archived / "stale.md"]
    assert os.readlink(archived / "stale.md") == str(outside)
    assert (archived / "stale.md.reason").read_text() == "reason: symlink\n"
    assert sorted(p.name for p in (q / "failed").iterdir()) == ["fresh.md", "fresh.md.reason"]
    assert snapshot(world.root / "outside.md") == before
    assert outside.read_text() == "secret\n"


def test_the_inbox_is_never_touched_and_stale_tasks_are_reported_once(world: World) -> None:
    inbox = world.queue / "inbox"
    world.put(inbox / "stale.md", "---\npriority: low\n---\nold work\n", age_days=10)
    world.put(inbox / "fresh.md", age_days=6)
    world.put(inbox / "running.md.dispatched", age_days=40)
    world.put(inbox / "stale.md.blocked", age_days=40)
    world.put(inbox / "ancient.md", age_days=400)
    world.put(inbox / "away.md", age_days=30)
    world.put(inbox / "away.md.delegated", "job-1", age_days=30)
    before = snapshot(inbox)

    first = world.janitor.run_once(world.projects, set())
    world.clock.advance(3600)
    second = world.janitor.run_once(world.projects, set())

    assert snapshot(inbox) == before
    assert not (world.queue / "archive").exists()
    assert sorted(p.name for p in first.inbox_stale) == ["ancient.md", "stale.md"]
    assert sorted(p.name for p in second.inbox_stale) == ["ancient.md", "stale.md"]
    stale = world.emitted.of(INBOX_STALE)
    assert sorted(e["task"] for e in stale) == ["proj:ancient", "proj:stale"]
    assert {e["task"]: e["reason"] for e in stale}["proj:stale"] == "waiting in the inbox for 10d"


def test_a_task_back_in_the_inbox_is_reported_again(world: World) -> None:
    task = world.put(world.queue / "inbox" / "t.md", age_days=10)
    world.janitor.run_once(world.projects, set())
    task.rename(task.with_name("t.md.dispatched"))
    world.janitor.run_once(world.projects, set())
    task.with_name("t.md.dispatched").rename(task)
    world.janitor.run_once(world.projects, set())
    assert [e["task"] for e in world.emitted.of(INBOX_STALE)] == ["proj:t", "proj:t"]


def test_the_event_log_is_rotated_past_its_limit_and_writing_goes_on(tmp_path: Path) -> None:
    with EventLog(tmp_path / "state" / "events.jsonl") as log:
        world = make_world(tmp_path, event_log=log)
        # The engine passes its own emit: the janitor's events land in the log it rotates.
        world.janitor.emit = log.emit
        log.emit("dispatched", task="proj:a", session="ccl-auto-11")
        assert world.janitor.run_once(world.projects, set()).rotated is None
        for i in range(10):
            log.emit("completed", task=f"proj:t{i}", session="ccl-auto-11", reason="done signal")
        size = log.path.stat().st_size
        assert size > 400

        report = world.janitor.run_once(world.projects, set())
        log.emit("dispatched", task="proj:after")

    assert report.rotated == tmp_path / "state" / "events-20270115T080000Z.jsonl"
    old = read_events(report.rotated)
    assert [e.type for e in old] == ["dispatched"] + ["completed"] * 10
    current = read_events(tmp_path / "state" / "events.jsonl")
    assert [e.type for e in current] == [ROTATED, "dispatched"]
    assert current[0].extra == {"path": str(report.rotated), "size": size}
    assert current[1].task == "proj:after"


def test_only_the_newest_rotated_logs_are_kept(world: World) -> None:
    log = world.root / "state" / "events.jsonl"
    for _ in range(5):
        log.write_bytes(b'{"ts":"2027-01-15T08:00:00Z","type":"x"}\n' * 20)
        assert world.janitor.run_once(world.projects, set()).rotated is not None
        world.clock.advance(3600)
    rotated = sorted(p.name for p in log.parent.glob("events-*.jsonl"))
    assert rotated == [
        "events-20270115T100000Z.jsonl",
        "events-20270115T110000Z.jsonl",
        "events-20270115T120000Z.jsonl",
    ]
    assert log.read_bytes() == b""
    assert len(world.emitted.of(ROTATED)) == 5


def test_signals_and_resume_ids_of_dead_sessions_are_removed_and_live_ones_kept(world: World) -> None:
    signals, resume = world.root / "signals", world.root / "resume"
    for name in ("agent-done-ccl-auto-11", "agent-done-ccl-auto-12", "agent-done-", "unrelated"):
        world.put(signals / name, "")
    for name in ("ccl-auto-11-resume-id.txt", "ccl-auto-12-resume-id.txt", "notes.txt"):
        world.put(resume / name, "0b6f1a2e-5f1c-4a47-9c1e-1f2d3c4b5a69\n")

    report = world.janitor.run_once(world.projects, {"ccl-auto-11"})

    assert sorted(p.name for p in signals.iterdir()) == ["agent-done-", "agent-done-ccl-auto-11", "unrelated"]
    assert sorted(p.name for p in resume.iterdir()) == ["ccl-auto-11-resume-id.txt", "notes.txt"]
    assert sorted(p.name for p in report.cleaned) == ["agent-done-ccl-auto-12", "ccl-auto-12-resume-id.txt"]
    cleaned = world.emitted.of(CLEANED)
    assert [e["session"] for e in cleaned] == ["ccl-auto-12", "ccl-auto-12"]
    assert all(e["reason"] == "session not live" for e in cleaned)


def test_symlinks_are_never_followed(tmp_path: Path) -> None:
    world = make_world(tmp_path / "w")
    outside = tmp_path / "outside"
    world.put(outside / "old.md", "theirs\n", age_days=100)
    world.put(outside / "agent-done-target", "keep\n", age_days=100)
    world.put(outside / "big.jsonl", "x" * 10_000, age_days=100)
    q = world.queue
    # A done/ that is a link to elsewhere is not entered.
    (q / "done").rmdir()
    (q / "done").symlink_to(outside)
    # Links planted in the inbox, the signal folder and for the event log are left alone.
    world.link(q / "inbox" / "linked.md", outside / "old.md", age_days=100)
    world.link(world.root / "signals" / "agent-done-dead", outside / "agent-done-target", age_days=100)
    world.link(world.root / "state" / "events.jsonl", outside / "big.jsonl", age_days=0)
    # An archive/ that is a link stops archiving into it.
    (q / "archive").symlink_to(outside)
    world.put(q / "failed" / "bad.md", age_days=60)
    before = snapshot(outside)

    report = world.janitor.run_once(world.projects, set())

    assert snapshot(outside) == before
    assert report.archived == [] and report.inbox_stale == [] and report.cleaned == []
    assert report.rotated is None
    assert (q / "failed" / "bad.md").exists()
    assert (world.root / "signals" / "agent-done-dead").is_symlink()
    assert world.emitted.events == []


def test_from_config_uses_the_configured_folders(tmp_path: Path) -> None:
    config = Config(
        accounts=(Account("primary", tmp_path / "a"),),
        state_dir=tmp_path / "state",
        watcher=WatcherConfig(done_signal_dir=tmp_path / "signals"),
        agent=AgentConfig(resume_dir=tmp_path / "resume"),
        janitor=JanitorConfig(keep_days=7),
    )
    (tmp_path / "signals").mkdir()
    (tmp_path / "signals" / "agent-done-gone").write_text("")
    emitted = Emitted()
    janitor = Janitor.from_config(config, FakeClock(), emitted)
    report = janitor.run_once({}, set())
    assert report.cleaned == [tmp_path / "signals" / "agent-done-gone"]
    assert janitor.events_path == tmp_path / "state" / "events.jsonl"
    assert janitor.config.keep_days == 7
