"""Task files: parsing and failure reasons, inbox scan (settle, cache), order, depends_on, queue moves."""

from __future__ import annotations

import dataclasses
import os
import stat
from pathlib import Path

import pytest

from engine import footers, moves, sidecars
from engine import queue as q
from engine.tasks import (
    DEFAULT_MAX_BYTES,
    Dependency,
    DepStatus,
    DoneListing,
    Task,
    TaskError,
    dispatch_order,
    human_bytes,
    parse_dependency,
    parse_task,
    read_task,
    resolve_dependencies,
)

NOW = 1_800_000_000.0


class Clock:
    def __init__(self, t: float = NOW) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def project(root: Path, name: str) -> Path:
    d = root / name
    for sub in ("inbox", "done", "failed"):
        (d / ".agent-queue" / sub).mkdir(parents=True, exist_ok=True)
    return d


def inbox(project_dir: Path) -> Path:
    return project_dir / ".agent-queue" / "inbox"


def put(project_dir: Path, name: str, content: str | bytes, mtime: float = NOW - 60) -> Path:
    """A task file written and settled: its mtime is a minute before NOW unless told otherwise."""
    path = inbox(project_dir) / name
    if isinstance(content, str):
        path.write_text(content, encoding="utf-8")
    else:
        path.write_bytes(content)
    os.utime(path, (mtime, mtime), follow_symlinks=False)
    return path


def scan_one(project_dir: Path, queue: q.Queue | None = None) -> q.ScanResult:
    queue = queue or q.Queue(settle=0.1, now=Clock())
    return queue.scan({project_dir.name: project_dir})


def parsed(project_dir: Path, name: str, content: str) -> Task:
    return parse_task(put(project_dir, name, content), project_dir.name)


# --- parsing -----------------------------------------------------------------------------------------


def test_frontmatter_fields_are_parsed(tmp_path: Path) -> None:
    p = project(tmp_path, "webapp")
    task = parsed(
        p,
        "001-login.md",
        "---\n"
        "title: Validate the login form\n"
        "priority: High\n"
        "tags: [ui, forms]\n"
        "needs_claude_code: true\n"
        "depends_on: [billing-api:001-schema, 000-setup]\n"
        "preferred_ai: claude\n"
        "allow_delegation: false\n"
        "complexity_hint: 3\n"
        "---\n"
        "Check the e-mail field.\n",
    )
    assert task.key == "webapp:001-login"
    assert task.filename == "001-login.md"
    assert task.title == "Validate the login form"
    assert task.priority == "high"
    assert task.tags == ("ui", "forms")
    assert task.needs_claude_code is True
    assert task.allow_delegation is False
    assert task.preferred_ai == "claude"
    assert task.complexity_hint == "3"
    assert task.depends_on == (Dependency("billing-api", "001-schema"), Dependency("webapp", "000-setup"))
    assert task.body == "Check the e-mail field.\n"
    assert task.created == NOW - 60
    assert task.project_dir == p


def test_a_file_without_frontmatter_is_a_default_task_titled_by_its_first_line(tmp_path: Path) -> None:
    p = project(tmp_path, "webapp")
    task = parsed(p, "a.md", "\n\n# Fix the footer  \nmore\n")
    assert (task.priority, task.title, task.tags, task.depends_on) == ("default", "Fix the footer", (), ())
    assert task.needs_claude_code is None and task.allow_delegation is None
    assert parsed(p, "empty.md", "").title == "empty"
    assert parsed(p, "blank-header.md", "---\n---\nbody\n").title == "body"


def test_crlf_and_a_byte_order_mark_are_accepted(tmp_path: Path) -> None:
    p = project(tmp_path, "webapp")
    task = parsed(p, "a.md", "\ufeff---\r\npriority: low\r\n---\r\nDo it\r\n")
    assert (task.priority, task.title) == ("low", "Do it")


