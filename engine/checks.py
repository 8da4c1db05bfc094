"""`cfo check`: every problem with the config and what it points at, one line each naming its key path.

Errors would stop cfo or lose work, and make the check fail. Warnings, printed as `warning: ` lines that do
not fail it, are states cfo repairs by itself when it starts (a shared folder or link not created yet) or
that matter only in some setups (delegation without its key, an agent the sessions' shell may still find).
Nothing is created or started: account homes, links and tmux are only looked at.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from engine.config import Config, format_problem
from engine.config_reader import check_config, load_config
from engine.patterns import PatternError, load_patterns
from engine.symlinks import HOME_KINDS, inspect

TMUX_TIMEOUT = 5.0

# What `tmux list-sessions` says when there is no server yet (or only a stale socket): the engine then
# starts one, so none of these is a problem.
_NO_SERVER = ("no server running", "No such file or directory", "Connection refused")


@dataclass(frozen=True)
class CheckResult:
    """Error lines (any one fails the check) and warning lines, already prefixed with `warning: `."""

    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


class _Report:
    def __init__(self, source: Path | None) -> None:
        self.source = source
        self.result = CheckResult()

    def error(self, key: str, message: str) -> None:
        self.result.errors.append(format_problem(self.source, key, message))

    def warning(self, key: str, message: str) -> None:
        self.result.warnings.append("warning: " + format_problem(self.source, key, message))


def run_checks(path: Path, environ: Mapping[str, str] = os.environ, euid: int | None = None) -> CheckResult:
    """Only the config's problems if it does not load; else also accounts, links, tmux, folders, the rest.
    `euid` is the user the agents run as (this process's by default)."""
    problems = check_config(path)
    if problems:
        return CheckResult(errors=problems)
    config = load_config(path)
    report = _Report(config.source)
    _check_accounts_and_links(config, report)
    _check_tmux(config, report, environ)
    _check_folders(config, report)
    _check_patterns(config, report)
    _check_delegation(config, report, environ)
    _check_agent(config, report, environ)
    _check_root(config, report, environ, os.geteuid() if euid is None else euid)
    return report.result


def check_all(path: Path) -> list[str]:
    """The error lines of `run_checks`: empty when `cfo check` passes."""
    return run_checks(path).errors


def _check_accounts_and_links(config: Config, report: _Report) -> None:
    problems = inspect(config)
    home_problems = {p.key: p for p in problems if p.kind in HOME_KINDS}
    for i, account in enumerate(config.accounts):
        key = f"accounts[{i}].home"
        if key in home_problems:
            report.error(key, home_problems[key].message)
        elif not os.access(account.home, os.W_OK | os.X_OK):
            report.error(key, f"{account.home} is not writable; the agent keeps its login and settings there")
    for problem in problems:
        if problem.kind in HOME_KINDS:
            continue
        if problem.fixable:
            report.warning(problem.key, problem.message)
        else:
            report.error(problem.key, problem.message)


def _check_tmux(config: Config, report: _Report, environ: Mapping[str, str]) -> None:
    tmux = shutil.which("tmux", path=environ.get("PATH", os.defpath))
    if tmux is None:
        report.error("tmux", "tmux not found on PATH: install it (apt-get install tmux)")
        return
    if config.tmux.socket_name is not None:
        # A private socket: the engine starts that server itself, so there is nothing to reach yet.
        return
    # list-sessions never starts a server, unlike new-session.
    fix = "or set tmux.socket_name to give cfo a tmux server of its own"
    try:
        done = subprocess.run(
            [tmux, "list-sessions", "-F", "#{session_name}"],
            capture_output=True,
            text=True,
            timeout=TMUX_TIMEOUT,
            env=dict(environ),
            check=False,
        )
    except subprocess.TimeoutExpired:
        report.error(
            "tmux.socket_name", f"the default tmux server did not answer in {TMUX_TIMEOUT:g}s; {fix}"
        )
        return
    except OSError as exc:
        report.error("tmux", f"cannot run {tmux}: {exc.strerror or exc}")
        return
    said = done.stderr.strip()
    if done.returncode != 0 and not any(phrase in said for phrase in _NO_SERVER):
        report.error(
            "tmux.socket_name", f"the default tmux server cannot be reached ({said}); fix that, {fix}"
        )


def _check_folders(config: Config, report: _Report) -> None:
    if not os.path.isdir(config.projects_dir):
        report.error("projects_dir", f"{config.projects_dir} does not exist or is not a folder")
    for i, dedicated in enumerate(config.pool.dedicated):
        if not os.path.isdir(dedicated.project):
            report.error(f"pool.dedicated[{i}].project", f"{dedicated.project} is not a folder")
    # The engine creates these on start, so a missing folder is fine as long as it can be made.
    for key, folder in (
        ("agent.resume_dir", config.agent.resume_dir),
        ("watcher.done_signal_dir", config.watcher.done_signal_dir),
        ("state_dir", config.state_dir),
    ):
        problem = _unwritable(folder)
        if problem is not None:
            report.error(key, problem)


def _unwritable(folder: Path) -> str | None:
    """Why cfo could not write files in `folder`, creating it first if need be; None if it could."""
    existing = folder
    while not os.path.exists(existing) and existing != existing.parent:
        existing = existing.parent
    if existing == folder:
        if not os.path.isdir(folder):
            return f"{folder} is not a folder"
        if not os.access(folder, os.W_OK | os.X_OK):
            return f"{folder} is not writable"
        return None
    if not os.path.isdir(existing):
        return f"{folder} cannot be created: {existing} is not a folder"
    if not os.access(existing, os.W_OK | os.X_OK):
        return f"{folder} cannot be created: {existing} is not writable"
    return None


def _check_patterns(config: Config, report: _Report) -> None:
    if config.screen.patterns_file is None:
        return
    try:
        load_patterns(config.screen.patterns_file)
    except PatternError as exc:
        report.error("screen.patterns_file", str(exc))


def _check_delegation(config: Config, report: _Report, environ: Mapping[str, str]) -> None:
    delegation = config.delegation
    if delegation.url is not None and delegation.api_key(environ) is None:
        report.warning(
            "delegation.api_key_env",
            f"${delegation.api_key_env} is empty here: delegation stays off although delegation.url is set",
        )


def _check_agent(config: Config, report: _Report, environ: Mapping[str, str]) -> None:
    command = config.agent.command
    if shutil.which(command, path=environ.get("PATH", os.defpath)) is None:
        report.warning(
            "agent.command",
            f"{command} is not found on PATH here; sessions start it from their shell, which must find it",
        )


SKIP_PERMISSIONS = "--dangerously-skip-permissions"


def _check_root(config: Config, report: _Report, environ: Mapping[str, str], euid: int) -> None:
    """As root, Claude Code refuses to skip permissions and exits at once unless it is told it runs in a
    sandbox (IS_SANDBOX=1 in its environment, or in the `env` of the account's settings.json)."""
    agent = config.agent
    if euid != 0 or SKIP_PERMISSIONS not in agent.args or Path(agent.command).name != "claude":
        return
    if environ.get("IS_SANDBOX") == "1":
        return
    for i, account in enumerate(config.accounts):
        if _settings_env(account.home).get("IS_SANDBOX") != "1":
            report.warning(
                f"accounts[{i}].home",
                f"as root, claude {SKIP_PERMISSIONS} exits at once: set IS_SANDBOX=1 in the `env` of "
                f"{account.home / 'settings.json'} (or in cfo's environment), or run cfo as another user",
            )


def _settings_env(home: Path) -> dict[str, object]:
    try:
        data = json.loads((home / "settings.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    env = data.get("env") if isinstance(data, dict) else None
    return env if isinstance(env, dict) else {}
