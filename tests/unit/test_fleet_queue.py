"""The fleet queue's pure parts: tokens, the message and record encodings, and the claim decisions."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from engine.config import ConfigError
from engine.config_reader import config_from_dict
from engine.fleet import files
from engine.fleet.queue import (
    Claim,
    Imported,
    Ledger,
    Outcome,
    QueueError,
    TaskMessage,
    claim_key,
    consumer_name,
    dependency_met,
    digest,
    export_decision,
    finished,
    import_decision,
    msg_id,
    published,
    running,
    task_subject,
    token,
)
from engine.footers import read_footer

NATS_TOKEN = re.compile(r"[a-z0-9_-]+")


def test_a_token_is_nats_safe_and_keeps_names_apart() -> None:
    names = ["web", "Web", "my project", "my_project", "my.project", "ünï côdé", "a" * 200, "*", ">", ""]
    tokens = [token(n) for n in names]
    assert all(NATS_TOKEN.fullmatch(t) for t in tokens), tokens
    assert len(set(tokens)) == len(names)  # what was replaced still tells the names apart
    assert token("my project").startswith("my_project-") and token("web").startswith("web-")
    assert all(len(t) <= 49 for t in tokens)
    assert token("web") == token("web")  # every host computes the same


def test_subjects_keys_and_consumer_names_are_made_of_tokens() -> None:
    subject = task_subject("cfo", "my project", "high")
    assert subject == f"cfo.task.{token('my project')}.high"
    assert claim_key("my project", "2026 fix.it") == f"{token('my project')}.{token('2026 fix.it')}"
    assert "." not in consumer_name("my.project", "low")  # a consumer name holds no dot


def test_a_task_message_round_trips_through_its_headers() -> None:
    message = TaskMessage("host-1", "my project", "fix: 1", "critical", 1_800_000_000.25)
    text = b"Fix it\n"
    headers = message.headers(text)
    assert all("\n" not in v and "\r" not in v for v in headers.values())
    assert TaskMessage.from_headers(headers) == message
    assert headers["Nats-Msg-Id"] == msg_id("host-1", "my project", "fix: 1", text)
    assert msg_id("host-1", "p", "t", b"a") != msg_id("host-1", "p", "t", b"b")  # a new text, a new message
    for bad in ({}, {**headers, "Cfo-Priority": "urgent"}, {**headers, "Cfo-Origin": ""}):
        with pytest.raises(QueueError):
            TaskMessage.from_headers(bad)


def test_claims_outcomes_and_the_ledger_round_trip() -> None:
    claim = Claim("running", "host-1", "host-2", 2, 10.0, "", 7, digest(b"x"))
    assert Claim.decode(claim.encode()) == claim
    for raw in (b"nope", b"[]", b'{"state": "lost"}', b'{"state": "done", "gen": "two"}'):
        with pytest.raises(QueueError):
            Claim.decode(raw)
    outcome = Outcome(
        "web", "t1", "host-1", "host-2", 7, "done", "text\n", "", {"host": "host-2"}, "$JS.ACK.x"
    )
    assert Outcome.decode(outcome.encode()) == outcome
    with pytest.raises(QueueError):
        Outcome.decode(b'{"state": "done"}')
    ledger = Ledger({"web:t1": Imported("web", "t1", "host-1", 7, 2, "$JS.ACK.y", "1-2")}, [outcome])
    assert Ledger.decode(ledger.encode()) == ledger


def test_the_origin_publishes_adopts_or_waits() -> None:
    sha = digest(b"task")
    assert export_decision(None, "host-1", sha) == "publish"
    done = Claim("done", "host-1", "host-2", 1, seq=3, digest=sha)
    assert export_decision(done, "host-1", sha) == "publish"  # a finished run: a new generation
    flying = Claim("published", "host-1", seq=3, digest=sha)
    assert export_decision(flying, "host-1", sha) == "adopt"  # published before a crash: only renamed
    assert export_decision(flying, "host-1", digest(b"changed")) == "publish"
    assert export_decision(flying, "host-2", sha) == "wait"  # another host's task of that id is in flight


def test_the_record_after_a_publish() -> None:
    first = published(None, "host-1", 5, "d", now=1.0)
    assert (first.state, first.gen, first.seq) == ("published", 1, 5)
    assert published(first, "host-1", 5, "d", now=2.0) is first  # the same message acknowledged again
    done = Claim("done", "host-1", "host-2", 1, seq=5, digest="d")
    again = published(done, "host-1", 9, "d", now=3.0)
    assert (again.state, again.gen, again.seq, again.runner) == ("published", 2, 9, "")


def decide(record: Claim | None, seq: int, runs_here: bool = False, age: float = 1.0) -> str:
    return import_decision(record, seq, "host-2", runs_here, age, takeover_after=120.0).action


def test_a_published_task_is_taken_and_a_finished_one_dropped() -> None:
    published_ = Claim("published", "host-1", seq=5)
    assert decide(published_, 5) == "take"
    assert decide(None, 5) == "take"  # the origin stopped between its publish and its record
    assert decide(Claim("done", "host-1", "host-3", seq=5), 5) == "drop"
    assert decide(Claim("failed", "host-1", "host-3", seq=5), 5) == "drop"


def test_duplicate_and_stale_messages_are_dropped_and_a_newer_one_waits_for_its_record() -> None:
    assert decide(Claim("published", "host-1", seq=5), 4) == "drop"  # an older generation's message
    assert decide(Claim("running", "host-1", "host-3", seq=5), 8) == "drop"  # a second publish of it
    assert decide(Claim("done", "host-1", "host-3", seq=5), 8) == "later"  # the origin writes its record


def test_a_task_running_elsewhere_is_left_until_its_host_is_silent_too_long() -> None:
    elsewhere = Claim("running", "host-1", "host-3", seq=5)
    assert decide(elsewhere, 5, age=3.0) == "later"
    assert decide(elsewhere, 5, age=121.0) == "take_over"
    assert decide(elsewhere, 5, age=float("inf")) == "take_over"  # a host never seen


def test_a_task_redelivered_to_its_own_runner_is_kept_or_taken_again_after_a_restart() -> None:
    here = Claim("running", "host-1", "host-2", seq=5)
    assert decide(here, 5, runs_here=True) == "keep"
    assert decide(here, 5, runs_here=False) == "take_over"


def test_records_as_a_task_is_taken_and_finished() -> None:
    base = Claim("running", "host-1", "host-3", gen=2, seq=5, digest="d")
    taken = running(base, "host-2", 5, "host-1", now=1.0, takeover=True)
    assert (taken.state, taken.runner, taken.gen, taken.digest) == ("running", "host-2", 3, "d")
    assert running(Claim("published", "host-1", seq=5), "host-2", 5, "host-1", 1.0, False).gen == 1
    outcome = Outcome("web", "t", "host-1", "host-2", 5, "failed", reason="crashed twice")
    ended = finished(taken, outcome, now=2.0)
    assert ended is not None and (ended.state, ended.reason, ended.gen) == ("failed", "crashed twice", 3)
    assert finished(ended, outcome, now=3.0) is None  # a finished record is kept as it is


def test_a_dependency_is_met_by_its_record_or_by_this_hosts_done() -> None:
    assert dependency_met(Claim("done", "h", seq=1), done_here=False)
    assert not dependency_met(Claim("running", "h", seq=1), done_here=True)  # its new run is not done
    assert dependency_met(None, done_here=True)  # it never went through the fleet
    assert not dependency_met(None, done_here=False)


def test_the_queue_keys_are_read_and_checked() -> None:
    base = {"accounts": [{"name": "a", "home": "/tmp/a"}]}
    fleet = config_from_dict({**base, "fleet": {"url": "nats://h:4222", "ack_wait": "30s"}}).fleet
    assert fleet is not None and fleet.ack_wait == 30.0 and fleet.takeover_after == 120.0
    with pytest.raises(ConfigError, match="takeover_after"):
        config_from_dict({**base, "fleet": {"url": "nats://h:4222", "takeover_after": "5s"}})


def queue(tmp_path: Path) -> Path:
    project = tmp_path / "web"
    for box in ("inbox", "done", "failed"):
        (project / ".agent-queue" / box).mkdir(parents=True)
    return project


def test_an_outcome_lands_once_even_after_a_crash_between_the_write_and_the_removal(tmp_path: Path) -> None:
    project = queue(tmp_path)
    inbox, done = project / ".agent-queue" / "inbox", project / ".agent-queue" / "done"
    (inbox / "t1.md.published").write_text("Task\n")
    outcome = Outcome("web", "t1", "host-1", "host-2", 5, "done", text="Task\n\n---\nfooter\n")
    assert files.land_outcome(project, outcome) == done / "t1.md"
    assert (done / "t1.md").read_text() == outcome.text and not (inbox / "t1.md.published").exists()
    assert files.land_outcome(project, outcome) is None  # a second delivery of it
    (inbox / "t1.md.published").write_text("Task\n")  # as if the removal had not happened
    assert files.land_outcome(project, outcome) == done / "t1.md"
    assert sorted(p.name for p in done.iterdir()) == ["t1.md"]


def test_a_failed_outcome_lands_with_its_reason_and_runner(tmp_path: Path) -> None:
    project = queue(tmp_path)
    (project / ".agent-queue" / "inbox" / "t1.md.published").write_text("Task\n")
    outcome = Outcome("web", "t1", "host-1", "host-2", 5, "failed", reason="crashed twice", footer={"x": "1"})
    landed = files.land_outcome(project, outcome)
    assert landed == project / ".agent-queue" / "failed" / "t1.md"
    footer = read_footer(landed)
    assert footer is not None and footer["reason"] == "crashed twice" and footer["host"] == "host-2"


def test_an_import_is_staged_then_placed_with_its_sidecar_first(tmp_path: Path) -> None:
    project = queue(tmp_path)
    staged = files.stage_import(project, "t1", b"Task\n", created=1_800_000_000.0)
    assert staged is not None
    path, claim = staged
    imported = Imported("web", "t1", "host-1", 5, 1, "$JS.ACK.z", claim)
    assert files.place_import(project, imported, path)
    task, sidecar, _ = files.inbox_paths(project, "t1")
    assert task.read_bytes() == b"Task\n" and task.stat().st_mtime == 1_800_000_000.0
    assert json.loads(sidecar.read_text())["origin"] == "host-1"
    assert files.stage_import(project, "t1", b"Task\n", created=0.0) is None  # the id is taken here
    assert files.drop_import(project, "t1") and not task.exists() and not sidecar.exists()


def test_the_fleet_sidecars_of_an_inbox_are_listed(tmp_path: Path) -> None:
    project = queue(tmp_path)
    inbox = project / ".agent-queue" / "inbox"
    for name in ("a.md.fleet", "b c.md.fleet", "a.md", "d.md.blocked", ".md.fleet"):
        (inbox / name).write_text("x")
    assert files.sidecar_ids(project) == ["a", "b c"]