def test_unknown_frontmatter_keys_are_ignored_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    p = project(tmp_path, "webapp")
    task = parsed(p, "a.md", "---\nprority: critical\n---\nx\n")
    assert task.priority == "default"
    assert "prority" in caplog.text


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        pytest.param(
            "---\ntitle: a\npriority: [high\n---\nbody\n",
            "invalid YAML frontmatter: did not find expected ',' or ']' (line 4, column 1)",
            id="malformed-yaml",
        ),
        pytest.param("---\ntitle: a: b\n---\n", "invalid YAML frontmatter: mapping values", id="yaml-colon"),
        pytest.param(
            "---\ntitle: a\nbody without end\n",
            "invalid YAML frontmatter: no closing --- line",
            id="unclosed",
        ),
        pytest.param("---\n- a\n- b\n---\n", "frontmatter is not a mapping (it is a list)", id="list-header"),
        pytest.param(
            "---\njust text\n---\n", 'frontmatter is not a mapping (it is "just text")', id="scalar-header"
        ),
        pytest.param(
            "---\na: !!python/object/apply:os.system [echo hi]\n---\n",
            "invalid YAML frontmatter: could not determine a constructor",
            id="python-tag",
        ),
        pytest.param("---\npriority: urgent\n---\n", 'unknown priority "urgent"', id="unknown-priority"),
        pytest.param("---\npriority: 1\n---\n", "priority must be text, not 1", id="numeric-priority"),
        pytest.param("---\ntitle: [a, b]\n---\n", "title must be text, not a list", id="title-list"),
        pytest.param("---\ntags: {a: 1}\n---\n", "tags must be a list, not a mapping", id="tags-mapping"),
        pytest.param("---\ntags: [[a]]\n---\n", "tags must be a list of words", id="tags-nested"),
        pytest.param(
            "---\nneeds_claude_code: maybe\n---\n",
            'needs_claude_code must be true or false, not "maybe"',
            id="flag-text",
        ),
        pytest.param(
            "---\nallow_delegation: 1\n---\n", "allow_delegation must be true or false, not 1", id="flag-int"
        ),
        pytest.param("---\ndepends_on: {a: b}\n---\n", "depends_on must be a list", id="depends-mapping"),
        pytest.param("---\n1: a\n---\n", "frontmatter keys must be text", id="numeric-key"),
    ],
)
def test_a_malformed_header_names_the_problem(tmp_path: Path, content: str, reason: str) -> None:
    p = project(tmp_path, "webapp")
    path = put(p, "bad.md", content)
    with pytest.raises(TaskError) as err:
        parse_task(path, "webapp")
    assert err.value.path == path
    assert err.value.reason.startswith(reason), err.value.reason


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        pytest.param(b"caf\xe9 au lait\n", "not UTF-8 (byte 0xe9 at offset 3)", id="latin1"),
        pytest.param(b"\xff\xfeh\x00i\x00", "binary content (NUL byte at offset 3)", id="utf16"),
        pytest.param(b"ELF\x00\x01\x02", "binary content (NUL byte at offset 3)", id="nul"),
    ],
)
def test_content_that_is_not_utf8_text_is_refused(tmp_path: Path, content: bytes, reason: str) -> None:
    p = project(tmp_path, "webapp")
    with pytest.raises(TaskError) as err:
        parse_task(put(p, "bin.md", content), "webapp")
    assert err.value.reason == reason


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        pytest.param("Do it\n\x1b[201~/exit\n", "control character U+001B (Esc) at line 2", id="esc"),
        pytest.param("one\x15two\n", "control character U+0015 (Ctrl-U) at line 1", id="ctrl-u"),
        pytest.param("one\rtwo\n", "control character U+000D (carriage return (Enter)) at line 1", id="cr"),
        pytest.param("---\ntitle: x\x7f\n---\nbody\n", "control character U+007F (DEL) at line 2", id="del"),
    ],
)
def test_a_task_holding_control_characters_is_refused(tmp_path: Path, content: str, reason: str) -> None:
    p = project(tmp_path, "webapp")
    with pytest.raises(TaskError) as err:
        parse_task(put(p, "keys.md", content), "webapp")
    assert err.value.reason == reason


def test_tabs_and_line_ends_are_a_task_text_of_its_own(tmp_path: Path) -> None:
    p = project(tmp_path, "webapp")
    assert parsed(p, "a.md", "Do\tit\r\nnow\n").body == "Do\tit\r\nnow\n"


def test_a_task_file_name_holding_a_control_character_is_refused(tmp_path: Path) -> None:
    p = project(tmp_path, "webapp")
    with pytest.raises(TaskError) as err:
        parse_task(put(p, "evil\x15\r.md", "hi"), "webapp")
    assert err.value.reason == "control character U+0015 (Ctrl-U) in the file name"
    assert "\\x15\\x0d.md: control character" in str(err.value)  # printable on one log line


def test_a_file_over_the_size_limit_is_refused_without_being_read(tmp_path: Path) -> None:
    p = project(tmp_path, "webapp")
    with pytest.raises(TaskError) as err:
        parse_task(put(p, "big.md", "x" * (DEFAULT_MAX_BYTES + 1)), "webapp")
    assert err.value.reason == "over 1 MiB (1,048,577 bytes)"
    with pytest.raises(TaskError) as err:
        parse_task(put(p, "big2.md", "x" * 3000), "webapp", max_bytes=2048)
    assert err.value.reason == "over 2 KiB (3,000 bytes)"
    assert parse_task(put(p, "fits.md", "x" * 2048), "webapp", max_bytes=2048).size == 2048


