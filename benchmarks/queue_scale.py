"""Queue scale benchmark: 10,000 tasks over 20 projects; the last stdout line is one JSON object.

Times the first scan (every header parsed), a warm rescan (header cache by path, mtime and size),
a rescan after one file changed, and the dependency pass of a dispatch round, and checks that the
dispatch order is priority then age. No tmux is involved: this is the dispatcher's file work, which
runs in a thread so the event loop never waits on it.

Run: .venv/bin/python benchmarks/queue_scale.py
"""

from __future__ import annotations

import json
import os
import resource
import tempfile
import time
from collections.abc import Callable
from itertools import pairwise
from pathlib import Path
from typing import TypeVar

from engine.queue import Queue, discover_projects
from engine.tasks import PRIORITIES, DoneListing, resolve_dependencies

T = TypeVar("T")
PROJECTS = 20
TASKS = 10_000


def build(root: Path) -> None:
    now = time.time() - 3600
    for n in range(TASKS):
        project = root / f"project-{n % PROJECTS:02d}"
        inbox = project / ".agent-queue" / "inbox"
        if n < PROJECTS:
            inbox.mkdir(parents=True)
            (project / ".agent-queue" / "done").mkdir()
        priority = PRIORITIES[n % 4]
        deps = f"depends_on: [project-{(n + 1) % PROJECTS:02d}:t{n + 1:05d}]\n" if n % 10 == 0 else ""
        path = inbox / f"t{n:05d}.md"
        path.write_text(f"---\ntitle: Task {n}\npriority: {priority}\n{deps}---\nDo thing {n}.\n")
        os.utime(path, (now + n, now + n))


def timed(fn: Callable[[], T]) -> tuple[float, T]:
    start = time.perf_counter()
    result = fn()
    return (time.perf_counter() - start) * 1000, result


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="cfo-queue-") as tmp:
        root = Path(tmp)
        build(root)
        projects = discover_projects(root)
        queue = Queue(settle=0.0)
        first_ms, scan = timed(lambda: queue.scan(projects))
        parses_first = queue.parses
        warm_ms, warm = timed(lambda: queue.scan(projects))
        changed = root / "project-03" / ".agent-queue" / "inbox" / "t00003.md"
        changed.write_text(changed.read_text() + "More.\n")
        os.utime(changed, (time.time() - 10, time.time() - 10))
        one_ms, _ = timed(lambda: queue.scan(projects))
        listing = DoneListing()
        deps_ms, _ = timed(
            lambda: [resolve_dependencies(t, root, projects, listing) for t in warm.tasks if t.depends_on]
        )
        tasks = warm.tasks
        ordered = all(a.order <= b.order for a, b in pairwise(tasks))
        result = {
            "tasks": len(tasks),
            "projects": len(projects),
            "first_scan_ms": round(first_ms, 1),
            "warm_rescan_ms": round(warm_ms, 1),
            "rescan_one_changed_ms": round(one_ms, 1),
            "reparsed_after_one_change": queue.parses - parses_first,
            "dependency_pass_ms": round(deps_ms, 1),
            "dispatch_order_correct": ordered and tasks[0].priority == "critical",
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        }
        assert len(scan.tasks) == len(tasks)
        print(json.dumps(result))


if __name__ == "__main__":
    main()
