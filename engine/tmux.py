"""The TmuxClient protocol, its libtmux implementation on one tmux socket, and the client a config names."""

from __future__ import annotations

import logging
import os
import shlex
import shutil
import subprocess
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable

from engine.config import Config
from engine.safetext import control_in, describe_control, visible

log = logging.getLogger(__name__)


class TmuxError(RuntimeError):
    """A tmux operation failed; the message names the session and what to do."""


@runtime_checkable
class TmuxClient(Protocol):
    """What the engine needs from tmux, addressed by session name only.

    Sessions are the unit: every call names one, so an implementation backed by a
    control-mode client (one `tmux -C` pipe with `%output` notifications) can stand
    behind the same calls, and callers never hold pane objects.
    """

    socket_name: str | None

    def has_session(self, name: str) -> bool: ...

    def list_sessions(self) -> list[str]: ...

    def new_session(
        self,
        name: str,
        cwd: Path,
        command: Sequence[str] | None = None,
        env: Mapping[str, str] | None = None,
        width: int = 200,
        height: int = 50,
    ) -> None: ...

    def kill_session(self, name: str) -> None: ...

    def respawn(self, name: str, cwd: Path, command: Sequence[str]) -> None: ...

    def send_text(self, name: str, text: str) -> None: ...

    def send_enter(self, name: str) -> None: ...

    def send_keys(self, name: str, *keys: str) -> None: ...

    def capture(self, name: str, lines: int = 60, ansi: bool = False) -> str: ...

    def clear(self, name: str) -> None: ...

    def type_line(self, name: str, line: str, clear: bool = False) -> None: ...

    def pane_commands(self) -> dict[str, str]: ...

    def pane_activity(self) -> dict[str, int]: ...

    def capture_many(self, names: Sequence[str], lines: int = 60) -> dict[str, str]: ...

    def current_command(self, name: str) -> str: ...

    def pane_pid(self, name: str) -> int | None: ...

    def kill_server(self) -> None: ...


def socket_folder() -> Path:
    """tmux's private per-user folder, where `-L` sockets live."""
    return Path(os.environ.get("TMUX_TMPDIR") or "/tmp") / f"tmux-{os.getuid()}"


def socket_path(socket_name: str) -> Path:
    """Where the server of `tmux -L socket_name` listens."""
    return socket_folder() / socket_name


def find_tmux() -> str:
    """Path of the tmux binary, or a TmuxError saying how to install it."""
    path = shutil.which("tmux")
    if path is None:
        raise TmuxError("tmux not found on PATH: install it (apt-get install tmux) and start again")
    return path


def _literal(text: str) -> str:
    """Protect a trailing `;` in a tmux argument: tmux reads it as a command separator and drops it."""
    return text[:-1] + "\\;" if text.endswith(";") else text


def _target(name: str) -> str:
    # "=" makes tmux match the session name exactly instead of as a prefix.
    return f"={name}:"


