"""`cfo install-service`: the systemd user unit it prints or writes, checked by systemd where available."""

from __future__ import annotations

import argparse
import configparser
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from cfo_tui import service


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A sandboxed HOME and XDG_CONFIG_HOME; returns the folder the unit should land in."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    return tmp_path / "xdg" / "systemd" / "user"


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="cfo")
    service.add_parser(parser.add_subparsers(dest="command"))
    return parser.parse_args(["install-service", *argv])


def sections(text: str) -> configparser.ConfigParser:
    # Unit files allow repeated keys (Environment=); strict=False keeps the last, enough to read them.
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(text)
    return parser


def config_file(tmp_path: Path, name: str = "config.yaml") -> Path:
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("accounts: []\n")
    return path


def test_the_subcommand_takes_dry_run_and_config() -> None:
    args = parse("--dry-run", "--config", "x.yaml")
    assert args.command == "install-service"
    assert args.dry_run is True
    assert args.config == Path("x.yaml")
    # Absent, --config leaves no attribute, so one given before the subcommand's name is kept.
    assert not hasattr(parse(), "config")


def test_dry_run_prints_the_unit_and_writes_nothing(
    home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = config_file(tmp_path)

    assert service.run(parse("--dry-run"), config) == 0

    out, err = capsys.readouterr()
    unit = sections(out)
    assert unit.sections() == ["Unit", "Service", "Install"]
    exe = service.cfo_executable()
    assert exe.is_absolute() and exe.name == "cfo"
    assert unit["Service"]["ExecStart"] == f"{exe} --no-ui --config {config}"
    assert unit["Service"]["Restart"] == "on-failure"
    assert int(unit["Service"]["RestartSec"]) > 0
    assert unit["Install"]["WantedBy"] == "default.target"
    assert err == ""
    assert not (tmp_path / "xdg").exists()
    assert not (tmp_path / "home").exists()


def test_install_writes_the_user_unit_and_says_how_to_enable_it(
    home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = config_file(tmp_path)
    assert service.run(parse("--dry-run"), config) == 0
    printed = capsys.readouterr().out

    assert service.run(parse(), config) == 0

    out, err = capsys.readouterr()
    assert out == ""
    assert (home / "cfo.service").read_text() == printed
    assert [p.name for p in home.iterdir()] == ["cfo.service"]
    assert "systemctl --user daemon-reload && systemctl --user enable --now cfo.service" in err
    assert "loginctl enable-linger $USER" in err


def test_the_unit_sets_a_path_that_finds_cfo_and_tmux(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    tmux = bin_dir / "tmux"
    tmux.write_text("#!/bin/sh\n")
    tmux.chmod(0o755)
    monkeypatch.setenv("PATH", f"/usr/bin{os.pathsep}{bin_dir}")

    assert service.run(parse("--dry-run"), config_file(tmp_path)) == 0

    env = sections(capsys.readouterr().out)["Service"]["Environment"]
    assert env.startswith("PATH=")
    dirs = env.removeprefix("PATH=").split(os.pathsep)
    assert str(service.cfo_executable().parent) in dirs
    assert dirs[-2:] == ["/usr/bin", str(bin_dir)]


def test_written_unit_is_accepted_by_systemd(
    home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Spaces, `%` and `$` must reach cfo as they are: systemd would otherwise split or expand them.
    config = config_file(tmp_path, "my configs/100% $HOME.yaml")

    assert service.run(parse(), config) == 0

    unit_file = home / "cfo.service"
    unit = sections(unit_file.read_text())
    quoted = f'"{tmp_path}/my configs/100%% $$HOME.yaml"'
    assert unit["Service"]["ExecStart"].endswith(f" --no-ui --config {quoted}")
    systemd_analyze = shutil.which("systemd-analyze")
    if systemd_analyze is None:
        return  # the configparser check above is all this machine can do
    env = {**os.environ, "XDG_RUNTIME_DIR": str(tmp_path / "runtime")}
    (tmp_path / "runtime").mkdir(mode=0o700)
    result = subprocess.run(
        [systemd_analyze, "verify", "--user", str(unit_file)], capture_output=True, text=True, env=env
    )
    if "Failed to initialize manager" in result.stderr:
        # No user manager can be set up here (a container); the system-mode check reads the file the same.
        result = subprocess.run([systemd_analyze, "verify", str(unit_file)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    # verify only warns about settings it cannot parse; any line about our unit is a problem.
    assert [line for line in result.stderr.splitlines() if "cfo.service" in line] == []


def test_a_relative_config_path_is_made_absolute(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    config_file(tmp_path)
    monkeypatch.chdir(tmp_path)
    assert service.run(parse("--dry-run"), Path("config.yaml")) == 0
    exec_start = sections(capsys.readouterr().out)["Service"]["ExecStart"]
    assert exec_start.endswith(f" --config {tmp_path / 'config.yaml'}")


def test_a_missing_config_is_pointed_out_but_the_unit_is_still_written(
    home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert service.run(parse(), tmp_path / "absent.yaml") == 0
    assert "cfo init" in capsys.readouterr().err
    assert (home / "cfo.service").is_file()


def test_a_relative_xdg_config_home_is_ignored(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_CONFIG_HOME", "relative/dir")
    assert service.unit_dir() == tmp_path / "home" / ".config" / "systemd" / "user"
    monkeypatch.delenv("XDG_CONFIG_HOME")
    assert service.unit_dir() == tmp_path / "home" / ".config" / "systemd" / "user"


def test_a_path_a_unit_file_cannot_hold_is_refused(
    home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert service.run(parse(), tmp_path / "bad\nname.yaml") == 1
    assert "control character" in capsys.readouterr().err
    assert not home.exists()