@pytest.mark.parametrize(
    ("n", "text"),
    [(512, "512 bytes"), (1024, "1 KiB"), (1536, "1.5 KiB"), (1048576, "1 MiB"), (3 * 1024**3, "3 GiB")],
)
def test_sizes_read_humanly(n: int, text: str) -> None:
    assert human_bytes(n) == text


def test_symlinks_are_never_read(tmp_path: Path) -> None:
    p = project(tmp_path, "webapp")
    secret = tmp_path / "secret.txt"
    secret.write_text("do not read")
    (inbox(p) / "outside.md").symlink_to(secret)
    (p / "notes.md").write_text("---\ntitle: inside\n---\n")
    (inbox(p) / "inside.md").symlink_to(p / "notes.md")
    with pytest.raises(TaskError, match="symlink resolving outside the project"):
        parse_task(inbox(p) / "outside.md", "webapp")
    with pytest.raises(TaskError, match=r"not a regular file \(symlink\)$"):
        parse_task(inbox(p) / "inside.md", "webapp")


def test_a_fifo_does_not_hang_the_reader(tmp_path: Path) -> None:
    p = project(tmp_path, "webapp")
    os.mkfifo(inbox(p) / "pipe.md")
    with pytest.raises(TaskError, match=r"not a regular file \(FIFO\)"):
        parse_task(inbox(p) / "pipe.md", "webapp")


def test_an_inbox_that_resolves_outside_the_project_is_refused(tmp_path: Path) -> None:
    p = tmp_path / "webapp"
    (p / ".agent-queue").mkdir(parents=True)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (p / ".agent-queue" / "inbox").symlink_to(elsewhere)
    (elsewhere / "a.md").write_text("hello")
    with pytest.raises(TaskError, match="resolves outside the project"):
        parse_task(p / ".agent-queue" / "inbox" / "a.md", "webapp")
    result = scan_one(p)
    assert result.tasks == () and result.errors == ()
    assert result.problems == (f"{p / '.agent-queue' / 'inbox'}: resolves outside the project; not scanned",)


# --- scanning ----------------------------------------------------------------------------------------


def test_bad_files_are_reported_and_the_queue_keeps_going(tmp_path: Path) -> None:
    p = project(tmp_path, "webapp")
    put(p, "001-good.md", "first")
    put(p, "002-bad-yaml.md", "---\npriority: [high\n---\n")
    put(p, "003-latin1.md", b"\xe9t\xe9")
    (inbox(p) / "004-link.md").symlink_to(tmp_path)
    put(p, "005-good.md", "second")
    result = scan_one(p)
    assert [t.id for t in result.tasks] == ["001-good", "005-good"]
    reasons = {e.path.name: e.reason for e in result.errors}
    assert reasons["002-bad-yaml.md"].startswith("invalid YAML frontmatter:")
    assert reasons["003-latin1.md"].startswith("not UTF-8")
    assert reasons["004-link.md"] == "not a regular file (symlink resolving outside the project)"
    for error in result.errors:
        moves.fail(error.path, error.reason)
    assert [t.id for t in scan_one(p).tasks] == ["001-good", "005-good"]
    assert scan_one(p).errors == ()
    failed = p / ".agent-queue" / "failed"
    assert sorted(os.listdir(failed)) == [
        "002-bad-yaml.md",
        "003-latin1.md",
        "004-link.md",
        "004-link.md.reason",
    ]
    footer = footers.read_footer(failed / "002-bad-yaml.md")
    assert footer is not None and str(footer["reason"]).startswith("invalid YAML frontmatter:")
    assert (failed / "003-latin1.md").read_bytes().startswith(b"\xe9t\xe9\n\n---\n")


def test_the_scan_skips_hidden_temporary_and_sidecar_files(tmp_path: Path) -> None:
    p = project(tmp_path, "webapp")
    for name in (".hidden.md", "a.md.tmp", "notes.txt", "a.md~", "a.md.reason", ".md"):
        put(p, name, "x")
    put(p, "a.md", "real")
    put(p, "b.md.dispatched", "running")
    for kind in ("blocked", "delegated", "stuck"):
        put(p, f"a.md.{kind}", "")
    (inbox(p) / "sub.md").mkdir()
    result = scan_one(p)
    assert [t.id for t in result.tasks] == ["a"]
    assert result.claimed == (inbox(p) / "b.md.dispatched",)
    assert result.marks == {"webapp:a": frozenset({"blocked", "delegated", "stuck"})}
    assert result.marked("webapp:a", "stuck") and not result.marked("webapp:b", "stuck")
    assert [(e.path.name, e.reason) for e in result.errors] == [("sub.md", "not a regular file (directory)")]


