"""`cfo install-service`: a systemd user unit that runs `cfo --no-ui` and restarts it on failure."""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path

from engine.atomic import atomic_write

UNIT_NAME = "cfo.service"
RESTART_SEC = 10


class ServiceError(Exception):
    """The unit cannot be written as asked; the message says what to change."""


def unit_dir() -> Path:
    """Where systemd looks for the user's own units: `$XDG_CONFIG_HOME/systemd/user`."""
    xdg = os.environ.get("XDG_CONFIG_HOME", "")
    # The XDG spec says a relative value is invalid and must be ignored; systemd does the same.
    base = Path(xdg) if os.path.isabs(xdg) else Path.home() / ".config"
    return base / "systemd" / "user"


def _escape(value: str, what: str) -> str:
    """One word of a unit-file setting: `%` specifiers and `$` expansion disabled, quoted if needed."""
    if any(ord(c) < 0x20 or c == "\x7f" for c in value):
        raise ServiceError(f"{what} {value!r} holds a control character, which a unit file cannot carry")
    value = value.replace("%", "%%")
    if not any(c in value for c in " \"\\'$;"):
        return value
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _exec_word(value: str, what: str) -> str:
    # ExecStart= expands $VAR and ${VAR}; a literal `$` in a path is written `$$`.
    return _escape(value, what).replace("$", "$$")


def unit_text(executable: Path, config: Path, path_env: str) -> str:
    """The unit: `<executable> --no-ui --config <config>`, restarted on failure, with PATH for tmux."""
    exe = _exec_word(str(executable), "the cfo executable")
    command = f"{exe} --no-ui --config {_exec_word(str(config), 'the config path')}"
    return "\n".join(
        [
            "[Unit]",
            "Description=cfo: keeps a pool of Claude Code agents busy in tmux (claude-failover)",
            "",
            "[Service]",
            "Type=exec",
            f"ExecStart={command}",
            "Restart=on-failure",
            f"RestartSec={RESTART_SEC}",
            # A user manager starts with a bare PATH; tmux and the agent must be found as in a shell.
            f"Environment={_escape('PATH=' + path_env, 'PATH')}",
            # Only cfo itself is stopped: the tmux server it may have started, and the agents working in
            # it, outlive a restart, and the engine picks them up again.
            "KillMode=process",
            "",
            "[Install]",
            "WantedBy=default.target",
            "",
        ]
    )


def cfo_executable() -> Path:
    """The absolute path of the `cfo` that is running, so the unit runs this installation."""
    argv0 = Path(sys.argv[0])
    if argv0.name == "cfo" and argv0.is_file():
        return argv0.absolute()
    # Run as `python -m` or from a test: the script installed next to this interpreter.
    beside = Path(sys.executable).parent / "cfo"
    if beside.is_file() and os.access(beside, os.X_OK):
        return beside.absolute()
    found = shutil.which("cfo")
    if found is None:
        raise ServiceError("cannot find the cfo executable; install the package so that `cfo` is on PATH")
    return Path(found).absolute()


def _path_env(executable: Path) -> str:
    """The current PATH, with the folders of cfo and tmux first if they are not on it."""
    parts = [p for p in os.environ.get("PATH", os.defpath).split(os.pathsep) if p]
    tmux = shutil.which("tmux")
    needed = [str(executable.parent)] + ([str(Path(tmux).parent)] if tmux else [])
    return os.pathsep.join([d for d in dict.fromkeys(needed) if d not in parts] + parts)


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `install-service [--dry-run] [--config PATH]` to the `cfo` subcommands."""
    parser = sub.add_parser("install-service", help="write a systemd user unit that runs cfo --no-ui")
    parser.add_argument("--dry-run", action="store_true", help="print the unit on stdout; write nothing")
    parser.add_argument(
        "--config",
        type=Path,
        # SUPPRESS keeps a --config given before the subcommand's name.
        default=argparse.SUPPRESS,
        metavar="PATH",
        help="config file the service runs with (default: $CFO_CONFIG or ~/.config/cfo/config.yaml)",
    )


def run(args: argparse.Namespace, config_path: Path) -> int:
    """Print the unit (`--dry-run`) or write it and print how to enable it; 1 if it cannot be made."""
    config = config_path.expanduser().absolute()
    try:
        executable = cfo_executable()
        text = unit_text(executable, config, _path_env(executable))
    except ServiceError as exc:
        print(f"cfo: {exc}", file=sys.stderr)
        return 1
    if not config.is_file():
        print(f"cfo: note: {config} does not exist yet; create it with: cfo init", file=sys.stderr)
    if args.dry_run:
        sys.stdout.write(text)
        return 0
    target = unit_dir() / UNIT_NAME
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(target, text)
    except OSError as exc:
        print(f"cfo: cannot write {target}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    print(
        f"wrote {target}\n"
        "start it now and at every login:\n"
        f"  systemctl --user daemon-reload && systemctl --user enable --now {UNIT_NAME}\n"
        "keep it running while you are logged out:\n"
        "  loginctl enable-linger $USER\n"
        f"follow its log: journalctl --user -u {UNIT_NAME} -f",
        file=sys.stderr,
    )
    return 0
