"""`cfo add`: it writes a file the engine's own reader and queue accept; bad input is one line."""

from __future__ import annotations

import io
import os
import time
from pathlib import Path

import pytest

from cfo_tui.cli import main
from engine import queue as q
from engine.addtask import AddError, add_task, find_project, new_id, render, slug
from engine.tasks import Dependency, is_safe_segment, parse_task, queue_dir

NOW = 1_800_000_000.0  # 2027-01-15 08:00:00 UTC


def project(root: Path, name: str) -> Path:
    d = root / name
    for sub in ("inbox", "done", "failed"):
        (d / ".agent-queue" / sub).mkdir(parents=True, exist_ok=True)
    return d


def config(tmp_path: Path) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(
        f"accounts: [{{name: a, home: {tmp_path / 'home'}}}]\n"
        f"projects_dir: {tmp_path / 'src'}\nstate_dir: {tmp_path / 'state'}\n",
        encoding="utf-8",
    )
    return path


# --- ids ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("title", "expected"),
    [
        ("Fix rounding of refunds", "fix-rounding-of-refunds"),
        ("  Café: ünïcode & Co. (v2) ", "cafe-unicode-co-v2"),
        ("日本語のタスク", "task"),
        ("../../etc/passwd", "etc-passwd"),
        ("a" * 80, "a" * 48),
        ("word " * 20, "-".join(["word"] * 9)),
    ],
)
def test_a_slug_is_lower_case_ascii_words_cut_at_a_word(title: str, expected: str) -> None:
    assert slug(title) == expected
    assert is_safe_segment(slug(title))


def test_an_id_sorts_by_time_and_a_taken_one_gets_a_number() -> None:
    taken = {"20270115-080000-deploy"}
    assert new_id("Deploy", NOW, lambda i: False) == "20270115-080000-deploy"
    assert new_id("Deploy", NOW, taken.__contains__) == "20270115-080000-2-deploy"
    taken.add("20270115-080000-2-deploy")
    assert new_id("Deploy", NOW, taken.__contains__) == "20270115-080000-3-deploy"
    assert new_id("Deploy", NOW, lambda i: False) < new_id("Deploy", NOW + 1, lambda i: False)


def test_the_frontmatter_quotes_what_yaml_would_read_otherwise(tmp_path: Path) -> None:
    text = render("true: [1]", "high", (Dependency("api", "001-x"),), "Body\n")
    assert text.startswith("---\ntitle: 'true: [1]'\npriority: high\ndepends_on:\n- api:001-x\n---\nBody\n")


# --- writing ------------------------------------------------------------------------------------------


def test_the_written_file_is_what_the_engine_reads(tmp_path: Path) -> None:
    web = project(tmp_path / "src", "web")
    added = add_task(
        "web",
        web,
        "Fix rounding of refunds",
        priority="critical",
        depends_on=["api:001-schema", "000-setup"],
        body="Refunds are rounded down.\nRound half to even.\n",
        now=NOW,
    )
    path = queue_dir(web, "inbox") / "20270115-080000-fix-rounding-of-refunds.md"
    assert added.task.path == path and added.task.id == path.stem
    task = parse_task(path, "web")
    assert task.title == "Fix rounding of refunds" and task.priority == "critical"
    assert [str(d) for d in task.depends_on] == ["api:001-schema", "web:000-setup"]
    assert task.body == "Refunds are rounded down.\nRound half to even.\n"
    assert task.unsafe_depends == ()
    assert sorted(os.listdir(web / ".agent-queue")) == ["done", "failed", "inbox"]  # no draft left behind


def test_the_queue_reads_the_task_as_written(tmp_path: Path) -> None:
    web = project(tmp_path / "src", "web")
    added = add_task("web", web, "Write the changelog", priority="low")
    scan = q.Queue(settle=0.1, now=lambda: time.time() + 0.1).scan({"web": web})
    assert scan.tasks == (added.task,) and scan.errors == () and scan.unsettled == 0


def test_two_tasks_with_one_title_in_one_second_get_two_ids(tmp_path: Path) -> None:
    web = project(tmp_path / "src", "web")
    first = add_task("web", web, "Deploy", now=NOW)
    second = add_task("web", web, "Deploy", now=NOW)
    assert (first.task.id, second.task.id) == ("20270115-080000-deploy", "20270115-080000-2-deploy")
    (queue_dir(web, "inbox") / "20270115-080000-deploy.md").rename(queue_dir(web, "done") / "x.md")
    (queue_dir(web, "done") / "x.md").rename(queue_dir(web, "done") / "20270115-080000-deploy.md")
    assert add_task("web", web, "Deploy", now=NOW).task.id == "20270115-080000-3-deploy"  # done counts too