def test_a_project_without_an_inbox_is_skipped_quietly(tmp_path: Path) -> None:
    (tmp_path / "bare").mkdir()
    assert scan_one(tmp_path / "bare") == q.ScanResult()


def test_a_fresh_file_is_read_only_once_settled(tmp_path: Path) -> None:
    clock = Clock()
    queue = q.Queue(settle=0.5, now=clock)
    p = project(tmp_path, "webapp")
    path = put(p, "a.md", "half", mtime=NOW)
    first = scan_one(p, queue)
    assert (first.tasks, first.unsettled, first.next_settle) == ((), 1, NOW + 0.5)
    clock.t += 0.3
    path.write_text("half written")
    os.utime(path, (clock.t, clock.t))
    assert scan_one(p, queue).unsettled == 1
    clock.t += 0.5
    done = scan_one(p, queue)
    assert [t.body for t in done.tasks] == ["half written"]
    assert queue.parses == 1


def test_a_file_seen_unchanged_for_the_settle_time_is_read_even_with_a_future_mtime(tmp_path: Path) -> None:
    clock = Clock()
    queue = q.Queue(settle=0.5, now=clock)
    p = project(tmp_path, "webapp")
    put(p, "a.md", "clock skew", mtime=NOW + 3600)
    assert scan_one(p, queue).unsettled == 1
    clock.t += 0.2
    assert scan_one(p, queue).unsettled == 1
    clock.t += 0.3
    assert [t.id for t in scan_one(p, queue).tasks] == ["a"]


def test_a_file_renamed_in_after_it_was_written_is_read_at_once(tmp_path: Path) -> None:
    clock = Clock()
    p = project(tmp_path, "webapp")
    staging = tmp_path / "a.md"
    staging.write_text("written earlier")
    os.utime(staging, (NOW - 1, NOW - 1))
    os.rename(staging, inbox(p) / "a.md")
    assert [t.id for t in scan_one(p, q.Queue(settle=0.5, now=clock)).tasks] == ["a"]


def test_the_header_cache_parses_only_changed_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    reads: list[str] = []
    real = read_task

    def counting(path: Path, project: str, project_dir: Path, max_bytes: int) -> Task:
        reads.append(path.name)
        return real(path, project, project_dir, max_bytes)

    monkeypatch.setattr(q, "read_task", counting)
    projects = {name: project(tmp_path, name) for name in ("alpha", "beta")}
    for name, d in projects.items():
        for i in range(30):
            put(d, f"{i:03d}.md", f"---\npriority: low\n---\n{name} {i}")
        put(d, "bad.md", "---\n[\n---\n")
    clock = Clock()
    queue = q.Queue(settle=0.1, now=clock)
    first = queue.scan(projects)
    assert (len(first.tasks), len(first.errors), len(reads), queue.parses) == (60, 2, 62, 62)
    reads.clear()
    again = queue.scan(projects)
    assert reads == [] and again.tasks == first.tasks and len(again.errors) == 2
    put(projects["alpha"], "007.md", "---\npriority: critical\n---\nchanged", mtime=NOW - 30)
    os.unlink(inbox(projects["beta"]) / "003.md")
    put(projects["beta"], "new.md", "new")
    third = queue.scan(projects)
    # Changed since it was read, 007.md waits to be seen unchanged for `settle`, whatever its mtime says.
    assert reads == ["new.md"] and third.unsettled == 1
    clock.t += 0.1
    fourth = queue.scan(projects)
    assert sorted(reads) == ["007.md", "new.md"]
    assert fourth.tasks[0].key == "alpha:007" and len(fourth.tasks) == 60
    assert "beta:003" not in {t.key for t in fourth.tasks}


# --- order -------------------------------------------------------------------------------------------


def test_dispatch_order_is_priority_then_age_across_projects(tmp_path: Path) -> None:
    a, b = project(tmp_path, "a"), project(tmp_path, "b")
    put(a, "low-old.md", "---\npriority: low\n---\n", mtime=NOW - 500)
    put(b, "default-new.md", "x", mtime=NOW - 10)
    put(a, "default-old.md", "x", mtime=NOW - 400)
    put(b, "critical-new.md", "---\npriority: critical\n---\n", mtime=NOW - 5)
    put(a, "high-same.md", "---\npriority: high\n---\n", mtime=NOW - 100)
    put(b, "high-same.md", "---\npriority: high\n---\n", mtime=NOW - 100)
    tasks = q.Queue(now=Clock()).scan({"b": b, "a": a}).tasks
    assert [t.key for t in tasks] == [
        "b:critical-new",
        "a:high-same",
        "b:high-same",
        "a:default-old",
        "b:default-new",
        "a:low-old",
    ]
    assert dispatch_order(reversed(tasks)) == list(tasks)


