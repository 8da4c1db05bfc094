"""Half-written task files are not consumed: a file written in place in two halves 300 ms apart (settle
100 ms) is read whole; one that stays unparsable goes to failed/ with all its bytes, after the grace."""

from __future__ import annotations

import time
from pathlib import Path

from engine import moves
from engine import queue as q
from engine.tasks import Task, TaskError

FIRST = "---\ntitle: written in two halves\npriori"
SECOND = "ty: high\n---\nthe whole body\n"


def inbox_of(tmp_path: Path) -> Path:
    inbox = tmp_path / "web" / ".agent-queue" / "inbox"
    inbox.mkdir(parents=True)
    return inbox


def scan_for(queue: q.Queue, project: Path, name: str, seconds: float) -> list[Task | TaskError]:
    """Every outcome for `name` the queue reports while scanning every 20 ms for `seconds`."""
    seen: list[Task | TaskError] = []
    until = time.monotonic() + seconds
    while time.monotonic() < until:
        scan = queue.scan({"web": project})
        seen += [t for t in scan.tasks if t.path.name == name]
        seen += [e for e in scan.errors if e.path.name == name]
        time.sleep(0.02)
    return seen


def test_a_task_written_in_place_in_two_halves_is_read_whole(tmp_path: Path) -> None:
    inbox = inbox_of(tmp_path)
    project = tmp_path / "web"
    queue = q.Queue(settle=0.1)
    for n in range(5):
        name = f"t{n}.md"
        with open(inbox / name, "w", encoding="utf-8") as writer:
            writer.write(FIRST)
            writer.flush()
            during = scan_for(queue, project, name, 0.3)
            writer.write(SECOND)
        assert during == [], f"read half-written: {during}"
        after = scan_for(queue, project, name, 0.4)
        assert after and all(isinstance(o, Task) for o in after), after
        task = after[-1]
        assert isinstance(task, Task) and task.title == "written in two halves" and task.priority == "high"
        assert task.body.strip() == "the whole body"


def test_a_file_that_stays_unparsable_goes_to_failed_whole_after_the_grace(tmp_path: Path) -> None:
    inbox = inbox_of(tmp_path)
    project = tmp_path / "web"
    queue = q.Queue(settle=0.1)
    path = inbox / "bad.md"
    path.write_text(FIRST, encoding="utf-8")
    assert scan_for(queue, project, "bad.md", q.PARSE_GRACE - 0.3) == [], "reported within the grace"
    after = scan_for(queue, project, "bad.md", 0.6)
    assert after and isinstance(after[-1], TaskError)
    assert "no closing --- line" in after[-1].reason
    failed = moves.fail(path, after[-1].reason)
    assert failed.read_text(encoding="utf-8").startswith(FIRST)
    assert "no closing --- line" in failed.read_text(encoding="utf-8")