def test_a_dependency_no_queue_holds_is_reported_but_the_task_is_written(tmp_path: Path) -> None:
    src = tmp_path / "src"
    web, api = project(src, "web"), project(src, "api")
    (queue_dir(api, "failed") / "002-seed.md").write_text("x")
    (queue_dir(web, "inbox") / "001-first.md").write_text("x")
    added = add_task(
        "web",
        web,
        "Ship",
        depends_on=["001-first", "api:002-seed", "api:003-typo", "ghost:1"],
        projects_dir=src,
        projects={"web": web, "api": api},
    )
    assert added.nowhere == ("api:003-typo", "ghost:1")
    assert added.task.path.exists()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"title": "  "}, "the title is empty"),
        ({"title": "a\x1b[2Jb"}, "the title holds the control character"),
        ({"priority": "urgent"}, "unknown priority 'urgent' (use critical, high, default or low)"),
        ({"depends_on": ["../etc:passwd"]}, "unsafe depends_on '../etc:passwd'"),
        ({"depends_on": ["a:b:c"]}, "unsafe depends_on 'a:b:c'"),
        ({"body": "ring \x07 the bell"}, "the task would not be accepted: control character"),
        ({"body": "x" * 2000, "max_bytes": 1024}, "the task would not be accepted: over 1 KiB"),
    ],
)
def test_bad_input_is_refused_and_nothing_is_written(
    tmp_path: Path, kwargs: dict[str, object], message: str
) -> None:
    web = project(tmp_path / "src", "web")
    args: dict[str, object] = {"title": "A task"} | kwargs
    with pytest.raises(AddError) as caught:
        add_task("web", web, **args)  # type: ignore[arg-type]
    assert message in str(caught.value) and "\n" not in str(caught.value)
    assert os.listdir(queue_dir(web, "inbox")) == []
    assert sorted(os.listdir(web / ".agent-queue")) == ["done", "failed", "inbox"]


# --- projects -----------------------------------------------------------------------------------------


def test_a_project_is_named_by_its_folder_or_given_as_a_path(tmp_path: Path) -> None:
    src = tmp_path / "src"
    web = project(src, "web")
    projects = q.discover_projects(src)
    assert find_project("web", projects, src) == ("web", web)
    assert find_project(str(web), projects, src) == ("web", web)
    assert find_project(str(web) + "/", projects, src) == ("web", web)


def test_a_project_cfo_would_not_run_is_refused_with_what_to_do(tmp_path: Path) -> None:
    src = tmp_path / "src"
    project(src, "web")
    (src / "plain").mkdir()
    outside = project(tmp_path / "elsewhere", "other")
    projects = q.discover_projects(src)
    with pytest.raises(AddError, match=r"unknown project 'nope': .* under projects_dir .*; projects: web"):
        find_project("nope", projects, src)
    with pytest.raises(
        AddError, match=r"not a project \(no .agent-queue/inbox\); make it one with: mkdir -p"
    ):
        find_project(str(src / "plain"), projects, src)
    with pytest.raises(AddError, match="cfo does not watch this folder"):
        find_project(str(outside), projects, src)
    with pytest.raises(AddError, match="no such folder"):
        find_project(str(src / "gone"), projects, src)


# --- the command --------------------------------------------------------------------------------------


def test_cfo_add_prints_the_id_and_nothing_else(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    web = project(tmp_path / "src", "web")
    body = tmp_path / "body.md"
    body.write_text("Do it well.\n", encoding="utf-8")
    before = time.strftime("%Y%m%d", time.gmtime())
    code = main(
        ["add", "web", "Do it", "--body", str(body), "--priority", "high", "--config", str(config(tmp_path))]
    )
    out, err = capsys.readouterr()
    assert code == 0 and err == ""
    (task_id,) = out.splitlines()
    assert task_id.startswith(before) and task_id.endswith("-do-it")
    task = parse_task(queue_dir(web, "inbox") / f"{task_id}.md", "web")
    assert (task.title, task.priority, task.body) == ("Do it", "high", "Do it well.\n")


def test_cfo_add_reads_the_body_from_standard_input(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    web = project(tmp_path / "src", "web")
    monkeypatch.setattr("sys.stdin", io.StringIO("From a pipe.\n"))
    assert main(["--config", str(config(tmp_path)), "add", "web", "Piped", "--body", "-"]) == 0
    task_id = capsys.readouterr().out.strip()
    assert parse_task(queue_dir(web, "inbox") / f"{task_id}.md", "web").body == "From a pipe.\n"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["add", "nope", "T"], "cfo: unknown project 'nope'"),
        (["add", "web", ""], "cfo: the title is empty"),
        (["add", "web", "T", "--priority", "soon"], "cfo: unknown priority 'soon'"),
        (["add", "web", "T", "--depends-on", "ok", "../x"], "cfo: unsafe depends_on '../x'"),
        (["add", "web", "T", "--body", "/nonexistent/body.md"], "cfo: /nonexistent/body.md: no such file"),
    ],
)
def test_cfo_add_refuses_bad_input_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    project(tmp_path / "src", "web")
    assert main([*argv, "--config", str(config(tmp_path))]) == 1
    out, err = capsys.readouterr()
    assert out == "" and len(err.splitlines()) == 1 and err.startswith(message)


def test_cfo_add_warns_of_a_dependency_that_exists_nowhere(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    web = project(tmp_path / "src", "web")
    assert main(["add", "web", "Later", "--depends-on", "api:001-x", "--config", str(config(tmp_path))]) == 0
    out, err = capsys.readouterr()
    assert err == (
        "cfo: warning: api:001-x exists nowhere (not queued, running, done or failed); "
        "the task waits until it is done\n"
    )
    assert (queue_dir(web, "inbox") / f"{out.strip()}.md").exists()


def test_the_completion_offers_add_and_its_priorities(tmp_path: Path) -> None:
    from tests.unit.test_completion import complete

    assert "add" in complete("cfo a", tmp_path)
    assert complete("cfo add web 'T' --priority ", tmp_path) == ["critical", "high", "default", "low"]
    assert complete("cfo add web T --pr", tmp_path) == ["--priority"]
    (tmp_path / "body.md").write_text("")
    assert complete("cfo add web T --body bo", tmp_path) == ["body.md"]