# --- dependencies ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        pytest.param("api:001-schema", Dependency("api", "001-schema"), id="project-and-id"),
        pytest.param("001-schema", Dependency("web", "001-schema"), id="bare-id-is-own-project"),
        pytest.param("api:001-schema.md", Dependency("api", "001-schema"), id="md-suffix-dropped"),
        pytest.param("my.proj_2:v1.2-x", Dependency("my.proj_2", "v1.2-x"), id="dots-underscores"),
        pytest.param("../x:y", None, id="parent-project"),
        pytest.param("a/b:c", None, id="slash-in-project"),
        pytest.param("x:a/b", None, id="slash-in-id"),
        pytest.param("x:..", None, id="dotdot-id"),
        pytest.param("..:y", None, id="dotdot-project"),
        pytest.param("x:.", None, id="dot-id"),
        pytest.param("/etc:passwd", None, id="absolute-project"),
        pytest.param("x:/etc/passwd", None, id="absolute-id"),
        pytest.param("", None, id="empty"),
        pytest.param(":y", None, id="empty-project"),
        pytest.param("x:", None, id="empty-id"),
        pytest.param("x:.md", None, id="only-suffix"),
        pytest.param("a:b:c", None, id="two-colons"),
        pytest.param("x y:z", None, id="space"),
        pytest.param("x:y\n", None, id="newline"),
        pytest.param("x:$(rm -rf ~)", None, id="shell"),
        pytest.param("x:ü", None, id="non-ascii"),
        pytest.param(42, None, id="number"),
        pytest.param(None, None, id="null"),
        pytest.param(["a:b"], None, id="list"),
    ],
)
def test_dependency_entries_are_checked_segment_by_segment(
    entry: object, expected: Dependency | None
) -> None:
    assert parse_dependency(entry, "web") == expected


def test_unsafe_dependencies_block_and_are_reported_as_written(tmp_path: Path) -> None:
    p = project(tmp_path, "web")
    task = parsed(p, "t.md", '---\ndepends_on: ["../x:y", "a/b:c", 42, null, [1], "web:ok"]\n---\n')
    (p / ".agent-queue" / "done" / "ok.md").write_text("done")
    assert task.unsafe_depends == ("../x:y", "a/b:c", "42", "null", "a list")
    status = resolve_dependencies(task, tmp_path)
    assert status == DepStatus(met=False, unsafe=("../x:y", "a/b:c", "42", "null", "a list"))


def test_dependencies_are_met_by_done_files_plain_or_timestamped(tmp_path: Path) -> None:
    projects_dir = tmp_path / "src"
    web, api = project(projects_dir, "web"), project(projects_dir, "api")
    dedicated = project(tmp_path / "elsewhere", "conformvault")
    task = parsed(
        web,
        "t.md",
        "---\ndepends_on: [api:001-schema, api:002-seed, 000-setup, conformvault:x, ghost:y]\n---\n",
    )
    known = {"conformvault": dedicated}
    status = resolve_dependencies(task, projects_dir, known)
    missing = ("api:001-schema", "api:002-seed", "web:000-setup", "conformvault:x", "ghost:y")
    assert status == DepStatus(met=False, missing=missing, nowhere=missing)
    (api / ".agent-queue" / "done" / "001-schema.md").write_text("done")
    (api / ".agent-queue" / "done" / "002-seed-20260101T120000.md").write_text("done")
    (web / ".agent-queue" / "done" / "000-setup.md").write_text("done")
    (dedicated / ".agent-queue" / "done" / "x.md").write_text("done")
    status = resolve_dependencies(task, projects_dir, known)
    assert status == DepStatus(met=False, missing=("ghost:y",), nowhere=("ghost:y",))
    project(projects_dir, "ghost")
    (projects_dir / "ghost" / ".agent-queue" / "done" / "y-2.md").write_text("done")
    assert resolve_dependencies(task, projects_dir, known).met


def test_a_done_listing_is_taken_once_per_round(tmp_path: Path) -> None:
    api = project(tmp_path, "api")
    done = api / ".agent-queue" / "done"
    listing = DoneListing()
    assert not listing.has(done, "a")
    (done / "a-1.md").write_text("done")
    assert not listing.has(done, "a")
    (done / "b.md").write_text("done")
    assert listing.has(done, "b")
    assert DoneListing().has(done, "a")


