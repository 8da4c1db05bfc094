"""`cfo check`: config problems alone, else every account, link, tmux and folder problem by key path."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from engine.checks import CheckResult, check_all, run_checks
from engine.config_reader import check_config
from engine.symlinks import LINKED


def write_program(folder: Path, name: str, body: str = "exit 0") -> Path:
    path = folder / name
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(0o755)
    return path


@dataclass
class Setup:
    """A healthy installation on tmp_path: two linked accounts, folders, and fake tmux and agent programs."""

    root: Path
    bin: Path
    env: dict[str, str]
    data: dict[str, Any]
    euid: int = 1000

    @property
    def config_path(self) -> Path:
        return self.root / "config.yaml"

    def home(self, i: int) -> Path:
        return Path(self.data["accounts"][i]["home"])

    def run(self) -> CheckResult:
        self.config_path.write_text(yaml.safe_dump(self.data), encoding="utf-8")
        return run_checks(self.config_path, self.env, self.euid)

    def line(self, key: str, message: str = "") -> str:
        return f"{self.config_path}: {key}: {message}"


@pytest.fixture
def setup(tmp_path: Path) -> Setup:
    shared = tmp_path / "shared"
    homes = [tmp_path / "claude-a", tmp_path / "claude-b"]
    for name in LINKED:
        (shared / name).mkdir(parents=True)
    for home in homes:
        home.mkdir()
        for name in LINKED:
            (home / name).symlink_to(shared / name)
    (tmp_path / "src").mkdir()
    folder = tmp_path / "bin"
    folder.mkdir()
    write_program(folder, "tmux")
    write_program(folder, "claude")
    data: dict[str, Any] = {
        "tmux": {"socket_name": "cfo-check-test"},
        "agent": {"resume_dir": str(tmp_path / "resume")},
        "accounts": [
            {"name": "primary", "home": str(homes[0])},
            {"name": "secondary", "home": str(homes[1])},
        ],
        "shared_dir": str(shared),
        "projects_dir": str(tmp_path / "src"),
        "watcher": {"done_signal_dir": str(tmp_path / "signals")},
        "state_dir": str(tmp_path / "state"),
    }
    return Setup(root=tmp_path, bin=folder, env={"PATH": str(folder)}, data=data)


def only(result: CheckResult, key: str) -> str:
    [line] = [line for line in result.errors if f": {key}: " in line]
    return line


def test_a_healthy_setup_passes_without_warnings(setup: Setup) -> None:
    result = setup.run()

    assert result == CheckResult(errors=[], warnings=[])


def test_check_all_returns_only_the_error_lines(setup: Setup, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(setup.bin))
    monkeypatch.delenv("CFO_TEST_KEY", raising=False)
    setup.data["projects_dir"] = str(setup.root / "nowhere")
    setup.data["delegation"] = {"url": "https://jobs.example.com", "api_key_env": "CFO_TEST_KEY"}
    assert setup.run().warnings

    assert check_all(setup.config_path) == [
        setup.line("projects_dir", f"{setup.root / 'nowhere'} does not exist or is not a folder")
    ]


def test_config_problems_are_reported_alone(setup: Setup) -> None:
    setup.data["tmux"] = {"socket": "x"}
    setup.data["accounts"][1]["home"] = str(setup.root / "missing")

    result = setup.run()

    assert result.errors == check_config(setup.config_path)
    assert len(result.errors) == 1 and ": tmux.socket: unknown key" in result.errors[0]
    assert result.warnings == []


def test_a_missing_home_names_its_account(setup: Setup) -> None:
    missing = setup.root / "claude-c"
    setup.data["accounts"][1]["home"] = str(missing)

    result = setup.run()

    assert result.errors == [
        setup.line(
            "accounts[1].home",
            f"{missing} does not exist; create it by logging in to this account "
            f"(CLAUDE_CONFIG_DIR={missing} claude)",
        )
    ]


def test_a_home_that_is_a_file_is_an_error(setup: Setup) -> None:
    home = setup.root / "home-file"
    home.write_text("")
    setup.data["accounts"][0]["home"] = str(home)

    assert setup.run().errors == [setup.line("accounts[0].home", f"{home} is not a folder")]


def test_a_home_that_is_not_writable_is_an_error(setup: Setup, monkeypatch: pytest.MonkeyPatch) -> None:
    locked = setup.home(1)
    real_access = os.access

    def access(path: Any, mode: int, **kwargs: Any) -> bool:
        return False if Path(path) == locked else real_access(path, mode, **kwargs)

    monkeypatch.setattr(os, "access", access)

    assert setup.run().errors == [
        setup.line(
            "accounts[1].home", f"{locked} is not writable; the agent keeps its login and settings there"
        )
    ]


def test_link_problems_are_errors_named_by_link(setup: Setup) -> None:
    projects = setup.home(0) / "projects"
    projects.unlink()
    projects.mkdir()
    (projects / "conv.jsonl").write_text("{}\n")
    elsewhere = setup.home(1) / "file-history"
    elsewhere.unlink()
    elsewhere.symlink_to(setup.root)

    result = setup.run()

    assert [line.split(": ")[1] for line in result.errors] == [
        "accounts[0].home/projects",
        "accounts[1].home/file-history",
    ]
    assert "cp -a" in result.errors[0]
    assert "ln -sfn" in result.errors[1]
    assert projects.is_dir() and not projects.is_symlink()


def test_missing_links_and_shared_folders_are_warnings_and_nothing_is_created(setup: Setup) -> None:
    (setup.home(0) / "projects").unlink()
    (setup.root / "shared" / "session-env").rmdir()

    result = setup.run()

    assert result.errors == []
    assert [line.split(": ")[2] for line in result.warnings] == [
        "shared_dir/session-env",
        "accounts[0].home/projects",
    ]
    assert all(line.startswith(f"warning: {setup.config_path}: ") for line in result.warnings)
    assert not (setup.home(0) / "projects").exists()
    assert not (setup.root / "shared" / "session-env").exists()


def test_tmux_missing_from_path_is_an_error(setup: Setup) -> None:
    (setup.bin / "tmux").unlink()

    assert setup.run().errors == [
        setup.line("tmux", "tmux not found on PATH: install it (apt-get install tmux)")
    ]


def test_a_private_socket_needs_no_server(setup: Setup) -> None:
    marker = setup.root / "tmux-ran"
    write_program(setup.bin, "tmux", f': > "{marker}"; exit 1')

    assert setup.run().errors == []
    assert not marker.exists()


def test_the_default_server_may_be_not_running_yet(setup: Setup) -> None:
    setup.data["tmux"] = {"socket_name": None}
    write_program(setup.bin, "tmux", 'echo "no server running on /tmp/tmux-0/default" >&2; exit 1')

    assert setup.run().errors == []


def test_an_unreachable_default_server_is_an_error(setup: Setup) -> None:
    setup.data["tmux"] = {"socket_name": None}
    said = "error connecting to /tmp/tmux-0/default (Permission denied)"
    write_program(setup.bin, "tmux", f'echo "{said}" >&2; exit 1')

    line = only(setup.run(), "tmux.socket_name")

    assert said in line
    assert "set tmux.socket_name" in line


def test_a_missing_projects_dir_is_an_error(setup: Setup) -> None:
    (setup.root / "src").rmdir()

    assert setup.run().errors == [
        setup.line("projects_dir", f"{setup.root / 'src'} does not exist or is not a folder")
    ]


def test_a_missing_dedicated_project_is_an_error(setup: Setup) -> None:
    setup.data["pool"] = {"dedicated": [{"name": "ccl-1-app", "project": str(setup.root / "app")}]}

    assert setup.run().errors == [
        setup.line("pool.dedicated[0].project", f"{setup.root / 'app'} is not a folder")
    ]


def test_folders_cfo_creates_must_be_creatable(setup: Setup) -> None:
    blocker = setup.root / "a-file"
    blocker.write_text("")
    setup.data["watcher"] = {"done_signal_dir": str(blocker / "signals")}
    setup.data["state_dir"] = str(blocker)

    assert setup.run().errors == [
        setup.line(
            "watcher.done_signal_dir", f"{blocker / 'signals'} cannot be created: {blocker} is not a folder"
        ),
        setup.line("state_dir", f"{blocker} is not a folder"),
    ]


def test_a_done_signal_dir_whose_parent_is_not_writable_is_an_error(
    setup: Setup, monkeypatch: pytest.MonkeyPatch
) -> None:
    parent = setup.root / "locked"
    parent.mkdir()
    setup.data["watcher"] = {"done_signal_dir": str(parent / "deep" / "signals")}
    real_access = os.access

    def access(path: Any, mode: int, **kwargs: Any) -> bool:
        return False if Path(path) == parent else real_access(path, mode, **kwargs)

    monkeypatch.setattr(os, "access", access)

    assert setup.run().errors == [
        setup.line(
            "watcher.done_signal_dir",
            f"{parent / 'deep' / 'signals'} cannot be created: {parent} is not writable",
        )
    ]


def test_a_patterns_file_that_fails_to_load_is_an_error(setup: Setup) -> None:
    patterns = setup.root / "patterns.yaml"
    patterns.write_text("stops:\n  - name: mine\n    regex: '('\n    example: x\n    kind: quota\n")
    setup.data["screen"] = {"patterns_file": str(patterns)}

    line = only(setup.run(), "screen.patterns_file")

    assert line.startswith(
        setup.line("screen.patterns_file", f"{patterns}: stops.mine.regex: does not compile")
    )


def test_a_valid_patterns_file_passes(setup: Setup) -> None:
    patterns = setup.root / "patterns.yaml"
    patterns.write_text("stops: []\n")
    setup.data["screen"] = {"patterns_file": str(patterns)}

    assert setup.run().errors == []


def test_delegation_without_its_key_is_a_warning(setup: Setup) -> None:
    setup.data["delegation"] = {"url": "https://jobs.example.com", "api_key_env": "CFO_TEST_KEY"}

    result = setup.run()

    assert result.errors == []
    assert result.warnings == [
        "warning: "
        + setup.line(
            "delegation.api_key_env",
            "$CFO_TEST_KEY is empty here: delegation stays off although delegation.url is set",
        )
    ]
    setup.env["CFO_TEST_KEY"] = "secret"
    assert setup.run().warnings == []


def test_an_agent_not_on_path_is_a_warning(setup: Setup) -> None:
    (setup.bin / "claude").unlink()

    result = setup.run()

    assert result.errors == []
    assert [line.split(": ")[2] for line in result.warnings] == ["agent.command"]


def test_every_problem_is_reported_at_once_in_order(setup: Setup) -> None:
    missing = setup.root / "claude-c"
    setup.data["accounts"][0]["home"] = str(missing)
    (setup.home(1) / "projects").unlink()
    (setup.home(1) / "projects").write_text("")
    (setup.bin / "tmux").unlink()
    (setup.root / "src").rmdir()
    setup.data["delegation"] = {"url": "https://jobs.example.com", "api_key_env": "CFO_TEST_KEY"}

    result = setup.run()

    assert [line.split(": ")[1] for line in result.errors] == [
        "accounts[0].home",
        "accounts[1].home/projects",
        "tmux",
        "projects_dir",
    ]
    assert [line.split(": ")[2] for line in result.warnings] == ["delegation.api_key_env"]


def test_as_root_skipping_permissions_without_is_sandbox_is_a_warning_per_account(setup: Setup) -> None:
    import json

    setup.euid = 0
    (setup.home(1) / "settings.json").write_text(json.dumps({"env": {"IS_SANDBOX": "1"}}))
    result = setup.run()
    assert result.errors == []
    [warning] = result.warnings
    assert ": accounts[0].home: as root, claude --dangerously-skip-permissions exits at once" in warning
    setup.env["IS_SANDBOX"] = "1"
    assert setup.run().warnings == []
    setup.env.pop("IS_SANDBOX")
    setup.euid = 1000
    assert setup.run().warnings == []
