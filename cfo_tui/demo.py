"""`cfo demo`: the console (or the headless engine) on a throw-away workspace with simulated agents."""

from __future__ import annotations

import signal
import sys

from engine.workspace import build_workspace, remove_workspace


def _hang_up(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


class DemoError(RuntimeError):
    """The demo could not be set up (tmux missing, workspace not writable)."""


def run_demo(agents: int = 4, tasks: int | None = None, headless: bool = False, keep: bool = False) -> int:
    """Build the workspace, run the console (or the headless engine) on it, then clean up."""
    from engine.config_reader import config_from_dict
    from engine.tmux import TmuxError, client_for

    if agents < 1:
        raise DemoError("--agents must be at least 1")
    # A closed terminal (SIGHUP) must still remove the demo's tmux server and workspace.
    signal.signal(signal.SIGHUP, _hang_up)
    try:
        workspace = build_workspace(agents, tasks)
    except OSError as exc:
        raise DemoError(f"cannot create the demo workspace: {exc}") from exc
    try:
        config = config_from_dict(workspace.config)
        try:
            tmux = client_for(config)
        except TmuxError as exc:
            raise DemoError(str(exc)) from exc
        print(f"demo workspace: {workspace.root}  (tmux -L {workspace.socket_name} attach)", file=sys.stderr)
        try:
            if headless:
                from cfo_tui.headless import run_headless

                return run_headless(config, tmux=tmux, until_idle=True)
            from cfo_tui.app import run_app

            return run_app(config, tmux=tmux)
        finally:
            tmux.kill_server()
    finally:
        if keep:
            print(f"kept {workspace.root}", file=sys.stderr)
        else:
            remove_workspace(workspace)