# --- queue moves -------------------------------------------------------------------------------------


def test_claim_renames_to_dispatched_and_a_second_claim_fails_cleanly(tmp_path: Path) -> None:
    p = project(tmp_path, "web")
    task = parsed(p, "a.md", "do it")
    sidecars.mark_blocked(task, ["api:x"])
    claimed = moves.claim(task)
    assert claimed == inbox(p) / "a.md.dispatched"
    assert sorted(os.listdir(inbox(p))) == ["a.md.dispatched"]
    # Recovery reads a claimed file like a pending one.
    assert parse_task(claimed, "web") == dataclasses.replace(task, path=claimed)
    with pytest.raises(TaskError) as err:
        moves.claim(task)
    assert err.value.reason == "vanished"


def test_claim_never_overwrites_a_running_claim_of_the_same_id(tmp_path: Path) -> None:
    p = project(tmp_path, "web")
    put(p, "a.md.dispatched", "running")
    task = parsed(p, "a.md", "new one")
    with pytest.raises(TaskError, match=r"a\.md\.dispatched exists"):
        moves.claim(task)
    assert (inbox(p) / "a.md.dispatched").read_text() == "running"
    assert (inbox(p) / "a.md").read_text() == "new one"


def test_claim_puts_back_a_file_changed_since_it_was_read(tmp_path: Path) -> None:
    p = project(tmp_path, "web")
    task = parsed(p, "a.md", "first")
    put(p, "a.md", "second version", mtime=NOW - 5)
    with pytest.raises(TaskError, match="changed since it was read"):
        moves.claim(task)
    assert sorted(os.listdir(inbox(p))) == ["a.md"]


def test_requeue_restores_the_inbox_file_without_overwriting_a_newcomer(tmp_path: Path) -> None:
    p = project(tmp_path, "web")
    claimed = moves.claim(parsed(p, "a.md", "old"))
    assert moves.requeue(claimed) == inbox(p) / "a.md"
    claimed = moves.claim(parse_task(inbox(p) / "a.md", "web"))
    put(p, "a.md", "newcomer")
    assert moves.requeue(claimed) == inbox(p) / "a-2.md"
    assert (inbox(p) / "a.md").read_text() == "newcomer"
    assert (inbox(p) / "a-2.md").read_text() == "old"
    assert os.stat(inbox(p) / "a-2.md").st_mtime == NOW - 60


def test_complete_writes_done_with_a_footer_and_never_overwrites(tmp_path: Path) -> None:
    p = project(tmp_path, "web")
    done = p / ".agent-queue" / "done"
    footer: dict[str, footers.FooterValue] = {
        "task": "web:a",
        "session": "ccl-auto-11",
        "account": "primary",
        "model": "sonnet",
        "start": "2027-01-15T08:00:00Z",
        "end": "2027-01-15T08:03:00Z",
        "ended": "done signal",
    }
    claimed = moves.claim(parsed(p, "a.md", "---\ntitle: A\n---\nbody"))
    put(p, "a.md.stuck", "")
    target = moves.complete(claimed, footer)
    assert target == done / "a.md"
    assert os.listdir(inbox(p)) == []
    text = target.read_text()
    assert text.startswith("---\ntitle: A\n---\nbody\n\n---\n\n```cfo\nstatus: completed\ntask: web:a\n")
    written = footers.read_footer(target)
    assert written is not None
    assert text.endswith(f"ended: done signal\nclaim: {written['claim']}\n```\n")
    assert written == {"status": "completed", **footer, "claim": written["claim"]}
    second = moves.complete(moves.claim(parsed(p, "a.md", "again")), {"ended": "turn end"})
    assert second == done / "a-2.md"
    assert target.read_text() == text
    assert parse_task(target, "web").title == "A"  # a done file is still a readable task file
    assert not [n for n in os.listdir(done) if n.endswith(".tmp")]


