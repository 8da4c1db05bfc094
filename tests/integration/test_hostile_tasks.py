"""Hostile or broken task files in a running engine's inbox: each ends in failed/ (or blocked) with its
reason named, none reaches an agent, and the good task beside them is done."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from engine.tmux import LibtmuxClient
from tests.integration.pipeline_support import Workspace, make_workspace, new_engine, run_engine

pytestmark = pytest.mark.integration

HOSTILE = ("link", "big", "latin", "yaml")


@pytest.fixture
def ws(tmp_path: Path, tmux: LibtmuxClient) -> Workspace:
    return make_workspace(tmp_path / "ws", tmux, agents=2)


def put(inbox: Path, name: str, data: bytes) -> None:
    """Written elsewhere, then renamed in: read at once."""
    tmp = inbox / f".{name}.tmp"
    tmp.write_bytes(data)
    stamp = time.time() - 60
    os.utime(tmp, (stamp, stamp))
    tmp.rename(inbox / name)


def test_hostile_files_fail_with_their_reason_and_never_reach_an_agent(ws: Workspace, tmp_path: Path) -> None:
    ran = ws.root / "ran.log"
    queue = ws.project("web") / ".agent-queue"
    inbox = queue / "inbox"
    outside = tmp_path / "outside.md"
    outside.write_text(f"Not yours\nsim: append {ran} link\n", encoding="utf-8")
    os.symlink(outside, inbox / "link.md")
    put(inbox, "big.md", f"Big\nsim: append {ran} big\n".encode() + b"x" * 5000 + b"\n")
    put(inbox, "latin.md", f"Caf\xe9\nsim: append {ran} latin\n".encode("latin-1"))
    put(inbox, "yaml.md", f"---\ntitle: [unclosed\n---\nsim: append {ran} yaml\n".encode())
    put(inbox, "unsafe.md", f'---\ndepends_on: ["../etc:passwd"]\n---\nsim: append {ran} unsafe\n'.encode())
    put(inbox, "good.md", f"Good\nsim: work 100ms\nsim: append {ran} good\n".encode())
    engine = new_engine(ws, tasks__max_bytes=4096)

    def settled() -> bool:
        failed = {e.get("task") for e in ws.events() if e["type"] == "failed"}
        return ws.done("web") == ["good.md"] and failed >= {f"web:{k}" for k in HOSTILE}

    run_engine(engine, settled, timeout=30)

    assert ran.read_text().split() == ["good"]  # no hostile file's directive ran
    dispatched = [e["task"] for e in ws.events() if e["type"] in ("dispatched", "submitted")]
    assert set(dispatched) == {"web:good"}
    reasons = {e["task"]: e["reason"] for e in ws.events() if e["type"] == "failed"}
    assert reasons["web:link"] == "not a regular file (symlink resolving outside the project)"
    assert reasons["web:big"].startswith("over 4 KiB (")
    assert reasons["web:latin"] == "not UTF-8 (byte 0xe9 at offset 3)"
    assert reasons["web:yaml"].startswith("invalid YAML frontmatter: ")
    assert sorted(ws.failed("web")) == ["big.md", "latin.md", "link.md", "link.md.reason", "yaml.md"]
    failed = queue / "failed"
    assert (failed / "link.md").is_symlink()  # moved as it is, never read or written through
    assert outside.read_text(encoding="utf-8") == f"Not yours\nsim: append {ran} link\n"
    assert "symlink resolving outside the project" in (failed / "link.md.reason").read_text()
    for name, reason in (("big", "over 4 KiB"), ("latin", "not UTF-8"), ("yaml", "invalid YAML frontmatter")):
        assert reason in (failed / f"{name}.md").read_bytes().decode("utf-8", "replace")
    assert sorted(ws.inbox("web")) == ["unsafe.md", "unsafe.md.blocked"]
    blocked = [e["reason"] for e in ws.events() if e["type"] == "blocked" and e["task"] == "web:unsafe"]
    assert blocked == ["unsafe depends_on entry '../etc:passwd'"]
