"""Snapshot rows: built once per queue scan, split into inbox, blocked and delegated."""

from __future__ import annotations

from pathlib import Path

from engine import queue as q
from engine.snapshot import queue_rows


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
