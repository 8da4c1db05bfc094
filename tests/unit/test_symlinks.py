"""The symlink guard: missing links and shared folders are created, anything else is reported untouched."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from engine.config import Config
from engine.config_reader import config_from_dict
from engine.symlinks import LINKED, ensure_links, inspect


def make_config(tmp_path: Path, accounts: int = 2, make_homes: bool = True) -> Config:
    homes = [tmp_path / f"home-{i}" for i in range(accounts)]
    if make_homes:
        for home in homes:
            home.mkdir()
    return config_from_dict(
        {
            "accounts": [{"name": f"acct{i}", "home": str(home)} for i, home in enumerate(homes)],
            "shared_dir": str(tmp_path / "shared"),
        }
    )


def linked_everywhere(config: Config) -> bool:
    return all(
        (account.home / name).is_symlink()
        and os.path.realpath(account.home / name) == os.path.realpath(config.shared_dir / name)
        for account in config.accounts
        for name in LINKED
    )


def test_missing_links_and_shared_folders_are_created(tmp_path: Path) -> None:
    config = make_config(tmp_path)

    result = ensure_links(config)

    assert result.problems == []
    expected = [config.shared_dir / name for name in LINKED] + [
        account.home / name for account in config.accounts for name in LINKED
    ]
    assert result.created == expected
    assert all((config.shared_dir / name).is_dir() for name in LINKED)
    assert linked_everywhere(config)
    assert os.readlink(config.accounts[0].home / "projects") == str(config.shared_dir / "projects")


def test_a_missing_shared_folder_is_created_next_to_existing_ones(tmp_path: Path) -> None:
    config = make_config(tmp_path)
    (config.shared_dir / "projects").mkdir(parents=True)
    (config.shared_dir / "projects" / "keep.jsonl").write_text("{}\n")

    result = ensure_links(config)

    assert result.problems == []
    assert config.shared_dir / "projects" not in result.created
    assert config.shared_dir / "file-history" in result.created
    assert (config.shared_dir / "projects" / "keep.jsonl").read_text() == "{}\n"
    assert linked_everywhere(config)


def test_a_link_pointing_elsewhere_is_reported_and_left_alone(tmp_path: Path) -> None:
    config = make_config(tmp_path)
    elsewhere = tmp_path / "old-projects"
    elsewhere.mkdir()
    (elsewhere / "conv.jsonl").write_text("{}\n")
    link = config.accounts[1].home / "projects"
    link.symlink_to(elsewhere)

    result = ensure_links(config)

    [problem] = result.problems
    assert (problem.kind, problem.account, problem.path) == ("wrong_target", "acct1", link)
    assert problem.key == "accounts[1].home/projects"
    assert str(elsewhere) in problem.message
    assert str(config.shared_dir / "projects") in problem.message
    assert "ln -sfn" in problem.message
    assert os.readlink(link) == str(elsewhere)
    assert (elsewhere / "conv.jsonl").read_text() == "{}\n"
    assert link not in result.created


def test_a_relative_link_to_the_shared_folder_is_accepted(tmp_path: Path) -> None:
    config = make_config(tmp_path)
    (config.accounts[0].home / "projects").symlink_to(Path("..") / "shared" / "projects")

    result = ensure_links(config)

    assert result.problems == []
    assert config.accounts[0].home / "projects" not in result.created
    assert os.readlink(config.accounts[0].home / "projects") == "../shared/projects"


def test_a_relative_link_is_resolved_against_its_own_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = make_config(tmp_path)
    # Right relative to the current directory, wrong relative to the link's folder.
    monkeypatch.chdir(tmp_path)
    link = config.accounts[0].home / "projects"
    link.symlink_to(Path("shared") / "projects")

    [problem] = ensure_links(config).problems

    assert problem.kind == "wrong_target"
    assert str(config.accounts[0].home / "shared" / "projects") in problem.message


def test_a_link_through_another_spelling_of_the_shared_folder_is_accepted(tmp_path: Path) -> None:
    config = make_config(tmp_path)
    (config.shared_dir / "projects").mkdir(parents=True)
    alias = tmp_path / "alias"
    alias.symlink_to(config.shared_dir)
    (config.accounts[0].home / "projects").symlink_to(alias / "projects")

    assert ensure_links(config).problems == []


def test_a_regular_file_in_place_of_a_link_is_an_error(tmp_path: Path) -> None:
    config = make_config(tmp_path)
    path = config.accounts[0].home / "session-env"
    path.write_text("mine\n")

    result = ensure_links(config)

    [problem] = result.problems
    assert (problem.kind, problem.key) == ("not_a_link", "accounts[0].home/session-env")
    assert "is a file" in problem.message
    assert path.read_text() == "mine\n"
    assert not path.is_symlink()


def test_a_real_projects_folder_is_an_error_that_explains_the_migration(tmp_path: Path) -> None:
    config = make_config(tmp_path)
    projects = config.accounts[0].home / "projects"
    (projects / "-src-app").mkdir(parents=True)
    conversation = projects / "-src-app" / "0b7f.jsonl"
    conversation.write_text("{}\n")

    result = ensure_links(config)

    [problem] = result.problems
    assert (problem.kind, problem.path) == ("real_dir", projects)
    target = config.shared_dir / "projects"
    assert f"cp -a {projects}/. {target}/" in problem.message
    assert f"mv {projects} {projects}.old" in problem.message
    assert conversation.read_text() == "{}\n"
    assert not projects.is_symlink()


def test_an_empty_real_folder_is_an_error_that_suggests_rmdir(tmp_path: Path) -> None:
    config = make_config(tmp_path)
    folder = config.accounts[0].home / "file-history"
    folder.mkdir()

    [problem] = ensure_links(config).problems

    assert problem.kind == "real_dir"
    assert f"rmdir {folder}" in problem.message
    assert folder.is_dir() and not folder.is_symlink()


def test_a_dangling_link_to_the_right_target_gets_its_target_created(tmp_path: Path) -> None:
    config = make_config(tmp_path)
    link = config.accounts[0].home / "projects"
    link.symlink_to(config.shared_dir / "projects")
    assert not link.exists()

    result = ensure_links(config)

    assert result.problems == []
    assert config.shared_dir / "projects" in result.created
    assert link not in result.created
    assert link.is_dir()


def test_problems_of_every_account_are_reported_at_once(tmp_path: Path) -> None:
    config = make_config(tmp_path, accounts=3)
    (config.accounts[0].home / "projects").mkdir()
    (config.accounts[0].home / "projects" / "a.jsonl").write_text("{}\n")
    (config.accounts[2].home / "session-env").symlink_to(tmp_path)
    (config.accounts[2].home / "file-history").write_text("")

    result = ensure_links(config)

    assert [(p.account, p.kind, p.key) for p in result.problems] == [
        ("acct0", "real_dir", "accounts[0].home/projects"),
        ("acct2", "wrong_target", "accounts[2].home/session-env"),
        ("acct2", "not_a_link", "accounts[2].home/file-history"),
    ]
    # The healthy places are linked all the same.
    assert (config.accounts[1].home / "projects").is_symlink()
    assert (config.accounts[2].home / "projects").is_symlink()


def test_a_missing_home_is_reported_and_not_created(tmp_path: Path) -> None:
    config = make_config(tmp_path, make_homes=False)
    config.accounts[0].home.mkdir()

    result = ensure_links(config)

    [problem] = result.problems
    assert (problem.kind, problem.key) == ("home_missing", "accounts[1].home")
    assert f"CLAUDE_CONFIG_DIR={config.accounts[1].home} claude" in problem.message
    assert not config.accounts[1].home.exists()
    assert (config.accounts[0].home / "projects").is_symlink()


def test_a_home_that_is_a_file_is_reported(tmp_path: Path) -> None:
    config = make_config(tmp_path, accounts=1, make_homes=False)
    config.accounts[0].home.write_text("")

    [problem] = ensure_links(config).problems

    assert (problem.kind, problem.key) == ("home_not_dir", "accounts[0].home")


def test_a_shared_target_that_is_a_file_is_an_error(tmp_path: Path) -> None:
    config = make_config(tmp_path, accounts=1)
    config.shared_dir.mkdir()
    (config.shared_dir / "projects").write_text("")

    result = ensure_links(config)

    assert [(p.account, p.kind, p.key) for p in result.problems] == [
        (None, "target_not_dir", "shared_dir/projects")
    ]
    assert (config.shared_dir / "projects").is_file()


def test_a_shared_target_linked_to_a_missing_folder_is_reported_not_created(tmp_path: Path) -> None:
    config = make_config(tmp_path, accounts=1)
    config.shared_dir.mkdir()
    unmounted = tmp_path / "mnt" / "projects"
    (config.shared_dir / "projects").symlink_to(unmounted)

    result = ensure_links(config)

    assert [(p.kind, p.key) for p in result.problems] == [("target_dangling", "shared_dir/projects")]
    assert not unmounted.exists()


def test_a_second_run_creates_nothing(tmp_path: Path) -> None:
    config = make_config(tmp_path)
    (config.accounts[0].home / "projects").mkdir()
    first = ensure_links(config)

    second = ensure_links(config)

    assert first.created and second.created == []
    assert second.problems == first.problems


def test_inspect_reports_what_is_missing_and_creates_nothing(tmp_path: Path) -> None:
    config = make_config(tmp_path, accounts=1)

    problems = inspect(config)

    assert [(p.kind, p.key, p.fixable) for p in problems] == [
        ("target_missing", "shared_dir/session-env", True),
        ("target_missing", "shared_dir/file-history", True),
        ("target_missing", "shared_dir/projects", True),
        ("link_missing", "accounts[0].home/session-env", True),
        ("link_missing", "accounts[0].home/file-history", True),
        ("link_missing", "accounts[0].home/projects", True),
    ]
    assert not config.shared_dir.exists()
    assert list(config.accounts[0].home.iterdir()) == []


def test_a_link_that_cannot_be_created_is_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = make_config(tmp_path, accounts=1)

    def refuse(src: object, dst: object) -> None:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(os, "symlink", refuse)

    result = ensure_links(config)

    assert [(p.kind, p.key) for p in result.problems] == [
        ("create_failed", f"accounts[0].home/{name}") for name in LINKED
    ]
    assert "Permission denied" in result.problems[0].message
    assert result.created == [config.shared_dir / name for name in LINKED]


def test_ensure_logs_what_it_creates_and_each_problem(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = make_config(tmp_path, accounts=1)
    (config.accounts[0].home / "projects").write_text("")

    with caplog.at_level(logging.INFO, logger="engine.symlinks"):
        ensure_links(config)

    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    infos = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    assert len(warnings) == 1 and warnings[0].startswith("accounts[0].home/projects: ")
    assert len(infos) == 5
