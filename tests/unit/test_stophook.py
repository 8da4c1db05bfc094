"""The done-signal Stop hook is merged into an account's settings.json, never replacing the user's own."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from engine.stophook import MARKER, StopHookError, hook_command, install_stop_hook

USER_HOOK = {"matcher": "", "hooks": [{"type": "command", "command": "notify-send done"}]}


def test_install_into_a_missing_settings_file(tmp_path: Path) -> None:
    assert install_stop_hook(tmp_path / "acct", tmp_path / "signals")
    settings = json.loads((tmp_path / "acct" / "settings.json").read_text())
    [entry] = settings["hooks"]["Stop"]
    assert MARKER in entry["hooks"][0]["command"]


def test_merge_keeps_the_users_settings_and_hooks(tmp_path: Path) -> None:
    path = tmp_path / "settings.json"
    path.write_text(json.dumps({"model": "opus", "hooks": {"Stop": [USER_HOOK], "PreToolUse": [USER_HOOK]}}))
    assert install_stop_hook(tmp_path, tmp_path / "signals")
    settings = json.loads(path.read_text())
    assert settings["model"] == "opus"
    assert settings["hooks"]["PreToolUse"] == [USER_HOOK]
    assert settings["hooks"]["Stop"][0] == USER_HOOK and len(settings["hooks"]["Stop"]) == 2


def test_a_linked_settings_file_stays_a_link_and_its_target_gets_the_hook(tmp_path: Path) -> None:
    dotfiles = tmp_path / "dotfiles" / "settings.json"
    dotfiles.parent.mkdir()
    dotfiles.write_text(json.dumps({"model": "opus"}))
    dotfiles.chmod(0o640)
    home = tmp_path / "acct"
    home.mkdir()
    (home / "settings.json").symlink_to(dotfiles)
    assert install_stop_hook(home, tmp_path / "signals")
    assert (home / "settings.json").is_symlink()
    settings = json.loads(dotfiles.read_text())
    assert settings["model"] == "opus" and len(settings["hooks"]["Stop"]) == 1
    assert dotfiles.stat().st_mode & 0o777 == 0o640
    assert not list(home.glob(".settings.*")) and not list(dotfiles.parent.glob(".settings.*"))


def test_a_second_install_changes_nothing_and_a_new_signal_dir_replaces_only_ours(tmp_path: Path) -> None:
    path = tmp_path / "settings.json"
    path.write_text(json.dumps({"hooks": {"Stop": [USER_HOOK]}}))
    assert install_stop_hook(tmp_path, tmp_path / "one")
    assert not install_stop_hook(tmp_path, tmp_path / "one")
    assert install_stop_hook(tmp_path, tmp_path / "two")
    stop = json.loads(path.read_text())["hooks"]["Stop"]
    assert stop[0] == USER_HOOK and len(stop) == 2 and "two" in stop[1]["hooks"][0]["command"]


@pytest.mark.parametrize("content", ["{not json", "[1, 2]", '{"hooks": []}', '{"hooks": {"Stop": {}}}'])
def test_unreadable_settings_are_reported_and_left_untouched(tmp_path: Path, content: str) -> None:
    path = tmp_path / "settings.json"
    path.write_text(content)
    with pytest.raises(StopHookError, match=r"settings\.json"):
        install_stop_hook(tmp_path, tmp_path / "signals")
    assert path.read_text() == content


def test_the_hook_writes_the_signal_named_after_the_tmux_session(tmp_path: Path) -> None:
    signals = tmp_path / "sig nals;$x"  # a path with a space, ';' and '$' stays data
    tmux_bin = tmp_path / "bin"
    tmux_bin.mkdir()
    fake = tmux_bin / "tmux"
    fake.write_text("#!/bin/sh\necho ccl-auto-11\n")  # what display-message prints inside the pane
    fake.chmod(0o755)
    env = {"PATH": f"{tmux_bin}:/usr/bin:/bin", "TMUX_PANE": "%3"}
    subprocess.run(["sh", "-c", hook_command(signals)], env=env, check=True)
    assert (signals / "agent-done-ccl-auto-11").exists()
