"""A `depends_on` that no queue holds is named so: in the dependency check, the sidecar and the status."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

from engine import queue as q
from engine import sidecars
from engine.config_reader import config_from_dict
from engine.snapshot import build_snapshot, queue_rows
from engine.state import State
from engine.status import render_status, status_dict
from engine.tasks import NOWHERE, Task, parse_task, queue_dir, resolve_dependencies

NOW = 1_800_000_000.0
HINT = "which exists nowhere (not queued, running, done or failed)"


def project(root: Path, name: str) -> Path:
    d = root / name
    for sub in ("inbox", "done", "failed"):
        (d / ".agent-queue" / sub).mkdir(parents=True, exist_ok=True)
    return d


def task_in(project_dir: Path, name: str, depends: list[str]) -> Task:
    path = queue_dir(project_dir, "inbox") / name
    path.write_text(f"---\ndepends_on: [{', '.join(depends)}]\n---\nBody\n", encoding="utf-8")
    return parse_task(path, project_dir.name)


def test_a_dependency_in_any_queue_exists_and_one_in_none_does_not(tmp_path: Path) -> None:
    src = tmp_path / "src"
    web, api = project(src, "web"), project(src, "api")
    (queue_dir(api, "inbox") / "queued.md").write_text("x")
    (queue_dir(api, "inbox") / "running.md.dispatched").write_text("x")
    (queue_dir(api, "failed") / "broke.md").write_text("x")
    (queue_dir(api, "done") / "finished-20260101T120000.md").write_text("x")
    archived = api / ".agent-queue" / "archive" / "2026-01" / "failed"
    archived.mkdir(parents=True)
    (archived / "old.md").write_text("x")
    (queue_dir(api, "inbox") / "typo.md.blocked").write_text("a sidecar is not a task")
    deps = ["api:queued", "api:running", "api:broke", "api:finished", "api:old", "api:typo", "ghost:x"]
    task = task_in(web, "t.md", deps)
    status = resolve_dependencies(task, src, {"web": web, "api": api})
    assert status.missing == ("api:queued", "api:running", "api:broke", "api:old", "api:typo", "ghost:x")
    assert status.nowhere == ("api:typo", "ghost:x")
    assert status.waiting()[-1] == f"waiting for ghost:x, {HINT}"
    assert f"which {NOWHERE}" == HINT


def test_a_task_is_not_its_own_dependency_s_proof_of_existence(tmp_path: Path) -> None:
    web = project(tmp_path / "src", "web")
    task = task_in(web, "001-x-followup.md", ["001-x"])  # `001-x*` would match its own name
    assert resolve_dependencies(task, tmp_path / "src").nowhere == ("web:001-x",)
    (queue_dir(web, "inbox") / "001-x.md").write_text("x")
    assert resolve_dependencies(task, tmp_path / "src").nowhere == ()


def test_the_blocked_sidecar_follows_its_reasons_but_keeps_its_time(tmp_path: Path) -> None:
    web = project(tmp_path / "src", "web")
    task = task_in(web, "t.md", ["api:x"])
    assert sidecars.update_blocked(task, ["waiting for api:x"]) is False  # none there: not created
    assert sidecars.mark_blocked(task, [f"waiting for api:x, {HINT}"])
    sidecar = queue_dir(web, "inbox") / "t.md.blocked"
    os.utime(sidecar, (NOW - 3600, NOW - 3600))
    assert sidecars.update_blocked(task, [f"waiting for api:x, {HINT}"]) is False  # unchanged
    assert sidecars.update_blocked(task, ["waiting for api:x"]) is True
    assert sidecar.read_text() == "depends_on not met: waiting for api:x\n"
    assert sidecars.sidecar_since(task, "blocked") == NOW - 3600
    assert sorted(os.listdir(sidecar.parent)) == ["t.md", "t.md.blocked"]


def test_the_blocked_row_and_cfo_status_carry_the_hint(tmp_path: Path) -> None:
    src = tmp_path / "src"
    web = project(src, "web")
    task_in(web, "t.md", ["billing-api:001-x", "web:000-setup"])
    (queue_dir(web, "inbox") / "000-setup.md").write_text("Set up\n")
    (queue_dir(web, "inbox") / "t.md.blocked").write_text("depends_on not met: …\n")
    config = config_from_dict(
        {
            "accounts": [{"name": "a", "home": str(tmp_path / "a")}],
            "projects_dir": str(src),
            "state_dir": str(tmp_path / "state"),
            "tmux": {"socket_name": "cfo-test-no-such-server"},
        }
    )
    scan = q.Queue(settle=0.0).scan({"web": web})
    hinted = replace(scan, nowhere={"web:t": ("billing-api:001-x",)})
    (row,) = queue_rows(hinted)[1]
    assert row.waiting_for == f"billing-api:001-x, {HINT}, web:000-setup"
    snap = build_snapshot(config, State(), hinted, {}, NOW)
    assert snap.blocked[0].waiting_for == row.waiting_for

    data = status_dict(config)
    assert data["blocked"] == [
        {"task": "web:t", "waiting_for": row.waiting_for, "since": data["blocked"][0]["since"]}
    ]
    assert f"  blocked web:t: waits for billing-api:001-x, {HINT}, web:000-setup" in render_status(data)
