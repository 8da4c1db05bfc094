"""`cfo check`: every problem with the config and what it points at, each line naming its key."""

from __future__ import annotations

import shutil
from pathlib import Path

from engine.config import check_config, format_problem, load_config


def check_all(path: Path) -> list[str]:
    """Config problems; when the config loads, also what it points at (accounts, tmux)."""
    problems = check_config(path)
    if problems:
        return problems
    config = load_config(path)
    for i, account in enumerate(config.accounts):
        if not account.home.is_dir():
            problems.append(
                format_problem(
                    path, f"accounts[{i}].home", f"{account.home} does not exist or is not a folder"
                )
            )
    if shutil.which("tmux") is None:
        problems.append(
            format_problem(path, "tmux", "tmux not found on PATH: install it (apt-get install tmux)")
        )
    for i, dedicated in enumerate(config.pool.dedicated):
        if not dedicated.project.is_dir():
            problems.append(
                format_problem(path, f"pool.dedicated[{i}].project", f"{dedicated.project} is not a folder")
            )
    return problems