def test_a_crash_between_done_and_unclaim_is_recognised_by_recovery(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    p = project(tmp_path, "web")
    done = p / ".agent-queue" / "done"
    (done / "a.md").write_text(
        "an earlier run of the same id\n\n---\n\n```cfo\nstatus: completed\nclaim: 1-2\n```\n"
    )
    claimed = moves.claim(parsed(p, "a.md", "work"))

    class Crash(BaseException):
        pass

    def crash(path: Path) -> None:
        raise Crash

    monkeypatch.setattr(moves, "_remove", crash)
    with pytest.raises(Crash):
        moves.complete(claimed, {"session": "ccl-auto-11"})
    monkeypatch.undo()
    assert claimed.exists() and (done / "a-2.md").exists()
    assert moves.reconcile_claim(claimed) == done / "a-2.md"
    assert not claimed.exists()
    other = moves.claim(parsed(p, "b.md", "never finished"))
    assert moves.reconcile_claim(other) is None and other.exists()


def test_fail_copies_a_regular_file_with_the_reason_in_its_footer(tmp_path: Path) -> None:
    p = project(tmp_path, "web")
    claimed = moves.claim(parsed(p, "a.md", "work"))
    os.chmod(claimed, 0o600)
    target = moves.fail(claimed, "timed out after 60m", {"session": "ccl-auto-12"})
    assert stat.S_IMODE(os.stat(target).st_mode) == 0o600
    assert target == p / ".agent-queue" / "failed" / "a.md"
    written = footers.read_footer(target)
    assert written is not None
    assert written == {
        "status": "failed",
        "reason": "timed out after 60m",
        "session": "ccl-auto-12",
        "claim": written["claim"],
    }
    assert os.listdir(inbox(p)) == []


def test_fail_moves_links_and_special_files_as_they_are_with_a_reason_sidecar(tmp_path: Path) -> None:
    p = project(tmp_path, "web")
    failed = p / ".agent-queue" / "failed"
    secret = tmp_path / "secret"
    secret.write_text("untouched")
    (inbox(p) / "link.md").symlink_to(secret)
    os.mkfifo(inbox(p) / "pipe.md")
    put(p, "huge.md", "x" * 5000)
    for name in ("link.md", "pipe.md", "huge.md"):
        moves.fail(inbox(p) / name, f"{name} is bad", max_copy=4096)
    assert os.readlink(failed / "link.md") == str(secret)
    assert secret.read_text() == "untouched"
    assert stat.S_ISFIFO(os.lstat(failed / "pipe.md").st_mode)
    assert (failed / "huge.md").read_text() == "x" * 5000
    for name in ("link.md", "pipe.md", "huge.md"):
        sidecar = (failed / f"{name}.reason").read_text()
        assert sidecar == f"status: failed\nreason: {name} is bad\noriginal: {name}\n"
    assert os.listdir(inbox(p)) == []


def test_moves_refuse_a_queue_folder_that_resolves_outside_the_project(tmp_path: Path) -> None:
    p = project(tmp_path, "web")
    outside = tmp_path / "outside"
    outside.mkdir()
    (p / ".agent-queue" / "done").rmdir()
    (p / ".agent-queue" / "done").symlink_to(outside)
    claimed = moves.claim(parsed(p, "a.md", "work"))
    with pytest.raises(TaskError, match="resolves outside the project"):
        moves.complete(claimed, {})
    assert os.listdir(outside) == [] and claimed.exists()


def test_io_errors_of_a_move_surface_as_task_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    p = project(tmp_path, "web")
    claimed = moves.claim(parsed(p, "b.md", "work"))

    def disk_full(target: Path, data: bytes, mode: int = 0o644) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(moves, "write_new", disk_full)
    with pytest.raises(TaskError, match=r"b\.md\.dispatched: cannot complete it: No space left on device$"):
        moves.complete(claimed, {})
    assert claimed.exists()
    with pytest.raises(TaskError, match="vanished"):
        moves.fail(inbox(p) / "nothing.md", "x")
    with pytest.raises(TaskError, match="not a claimed task"):
        moves.requeue(inbox(p) / "a.md")
    with pytest.raises(TaskError, match=r"^.*a\.md\.dispatched: vanished$"):
        moves.complete(inbox(p) / "a.md.dispatched", {})


def test_footer_values_stay_on_one_line_and_cannot_end_the_block(tmp_path: Path) -> None:
    p = project(tmp_path, "web")
    reason = "line one\nline two\n```\nclaim: forged\n-->"
    target = moves.fail(put(p, "a.md", "body"), reason, {"exit_code": 2, "forced": True, "model": None})
    footer = footers.read_footer(target)
    assert footer is not None
    assert footer["reason"] == "line one line two ``` claim: forged -->"
    assert (footer["exit_code"], footer["forced"], footer["model"]) == (2, True, None)
    assert footer["claim"] != "forged"
    with pytest.raises(ValueError, match="lower_snake_case"):
        footers.footer_yaml({"Bad Key": 1})


# --- sidecars ----------------------------------------------------------------------------------------


def test_the_blocked_sidecar_is_created_once_and_keeps_its_time(tmp_path: Path) -> None:
    p = project(tmp_path, "web")
    task = parsed(p, "a.md", "---\ndepends_on: [api:x]\n---\n")
    assert sidecars.sidecar_since(task, "blocked") is None
    assert sidecars.mark_blocked(task, ["api:x"]) is True
    sidecar = inbox(p) / "a.md.blocked"
    os.utime(sidecar, (NOW - 3600, NOW - 3600))
    assert sidecars.mark_blocked(task, ["api:x", "api:y"]) is False
    assert sidecar.read_text() == "depends_on not met: api:x\n"
    assert sidecars.sidecar_since(task, "blocked") == NOW - 3600
    assert sidecars.clear_sidecar(task, "blocked") is True
    assert sidecars.clear_sidecar(task, "blocked") is False
    sidecars.mark_blocked(task, ["api:x"])
    moves.claim(task)
    assert not sidecar.exists()


def test_a_link_planted_at_a_sidecar_name_is_never_followed(tmp_path: Path) -> None:
    p = project(tmp_path, "web")
    task = parsed(p, "a.md", "x")
    victim = tmp_path / "victim"
    victim.write_text("keep")
    for kind in ("blocked", "stuck", "delegated"):
        (inbox(p) / f"a.md.{kind}").symlink_to(victim)
    assert sidecars.mark_blocked(task, ["x:y"]) is False
    assert sidecars.mark_stuck(task, "stalled") is False
    assert sidecars.delegated_job(task) is None
    sidecars.mark_delegated(task, "job-1")
    assert victim.read_text() == "keep"
    assert sidecars.delegated_job(task) == "job-1"


def test_delegated_and_stuck_sidecars(tmp_path: Path) -> None:
    p = project(tmp_path, "web")
    task = parsed(p, "a.md", "x")
    sidecars.mark_delegated(task, "job-42")
    assert sidecars.delegated_job(task) == "job-42"
    assert sidecars.delegated_job(inbox(p) / "a.md.dispatched") == "job-42"
    sidecars.mark_delegated(task, "job-43")
    assert (inbox(p) / "a.md.delegated").read_text() == "job-43\n"
    assert sidecars.clear_sidecar(task, "delegated") and sidecars.delegated_job(task) is None
    assert sidecars.mark_stuck(task, "no output\nfor 15m") is True
    assert (inbox(p) / "a.md.stuck").read_text() == "no output for 15m\n"
    assert sidecars.sidecar_since(task, "stuck") is not None
    assert sidecars.clear_sidecar(task, "stuck")


# --- projects ----------------------------------------------------------------------------------------


def test_projects_are_discovered_and_names_are_data(tmp_path: Path) -> None:
    src = tmp_path / "src"
    project(src, "webapp")
    project(src, "docs site; rm -rf ~")
    project(src, ".hidden")
    (src / "no-queue").mkdir()
    dedicated = project(tmp_path / "other", "conformvault")
    found = q.discover_projects(src, {"conformvault": dedicated})
    assert found == {
        "docs site; rm -rf ~": src / "docs site; rm -rf ~",
        "webapp": src / "webapp",
        "conformvault": dedicated,
    }
    put(found["docs site; rm -rf ~"], "$(whoami).md", "hi")
    assert [t.key for t in q.Queue(now=Clock()).scan(found).tasks] == ["docs site; rm -rf ~:$(whoami)"]
    assert q.discover_projects(tmp_path / "missing") == {}


def test_a_project_folder_named_with_control_characters_is_refused_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    src = tmp_path / "src"
    project(src, "webapp")
    project(src, "proj\x15touch PWNED\r")
    refused: set[str] = set()
    assert q.discover_projects(src, refused=refused) == {"webapp": src / "webapp"}
    assert q.discover_projects(src, refused=refused) == {"webapp": src / "webapp"}
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert len(errors) == 1
    assert "proj\\x15touch PWNED\\x0d: not a project" in errors[0] and "U+0015 (Ctrl-U)" in errors[0]
    assert "\x15" not in errors[0] and "\r" not in errors[0]


def test_a_dependency_archived_by_the_janitor_still_counts_as_done(tmp_path: Path) -> None:
    from engine.tasks import DoneListing

    queue = tmp_path / "p" / ".agent-queue"
    (queue / "done").mkdir(parents=True)
    (queue / "archive" / "2026-10" / "done").mkdir(parents=True)
    (queue / "archive" / "2026-10" / "done" / "old-schema.md").write_text("x")
    listing = DoneListing()
    assert listing.has(queue / "done", "old-schema")
    assert not listing.has(queue / "done", "never-done")