class LibtmuxClient:
    """TmuxClient over libtmux, never touching any server but the one on `socket_name`."""

    def __init__(self, socket_name: str | None = None) -> None:
        import libtmux  # local: keeps `import engine.tmux` cheap for the CLI's quick paths

        self.socket_name = socket_name
        self._bin = find_tmux()
        self._server = libtmux.Server(socket_name=socket_name)

    def _base(self) -> list[str]:
        return [self._bin, "-L", self.socket_name] if self.socket_name else [self._bin]

    def _cmd(self, *args: str) -> list[str]:
        result = self._server.cmd(*args)
        if result.returncode != 0:
            raise TmuxError(f"tmux {args[0]} failed: {' '.join(result.stderr) or 'no output'}")
        return list(result.stdout)

    def has_session(self, name: str) -> bool:
        return self._server.cmd("has-session", "-t", _target(name)).returncode == 0

    def list_sessions(self) -> list[str]:
        result = self._server.cmd("list-sessions", "-F", "#{session_name}")
        if result.returncode != 0:
            return []  # no server running means no sessions
        return [line for line in result.stdout if line]

    def new_session(
        self,
        name: str,
        cwd: Path,
        command: Sequence[str] | None = None,
        env: Mapping[str, str] | None = None,
        width: int = 200,
        height: int = 50,
    ) -> None:
        args = ["new-session", "-d", "-s", name, "-c", str(cwd), "-x", str(width), "-y", str(height)]
        for key, value in (env or {}).items():
            args += ["-e", f"{key}={value}"]
        if command:
            args.append(shlex.join(command))
        self._cmd(*args)
        log.debug("created tmux session %s in %s", name, cwd)

    def kill_session(self, name: str) -> None:
        if self.has_session(name):
            self._cmd("kill-session", "-t", _target(name))

    def respawn(self, name: str, cwd: Path, command: Sequence[str]) -> None:
        """Kill whatever runs in the session's pane and start `command` there afresh, its scrollback
        dropped. The session lives on throughout: killing the only session would stop the server."""
        self._cmd("respawn-pane", "-k", "-t", _target(name), "-c", str(cwd), shlex.join(command))
        self._cmd("clear-history", "-t", _target(name))

    def send_text(self, name: str, text: str) -> None:
        """Type `text` literally; a multi-line text goes in as one bracketed paste (so does one with a
        tab, which typed would be a key of its own). Other control characters are refused."""
        bad = control_in(text, multiline=True)
        if bad is not None:
            raise TmuxError(
                f"{name}: refusing to paste a text holding the control character {describe_control(bad[0])}"
            )
        if "\n" not in text and "\t" not in text:
            self._cmd("send-keys", "-t", _target(name), "-l", "--", _literal(text))
            return
        buffer = f"cfo-{uuid.uuid4().hex[:12]}"
        proc = subprocess.run(
            [*self._base(), "load-buffer", "-b", buffer, "-"],
            input=text.encode(),
            capture_output=True,
            check=False,
        )
        if proc.returncode != 0:
            raise TmuxError(f"tmux load-buffer for {name} failed: {proc.stderr.decode().strip()}")
        # -p: bracketed paste when the program asked for it; -d: drop the buffer afterwards.
        self._cmd("paste-buffer", "-p", "-d", "-b", buffer, "-t", _target(name))

    def send_enter(self, name: str) -> None:
        self._cmd("send-keys", "-t", _target(name), "Enter")

    def send_keys(self, name: str, *keys: str) -> None:
        """Send named keys (`Escape`, `C-u`, `Enter`) as tmux key names."""
        self._cmd("send-keys", "-t", _target(name), *keys)

    def capture(self, name: str, lines: int = 60, ansi: bool = False) -> str:
        """The last `lines` non-trailing-blank lines of the pane, scrollback included."""
        args = ["capture-pane", "-p", "-t", _target(name), "-S", f"-{lines}"]
        if ansi:
            args.append("-e")
        out = self._cmd(*args)
        while out and not out[-1].strip():
            out.pop()
        return "\n".join(out[-lines:])

    def clear(self, name: str) -> None:
        """Reset the pane's terminal and drop its scrollback, so old output cannot be read as new."""
        self._cmd("send-keys", "-R", "-t", _target(name))
        self._cmd("clear-history", "-t", _target(name))

    def type_line(self, name: str, line: str, clear: bool = False) -> None:
        """Empty the input line (Ctrl-U), optionally clear the pane, type `line` and press Enter.

        A line holding a control character is refused (TmuxError): typed, it would act as keys.

        One tmux invocation (commands joined by `;`): a launch is on the dispatch path, where every
        forked client costs milliseconds.
        """
        bad = control_in(line)
        if bad is not None:
            raise TmuxError(
                f"{name}: refusing to type a line holding the control character {describe_control(bad[0])}: "
                f"{visible(line)[:200]}"
            )
        target = _target(name)
        args = ["send-keys", "-t", target, "C-u"]
        if clear:
            args += [";", "send-keys", "-R", "-t", target, ";", "clear-history", "-t", target]
        args += [
            ";",
            "send-keys",
            "-t",
            target,
            "-l",
            "--",
            _literal(line),
            ";",
            "send-keys",
            "-t",
            target,
            "Enter",
        ]
        self._cmd(*args)

    def pane_commands(self) -> dict[str, str]:
        """Session name -> the foreground command of its active pane, for every session, in one call."""
        result = self._server.cmd(
            "list-panes",
            "-a",
            "-F",
            "#{session_name}\t#{window_active}#{pane_active}\t#{pane_current_command}",
        )
        if result.returncode != 0:
            return {}
        commands: dict[str, str] = {}
        for row in result.stdout:
            session, active, command = [*row.split("\t"), "", ""][:3]
            if active == "11":
                commands[session] = command
        return commands

    def pane_activity(self) -> dict[str, int]:
        """Session name -> when its window last printed anything (epoch seconds), in one call."""
        result = self._server.cmd("list-sessions", "-F", "#{session_name}\t#{window_activity}")
        if result.returncode != 0:
            return {}
        activity: dict[str, int] = {}
        for row in result.stdout:
            session, _, stamp = row.rpartition("\t")
            if stamp.isdigit():
                activity[session] = int(stamp)
        return activity

    def capture_many(self, names: Sequence[str], lines: int = 60) -> dict[str, str]:
        """`capture` of several sessions in one tmux invocation; a session that is gone is left out."""
        if not names:
            return {}
        token = f"@@cfo-{uuid.uuid4().hex}@@"
        args: list[str] = []
        for name in names:
            target = _target(name)
            args += ["display-message", "-p", "-t", target, token + "#{session_name}", ";"]
            args += ["capture-pane", "-p", "-t", target, "-S", f"-{lines}", ";"]
        result = self._server.cmd(*args[:-1])
        if result.returncode != 0:
            # tmux stops a sequence at its first error (a vanished session): ask one by one instead.
            out: dict[str, str] = {}
            for name in names:
                try:
                    out[name] = self.capture(name, lines)
                except TmuxError:
                    continue
            return out
        texts: dict[str, list[str]] = {}
        current: list[str] | None = None
        for row in result.stdout:
            if row.startswith(token):
                current = texts.setdefault(row[len(token) :], [])
            elif current is not None:
                current.append(row)
        out = {}
        for name, rows in texts.items():
            while rows and not rows[-1].strip():
                rows.pop()
            out[name] = "\n".join(rows[-lines:])
        return out

    def _display(self, name: str, fmt: str) -> str:
        out = self._cmd("display-message", "-p", "-t", _target(name), fmt)
        return out[0] if out else ""

    def current_command(self, name: str) -> str:
        return self._display(name, "#{pane_current_command}")

    def pane_pid(self, name: str) -> int | None:
        value = self._display(name, "#{pane_pid}")
        return int(value) if value.isdigit() else None

    def kill_server(self) -> None:
        subprocess.run([*self._base(), "kill-server"], capture_output=True, check=False)
        # tmux leaves a private server's socket file behind (also when the server had already exited with
        # its last session); nothing answers on it any more.
        if self.socket_name is not None:
            socket_path(self.socket_name).unlink(missing_ok=True)


def client_for(config: Config) -> TmuxClient:
    """The client the console and `cfo --no-ui` drive the engine through, on the config's
    `tmux.socket_name`; raises TmuxError if tmux is not installed."""
    return LibtmuxClient(socket_name=config.tmux.socket_name)
