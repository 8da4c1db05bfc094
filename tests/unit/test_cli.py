"""The `cfo` command's subcommands that need no tmux: init, check, screen, --version."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from cfo_tui.cli import main
from tests.unit.test_config import ACCOUNTS, PROBLEMS

DATA = Path(__file__).parent.parent / "data" / "panes"


def cfo(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cfo_tui.cli", *args], input=stdin, capture_output=True, text=True, check=False
    )


def test_init_writes_a_config_that_check_accepts_and_refuses_to_overwrite(tmp_path: Path) -> None:
    path = tmp_path / "cfo" / "config.yaml"
    assert main(["init", "--config", str(path)]) == 0
    assert path.exists()
    assert main(["--config", str(path), "init"]) == 1  # --config before the subcommand too
    result = cfo("check", "--config", str(path))
    # the example points at homes that do not exist here: check names each, with its key path
    assert result.returncode == 1
    assert f"{path}: accounts[0].home:" in result.stdout


def test_check_prints_every_config_problem_with_its_key_path(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("accounts: []\npool: {autonomous: {max: ten}}\nbogus: 1\n")
    result = cfo("--config", str(path), "check")
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert any("pool.autonomous.max" in line and '"ten"' in line for line in lines)
    assert any("bogus" in line for line in lines)
    assert any("accounts" in line for line in lines)
    assert all(line.startswith(str(path)) for line in lines)


@pytest.mark.parametrize(("text", "key", "fragment"), [p[1:] for p in PROBLEMS], ids=[p[0] for p in PROBLEMS])
def test_check_names_each_config_mistake_with_its_key_and_fails(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    text: str,
    key: str,
    fragment: str,
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    path = tmp_path / "config.yaml"
    path.write_text(text if "accounts" in text else ACCOUNTS + text, encoding="utf-8")
    assert main(["check", "--config", str(path)]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert any(line.startswith(f"{path}: {key}: ") and fragment in line for line in lines), lines


def test_check_passes_on_a_valid_setup(tmp_path: Path) -> None:
    homes = [tmp_path / "a", tmp_path / "b"]
    for home in homes:
        home.mkdir()
    (tmp_path / "src").mkdir()
    path = tmp_path / "ok.yaml"
    path.write_text(
        json.dumps(
            {
                "tmux": {"socket_name": "cfo-never"},
                "agent": {"command": sys.executable},
                "accounts": [{"name": "a", "home": str(homes[0])}, {"name": "b", "home": str(homes[1])}],
                "shared_dir": str(tmp_path / "shared"),
                "projects_dir": str(tmp_path / "src"),
                "state_dir": str(tmp_path / "state"),
                "watcher": {"done_signal_dir": str(tmp_path / "signals")},
            }
        )
    )
    result = cfo("check", "--config", str(path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ok" in result.stderr


def test_screen_reads_a_captured_pane_as_one_json_line(tmp_path: Path) -> None:
    result = cfo("screen", str(DATA / "real-quota-5hour.txt"), "--config", str(tmp_path / "none.yaml"))
    assert result.returncode == 0, result.stderr
    reading = json.loads(result.stdout)
    assert set(reading) == {"state", "stop", "reset_at", "pattern"}
    assert reading["stop"] == "quota" and reading["reset_at"] is not None


def test_screen_reads_stdin(tmp_path: Path) -> None:
    text = (DATA / "real-server-529.txt").read_text()
    result = cfo("screen", "-", "--config", str(tmp_path / "none.yaml"), stdin=text)
    assert json.loads(result.stdout)["stop"] == "server_error"


def test_screen_names_a_missing_file(tmp_path: Path) -> None:
    result = cfo("screen", str(tmp_path / "nope.txt"), "--config", str(tmp_path / "none.yaml"))
    assert result.returncode == 1
    assert "nope.txt" in result.stderr and "Traceback" not in result.stderr


def test_version() -> None:
    result = cfo("--version")
    assert result.returncode == 0 and result.stdout.startswith("cfo ")


def test_check_on_a_missing_config_names_the_init_that_writes_it(tmp_path: Path) -> None:
    path = tmp_path / "my configs" / "cfo.yaml"
    result = cfo("check", "--config", str(path))
    assert result.returncode == 1
    assert (
        result.stdout
        == f"{path}: no such file (write a commented example with: cfo init --config '{path}')\n"
    )
    assert main(["init", "--config", str(path)]) == 0 and path.exists()  # the hint works as written


def test_a_missing_config_is_one_clear_line(tmp_path: Path) -> None:
    result = cfo("--no-ui", "--config", str(tmp_path / "absent.yaml"))
    assert result.returncode == 1
    assert "absent.yaml" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize("ui", [[], ["--no-ui"]], ids=["console", "no-ui"])
def test_without_tmux_the_console_and_no_ui_say_so_in_one_line_and_return_1(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], ui: list[str]
) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(ACCOUNTS, encoding="utf-8")
    monkeypatch.setenv("PATH", str(tmp_path / "no-tmux-here"))
    assert main([*ui, "--config", str(path)]) == 1
    assert capsys.readouterr().err == (
        "cfo: tmux not found on PATH: install it (apt-get install tmux) and start again\n"
    )


def test_screen_prefers_the_transcripts_structured_signal(tmp_path: Path) -> None:
    transcripts = DATA.parent / "transcripts"
    pane = str(DATA / "real-idle-after-turn.txt")
    config = str(tmp_path / "none.yaml")
    plain = json.loads(cfo("screen", pane, "--config", config).stdout)
    with_429 = json.loads(
        cfo("screen", pane, "--transcript", str(transcripts / "quota-429.jsonl"), "--config", config).stdout
    )
    assert plain["stop"] is None
    assert with_429["stop"] == "quota" and with_429["pattern"].startswith("transcript:")
