"""Lifecycle: keeps the autonomous pool's tmux sessions alive, and touches nothing it does not own."""

from __future__ import annotations

import logging
from pathlib import Path

from engine.config import Config
from engine.launch import pool_shell
from engine.tmux import TmuxClient

log = logging.getLogger(__name__)


def pool_cwd(config: Config) -> Path:
    home = Path.home()
    return config.projects_dir if config.projects_dir and config.projects_dir.is_dir() else home


def ensure_pool(config: Config, tmux: TmuxClient, wanted: int) -> list[str]:
    """Make sure at least `wanted` (clamped to [min, max]) pool sessions exist; returns those created.

    Only names inside the autonomous range are ever created; sessions outside it are not looked at.
    """
    auto = config.pool.autonomous
    target = max(auto.min, min(wanted, auto.max))
    live = set(tmux.list_sessions())
    names = auto.names()
    existing = [n for n in names if n in live]
    created: list[str] = []
    for name in names:
        if len(existing) + len(created) >= target:
            break
        if name in live:
            continue
        tmux.new_session(name, pool_cwd(config), command=pool_shell())
        created.append(name)
        log.info("created pool session %s", name)
    return created


def live_pool(config: Config, tmux: TmuxClient) -> list[str]:
    """The pool sessions that exist, in range order."""
    live = set(tmux.list_sessions())
    return [n for n in config.pool.autonomous.names() if n in live]


def create_sessions(config: Config, tmux: TmuxClient, names: list[str]) -> list[str]:
    """Create the named pool sessions that do not exist (names outside the range are refused)."""
    live = set(tmux.list_sessions())
    created: list[str] = []
    for name in names:
        if not config.pool.autonomous.contains(name):
            log.error("refusing to create %s: not in the autonomous pool's range", name)
            continue
        if name not in live:
            tmux.new_session(name, pool_cwd(config), command=pool_shell())
            created.append(name)
    return created


def restart_session(config: Config, tmux: TmuxClient, name: str) -> None:
    """A fresh shell in pool session `name` (made if it is gone), whatever ran there killed."""
    if tmux.has_session(name):
        tmux.respawn(name, pool_cwd(config), pool_shell())
    else:
        create_sessions(config, tmux, [name])
