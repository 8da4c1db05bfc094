"""Installs the agent Stop hook that writes the done-signal file, merged into each account's settings."""

from __future__ import annotations

import json
import logging
import os
import shlex
import tempfile
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

MARKER = "# cfo-done-signal"


class StopHookError(RuntimeError):
    """settings.json could not be read or written; the message names the file."""


def hook_command(done_signal_dir: Path) -> str:
    """The shell command the agent runs at each turn end: touch agent-done-<tmux session name>."""
    target = shlex.quote(str(done_signal_dir)) + '/agent-done-"$n"'
    # TMUX and TMUX_PANE come from the pane, so this reaches the right server, private sockets included.
    return (
        f'n=$(tmux display-message -p -t "$TMUX_PANE" "#S" 2>/dev/null) && [ -n "$n" ] '
        f"&& mkdir -p {shlex.quote(str(done_signal_dir))} && touch {target} {MARKER}"
    )


def _is_ours(entry: Any) -> bool:
    hooks = entry.get("hooks") if isinstance(entry, dict) else None
    return isinstance(hooks, list) and any(
        isinstance(h, dict) and MARKER in str(h.get("command", "")) for h in hooks
    )


def merge_stop_hook(settings: dict[str, Any], command: str) -> bool:
    """Add or refresh our Stop hook in `settings`, leaving every other hook alone; True if changed."""
    hooks = settings.setdefault("hooks", {})
    if not isinstance(hooks, dict):
        raise StopHookError('"hooks" is not a mapping')
    stop = hooks.setdefault("Stop", [])
    if not isinstance(stop, list):
        raise StopHookError('"hooks.Stop" is not a list')
    wanted = {"matcher": "", "hooks": [{"type": "command", "command": command}]}
    for i, entry in enumerate(stop):
        if _is_ours(entry):
            if entry == wanted:
                return False
            stop[i] = wanted
            return True
    stop.append(wanted)
    return True


def install_stop_hook(account_home: Path, done_signal_dir: Path) -> bool:
    """Merge the hook into `<account_home>/settings.json`; True if the file was written."""
    path = account_home / "settings.json"
    settings: dict[str, Any] = {}
    if path.exists():
        try:
            loaded = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise StopHookError(f"{path}: cannot read settings ({exc}); left untouched") from exc
        if not isinstance(loaded, dict):
            raise StopHookError(f"{path}: settings are not a JSON object; left untouched")
        settings = loaded
    try:
        changed = merge_stop_hook(settings, hook_command(done_signal_dir))
    except StopHookError as exc:
        raise StopHookError(f"{path}: {exc}; left untouched") from exc
    if not changed:
        return False
    account_home.mkdir(parents=True, exist_ok=True)
    # Settings kept in a dotfiles repository and linked in stay linked: write the file the link names.
    target = path.resolve() if path.is_symlink() and path.exists() else path
    mode = target.stat().st_mode & 0o777 if target.exists() else 0o600
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".settings.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(settings, handle, indent=2)
            handle.write("\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, target)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise StopHookError(f"{path}: cannot write settings ({exc})") from exc
    log.info("installed the done-signal Stop hook in %s", path)
    return True
