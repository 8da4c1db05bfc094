"""Stop hooks from the account's settings.json, run at turn end the way the real agent runs them."""

from __future__ import annotations

import os
from collections.abc import Callable


def load_stop_hooks(config_dir: str) -> list[str]:
    """The commands of `hooks.Stop` in `<config_dir>/settings.json`; malformed entries are skipped.

    Read once at start: the real agent snapshots its hooks when it starts too, so a hook written
    into settings.json afterwards does not run until the next start.
    """
    path = os.path.join(config_dir, "settings.json")
    try:
        with open(path, encoding="utf-8") as handle:
            raw = handle.read()
    except OSError:
        return []
    import json

    try:
        settings = json.loads(raw)
    except ValueError:
        return []
    stop = _get(_get(settings, "hooks"), "Stop")
    commands: list[str] = []
    for entry in stop if isinstance(stop, list) else []:
        hooks = _get(entry, "hooks")
        for hook in hooks if isinstance(hooks, list) else []:
            command = _get(hook, "command")
            if _get(hook, "type") == "command" and isinstance(command, str) and command.strip():
                commands.append(command)
    return commands


def _get(value: object, key: str) -> object:
    return value.get(key) if isinstance(value, dict) else None


class HookRunner:
    """Starts Stop hook commands without waiting for them, and reaps them later."""

    def __init__(self, commands: list[str]) -> None:
        self.commands = commands
        self._polls: list[Callable[[], int | None]] = []

    def run(self, session_id: str, transcript_path: str, cwd: str) -> None:
        if not self.commands:
            return
        import json
        import subprocess

        payload = json.dumps(
            {
                "session_id": session_id,
                "transcript_path": transcript_path,
                "cwd": cwd,
                "hook_event_name": "Stop",
                "stop_hook_active": False,
            }
        ).encode()
        # TMUX_PANE and the rest of the pane's environment pass through, as with the real agent.
        env = {**os.environ, "CLAUDE_SESSION_ID": session_id, "CLAUDE_PROJECT_DIR": cwd}
        for command in self.commands:
            proc = subprocess.Popen(
                ["sh", "-c", command],
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                cwd=cwd,
                env=env,
            )
            assert proc.stdin is not None
            try:
                proc.stdin.write(payload)
                proc.stdin.close()
            except BrokenPipeError:
                pass  # a hook that does not read its input is fine
            self._polls.append(proc.poll)

    def reap(self) -> None:
        self._polls = [poll for poll in self._polls if poll() is None]
