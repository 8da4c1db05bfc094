"""The `cfo` command: argument parsing and the subcommands that need no running console."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from engine.config import Config


def _version() -> str:
    try:
        return version("claude-failover")
    except PackageNotFoundError:
        return "unknown"


def _add_config(parser: argparse.ArgumentParser, top: bool) -> None:
    # SUPPRESS on the subcommands keeps a --config given before the subcommand's name.
    parser.add_argument(
        "--config",
        type=Path,
        default=None if top else argparse.SUPPRESS,
        metavar="PATH",
        help="config file (default: $CFO_CONFIG or ~/.config/cfo/config.yaml)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cfo",
        description="Keep a pool of Claude Code agents busy in tmux and fail over between accounts.",
    )
    _add_config(parser, top=True)
    parser.add_argument(
        "--no-ui", action="store_true", help="run the engine headless, one log line per event"
    )
    parser.add_argument("--version", action="version", version=f"cfo {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    from cfo_tui import completion, delegate, service
    from engine.tasks import PRIORITIES

    demo = sub.add_parser(
        "demo",
        help="run the console on a throw-away workspace with simulated agents",
        description=(
            "A throw-away workspace (three projects, two simulated accounts, a private tmux server) and the "
            "console on it, telling a story in about a minute: work flows on the first account until one "
            "task runs it out of its session limit half-way; the pool fails over to the second account and "
            "that task resumes in its own conversation; a burst of 529 errors does not swap; a task file "
            "with broken front matter goes to failed/ with its reason; once the first account's limit has "
            "reset, the pool goes back to it. No Claude account is needed. The demo writes its own config: "
            "--config is refused."
        ),
    )
    demo.add_argument(
        "--no-ui", action="store_true", dest="demo_no_ui", help="tell the story in the log, then stop"
    )
    demo.add_argument("--agents", type=int, default=4, metavar="N", help="pool sessions (default 4)")
    demo.add_argument(
        "--keep", action="store_true", help="keep the workspace folder afterwards (and say how to look at it)"
    )
    demo.add_argument(
        "--tasks",
        type=int,
        default=None,
        metavar="N",
        help="no story: a plain queue of N tasks (headless: stop once it is done)",
    )

    init = sub.add_parser("init", help="write a commented example config")
    init.add_argument("--force", action="store_true", help="overwrite an existing file")

    sub.add_parser("check", help="validate the config and print every problem at once")

    status = sub.add_parser("status", help="print the persisted state")
    status.add_argument("--json", action="store_true", help="one JSON object on stdout")
    status.add_argument(
        "--fleet", action="store_true", help="every host of the fleet, read from its NATS server"
    )

    add = sub.add_parser(
        "add",
        help="queue a task: write its file into a project's inbox and print its id",
        description="Write a task file into PROJECT's inbox (written elsewhere, then renamed in) and print "
        "its id on stdout. PROJECT is a project folder's name under projects_dir, or a path to it.",
    )
    add.add_argument(
        "project", metavar="PROJECT", help="a project folder's name under projects_dir, or its path"
    )
    add.add_argument("title", metavar="TITLE", help="what the task is, in a line")
    priority = add.add_argument(
        "--priority", default="default", metavar="P", help="critical, high, default (the default) or low"
    )
    setattr(priority, completion.WORDS, PRIORITIES)  # checked by cfo add itself: one line if wrong
    add.add_argument(
        "--depends-on",
        action="extend",
        nargs="+",
        default=[],
        metavar="ID",
        help="run only once this task is done: project:task_id, or a task id of the same project",
    )
    add.add_argument("--body", metavar="FILE", help="the task's text from FILE, or - for standard input")

    screen = sub.add_parser("screen", help="print how the engine reads a captured pane, as JSON")
    screen.add_argument("file", help="a captured pane (capture-pane -p output), or - for stdin")
    screen.add_argument("--transcript", type=Path, default=None, help="the agent's JSONL transcript")

    delegate.add_parser(sub, lambda p: _add_config(p, top=False))
    service.add_parser(sub)
    completion.add_parser(sub)
    for name in ("demo", "init", "check", "status", "screen", "add"):
        _add_config(sub.choices[name], top=False)
    for action in demo._actions:  # accepted everywhere, but the demo has its own config
        if action.dest == "config":
            action.help = "refused: the demo writes its own config"
    return parser


def config_path(args: argparse.Namespace) -> Path:
    from engine.config import default_config_path

    explicit: Path | None = getattr(args, "config", None)
    return explicit.expanduser() if explicit else default_config_path()


def _err(message: str) -> None:
    print(f"cfo: {message}", file=sys.stderr)


def cmd_init(args: argparse.Namespace) -> int:
    from engine.config import ConfigError
    from engine.config_template import write_init

    try:
        path = write_init(config_path(args), force=args.force)
    except ConfigError as exc:
        _err(str(exc))
        return 1
    print(f"wrote {path}; edit the accounts, then run: cfo check", file=sys.stderr)
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    from engine.checks import run_checks

    path = config_path(args)
    result = run_checks(path)
    for warning in result.warnings:
        print(warning)
    problems = result.errors
    for problem in problems:
        print(problem)
    if problems:
        print(f"{len(problems)} problem(s) found", file=sys.stderr)
        return 1
    print(f"{path}: ok", file=sys.stderr)
    return 0


def cmd_screen(args: argparse.Namespace) -> int:
    from engine.patterns import PatternError, load_patterns
    from engine.screen import read
    from engine.transcript import read_lines

    override: Path | None = None
    path = config_path(args)
    if path.exists():
        from engine.config import ConfigError
        from engine.config_reader import load_config

        try:
            override = load_config(path).screen.patterns_file
        except ConfigError as exc:
            _err(str(exc))
            return 1
    try:
        patterns = load_patterns(override)
        text = sys.stdin.read() if args.file == "-" else Path(args.file).read_text(encoding="utf-8")
        lines = read_lines(args.transcript) if args.transcript else None
    except (OSError, UnicodeDecodeError, PatternError) as exc:
        _err(str(exc))
        return 1
    print(json.dumps(read(text, transcript_lines=lines, patterns=patterns).to_json()))
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from engine.config import ConfigError
    from engine.config_reader import load_config
    from engine.status import render_status, status_dict

    try:
        config = load_config(config_path(args))
    except ConfigError as exc:
        _err(str(exc))
        return 1
    if args.fleet:
        return _fleet_status(config, args.json)
    data = status_dict(config)
    print(json.dumps(data, indent=None if args.json else 2) if args.json else render_status(data))
    return 0


def _fleet_status(config: Config, as_json: bool) -> int:
    if config.fleet is None:
        _err(f"{config.source or 'the config'}: no fleet: section; this host works alone")
        return 1
    from engine.fleet.status import FleetStatusError, fleet_status, render_fleet

    try:
        data = fleet_status(config.fleet)
    except FleetStatusError as exc:
        _err(str(exc))
        return 1
    print(json.dumps(data) if as_json else render_fleet(data))
    return 0


def cmd_add(args: argparse.Namespace) -> int:
    from engine import queue as q
    from engine.addtask import AddError, add_task, find_project, read_body
    from engine.config import ConfigError
    from engine.config_reader import load_config
    from engine.tasks import NOWHERE

    try:
        config = load_config(config_path(args))
    except ConfigError as exc:
        _err(str(exc))
        return 1
    dedicated = {d.project.name: d.project for d in config.pool.dedicated}
    projects = q.discover_projects(config.projects_dir, dedicated)
    try:
        name, project_dir = find_project(args.project, projects, config.projects_dir)
        added = add_task(
            name,
            project_dir,
            args.title,
            priority=args.priority,
            depends_on=args.depends_on,
            body=read_body(args.body, sys.stdin.read),
            projects_dir=config.projects_dir,
            projects=projects,
            max_bytes=config.tasks.max_bytes,
        )
    except AddError as exc:
        _err(str(exc))
        return 1
    for dep in added.nowhere:
        _err(f"warning: {dep} {NOWHERE}; the task waits until it is done")
    print(added.task.id)
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from cfo_tui.demo import DemoError, run_demo

    if getattr(args, "config", None) is not None:
        _err("demo: --config is not used: the demo builds its own throw-away config (--keep keeps it)")
        return 2
    try:
        return run_demo(
            agents=args.agents, tasks=args.tasks, headless=args.demo_no_ui or args.no_ui, keep=args.keep
        )
    except DemoError as exc:
        _err(str(exc))
        return 1


def cmd_run(args: argparse.Namespace) -> int:
    from engine.config import ConfigError
    from engine.config_reader import load_config
    from engine.tmux import TmuxError, client_for

    try:
        config = load_config(config_path(args))
        tmux = client_for(config)
    except (ConfigError, TmuxError) as exc:
        _err(str(exc))
        return 1
    if args.no_ui:
        from cfo_tui.headless import run_headless

        return run_headless(config, tmux)
    from cfo_tui.app import run_app
    from engine.lock import EngineError

    try:
        return run_app(config, tmux)
    except EngineError as exc:  # the state_dir is unusable: said before the console takes the screen
        _err(str(exc))
        return 1


def cmd_delegate(args: argparse.Namespace) -> int:
    from cfo_tui.delegate import run

    return run(args, config_path(args))


def cmd_install_service(args: argparse.Namespace) -> int:
    from cfo_tui.service import run

    return run(args, config_path(args))


def cmd_completion(args: argparse.Namespace) -> int:
    from cfo_tui.completion import script

    sys.stdout.write(script(build_parser(), args.shell))
    return 0


COMMANDS = {
    "add": cmd_add,
    "init": cmd_init,
    "check": cmd_check,
    "screen": cmd_screen,
    "status": cmd_status,
    "demo": cmd_demo,
    "delegate": cmd_delegate,
    "install-service": cmd_install_service,
    "completion": cmd_completion,
}


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command is None:
        return cmd_run(args)
    try:
        return COMMANDS[args.command](args)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # stdout closed early (`cfo status | head`): not an error worth a traceback.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
