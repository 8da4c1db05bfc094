"""A YAML config read into the engine.config dataclasses, every problem named by file, key path and line."""

# Over ~400 lines on purpose: seventeen sections, each read by a small builder over the shared converters;
# split apart, the converters (private by design) would become a public API of their own.

from __future__ import annotations

import difflib
import ipaddress
import json
import math
import os
import re
import shlex
import string
from collections.abc import Callable, Iterable, Mapping
from datetime import date
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from engine.config import (
    MESSAGE_FIELDS,
    PRIORITIES,
    TEMPLATE_START,
    WEBHOOK_FORMATS,
    Account,
    AgentConfig,
    AutonomousPool,
    Config,
    ConfigError,
    DedicatedSession,
    DelegationConfig,
    FleetConfig,
    JanitorConfig,
    ModelsConfig,
    NotificationsConfig,
    PoolConfig,
    QuotaConfig,
    ScreenConfig,
    StatusApiConfig,
    TasksConfig,
    TmuxConfig,
    WatchdogConfig,
    WatcherConfig,
    default_config_path,
    format_problem,
    is_loopback,
)
from engine.durations import EXAMPLES as DURATION_EXAMPLES
from engine.durations import format_duration, parse_duration
from engine.safetext import control_in, describe_control

# --- reading values --------------------------------------------------------------------------------------

_Key = str | int
_KeyPath = tuple[_Key, ...]


class _Invalid(Exception):
    """A value is wrong; the reader files it under the key path it was reading."""


_Convert = Callable[["_Reader", _KeyPath, Any], Any]


def _describe(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value if len(value) <= 60 else value[:57] + "...", ensure_ascii=False)
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, date):
        return f"{value} (a date)"
    return f"a {type(value).__name__}"


def _describe_as_text(value: object) -> str:
    if isinstance(value, bool):
        return f"{_describe(value)} (YAML reads unquoted yes, no, on, off as booleans: quote the value)"
    if isinstance(value, int | float):
        return f"{_describe(value)} (quote it to use it as text)"
    return _describe(value)


def _dotted(path: _KeyPath) -> str:
    out = ""
    for key in path:
        out += f"[{key}]" if isinstance(key, int) else (f".{key}" if out else key)
    return out


class _Reader:
    """Walks the raw data once, recording every problem instead of stopping at the first."""

    def __init__(self, source: Path | None, lines: Mapping[_KeyPath, int]) -> None:
        self.source = source
        self.base = source.parent if source else Path.cwd()
        self.lines = lines
        self.problems: list[tuple[_KeyPath, str]] = []

    def add(self, path: _KeyPath, message: str) -> None:
        self.problems.append((path, message))

    def clean(self, path: _KeyPath) -> bool:
        """No problem recorded at or under `path`: checks across its keys can trust their values."""
        return not any(p[: len(path)] == path for p, _ in self.problems)

    def section(
        self,
        path: _KeyPath,
        raw: object,
        spec: Mapping[str, _Convert],
        required: Mapping[str, str] | None = None,
        example: str = "",
    ) -> dict[str, Any]:
        """The converted values of the keys present in `raw`; absent keys keep their dataclass defaults."""
        if raw is None:
            # An empty section (`tmux:` with every key commented out) means all defaults.
            raw = {}
        if not isinstance(raw, dict):
            self.add(path, f"expected a mapping{example}, got {_describe(raw)}")
            return {}
        out: dict[str, Any] = {}
        for key, value in raw.items():
            if not isinstance(key, str) or key not in spec:
                self.add((*path, str(key)), _unknown(str(key), spec))
                continue
            try:
                out[key] = spec[key](self, (*path, key), value)
            except _Invalid as exc:
                self.add((*path, key), str(exc))
        for key, hint in (required or {}).items():
            if key not in raw:
                self.add((*path, key), f"required: {hint}")
        return out

    def messages(self) -> list[str]:
        return [self._format(path, message) for path, message in self.problems]

    def _format(self, path: _KeyPath, message: str) -> str:
        line = next((self.lines[path[:n]] for n in range(len(path), 0, -1) if path[:n] in self.lines), None)
        return format_problem(self.source, _dotted(path), message + (f" (line {line})" if line else ""))


def _unknown(key: str, known: Iterable[str]) -> str:
    choices = list(known)
    close = difflib.get_close_matches(key, choices, n=1, cutoff=0.6)
    if close:
        return f"unknown key; did you mean {close[0]}?"
    return f"unknown key; expected one of: {', '.join(choices)}"


def _control_problem(value: str, multiline: bool = False) -> str | None:
    """Config text ends up typed or pasted into a terminal, where a control character acts as a key."""
    bad = control_in(value, multiline)
    if bad is None:
        return None
    return (
        f"holds the control character {describe_control(bad[0])} ({json.dumps(value)}); typed into a "
        "terminal it would act as a key"
    )


def _no_controls(value: str, multiline: bool = False) -> None:
    problem = _control_problem(value, multiline)
    if problem is not None:
        raise _Invalid(problem)


def _text(what: str, pattern: re.Pattern[str] | None = None) -> _Convert:
    def convert(r: _Reader, path: _KeyPath, value: object) -> str:
        if not isinstance(value, str) or not value.strip():
            raise _Invalid(f"expected {what}, got {_describe_as_text(value)}")
        _no_controls(value)
        if pattern is not None and not pattern.fullmatch(value):
            raise _Invalid(f"expected {what}, got {_describe(value)}")
        return value

    return convert


def _optional(convert: _Convert) -> _Convert:
    def optional(r: _Reader, path: _KeyPath, value: object) -> Any:
        return None if value is None else convert(r, path, value)

    return optional


def _integer(minimum: int, maximum: int | None = None) -> _Convert:
    bound = f" >= {minimum}" if maximum is None else f" from {minimum} to {maximum}"

    def convert(r: _Reader, path: _KeyPath, value: object) -> int:
        # bool is an int subclass in Python, but `max: yes` is never meant as 1.
        if (
            isinstance(value, bool)
            or not isinstance(value, int)
            or value < minimum
            or (maximum is not None and value > maximum)
        ):
            raise _Invalid(f"expected an integer{bound}, got {_describe(value)}")
        return value

    return convert


def _boolean(r: _Reader, path: _KeyPath, value: object) -> bool:
    if not isinstance(value, bool):
        raise _Invalid(f"expected true or false, got {_describe(value)}")
    return value


def _choice(options: tuple[str, ...]) -> _Convert:
    def convert(r: _Reader, path: _KeyPath, value: object) -> str:
        if not isinstance(value, str) or value not in options:
            raise _Invalid(f"expected one of {', '.join(options)}, got {_describe(value)}")
        return value

    return convert


def _duration(positive: bool) -> _Convert:
    def convert(r: _Reader, path: _KeyPath, value: object) -> float:
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise _Invalid(f"expected a duration like {DURATION_EXAMPLES}, got {_describe(value)}")
        try:
            seconds = parse_duration(value)
        except ValueError as exc:
            raise _Invalid(str(exc)) from None
        if positive and seconds == 0:
            raise _Invalid(f"expected a duration above zero, got {_describe(value)}")
        return seconds

    return convert


_SIZE = re.compile(r"(\d+(?:\.\d+)?)(B|KB|MB|GB|KiB|MiB|GiB)")
_SIZE_UNITS = {"B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "KiB": 2**10, "MiB": 2**20, "GiB": 2**30}


def _size(r: _Reader, path: _KeyPath, value: object) -> int:
    wanted = "expected a size in bytes >= 1 (an integer, or like 512KiB, 1MiB, 50MB)"
    if isinstance(value, bool):
        raise _Invalid(f"{wanted}, got {_describe(value)}")
    if isinstance(value, int):
        size = value
    elif isinstance(value, str) and (match := _SIZE.fullmatch(value.strip())):
        size = math.floor(float(match[1]) * _SIZE_UNITS[match[2]])
    else:
        raise _Invalid(f"{wanted}, got {_describe(value)}")
    if size < 1:
        raise _Invalid(f"{wanted}, got {_describe(value)}")
    return size


_VARIABLE = re.compile(r"\$(?:\$|\{([A-Za-z_][A-Za-z0-9_]*)\}|([A-Za-z_][A-Za-z0-9_]*)|)")


def _expand_variables(text: str) -> str:
    def substitute(match: re.Match[str]) -> str:
        if match[0] == "$$":
            return "$"
        name = match[1] or match[2]
        if not name:
            raise _Invalid(
                f"a lone $ in {json.dumps(text)}: write $$ for a dollar sign, or $NAME / ${{NAME}}"
            )
        value = os.environ.get(name)
        if value is None:
            raise _Invalid(f"${name} is not set in the environment (in {json.dumps(text)})")
        return value

    return _VARIABLE.sub(substitute, text)


def _path(r: _Reader, path: _KeyPath, value: object) -> Path:
    if not isinstance(value, str) or not value.strip():
        raise _Invalid(f"expected a path, got {_describe_as_text(value)}")
    _no_controls(value)
    try:
        expanded = Path(_expand_variables(value)).expanduser()
    except RuntimeError:
        raise _Invalid(f"cannot expand the ~ in {json.dumps(value)}: no such user") from None
    # normpath, not resolve(): the folder may not exist yet and its symlinks are the user's business.
    return Path(os.path.normpath(r.base / expanded))


def _same_place(path: Path) -> Path:
    """Where `path` really is, so two spellings of one folder compare equal."""
    try:
        return path.resolve()
    except (OSError, RuntimeError):
        return path


def _url_of(schemes: tuple[str, ...], wanted: str, port: bool = False) -> _Convert:
    """A URL with one of `schemes`, a host and no whitespace; with `port`, its port (if any) a number."""

    def convert(r: _Reader, path: _KeyPath, value: object) -> str:
        if not isinstance(value, str):
            raise _Invalid(f"{wanted}, got {_describe_as_text(value)}")
        try:
            parts = urlsplit(value)
            valid = parts.scheme in schemes and bool(parts.hostname) and not re.search(r"\s", value)
            if port:
                parts.port  # noqa: B018  (raises on a port that is not a number)
        except ValueError:
            valid = False
        if not valid:
            raise _Invalid(f"{wanted}, got {_describe(value)}")
        return value

    return convert


_url = _url_of(("http", "https"), "expected an http:// or https:// URL")


_LISTEN = re.compile(r"\[([^\]]+)\]:(\d+)|([^:\[\]]+):(\d+)")
_HOSTNAME = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)(?:\.(?!-)[A-Za-z0-9-]{1,63}(?<!-))*")


def _listen(r: _Reader, path: _KeyPath, value: object) -> tuple[str, int]:
    wanted = "expected host:port such as 127.0.0.1:8765 or [::1]:8765"
    match = _LISTEN.fullmatch(value.strip()) if isinstance(value, str) else None
    if match is None:
        raise _Invalid(f"{wanted}, got {_describe(value)}")
    host, port = (match[1], int(match[2])) if match[1] else (match[3], int(match[4]))
    try:
        address = ipaddress.ip_address(host)
        # A bare IPv6 address cannot reach here (its colons fail the pattern); a bracketed one must be IPv6.
        host_ok = address.version == 6 or not match[1]
    except ValueError:
        host_ok = not match[1] and bool(_HOSTNAME.fullmatch(host))
    if not host_ok:
        raise _Invalid(f"{wanted}, got {_describe(value)} (not a valid host)")
    if port > 65535:
        raise _Invalid(f"{wanted}, got {_describe(value)} (ports go up to 65535)")
    return host, port


def _template(r: _Reader, path: _KeyPath, value: object) -> str:
    if not isinstance(value, str):
        raise _Invalid(f"expected a text with {{file}} and {{body}}, got {_describe_as_text(value)}")
    _no_controls(value, multiline=True)
    try:
        names = [name for _, name, _, _ in string.Formatter().parse(value) if name is not None]
        unknown = [name for name in names if name not in MESSAGE_FIELDS]
        if not unknown:
            value.format(**dict.fromkeys(MESSAGE_FIELDS, ""))
    except (ValueError, IndexError, KeyError) as exc:
        raise _Invalid(
            f"not a valid template ({exc}); use {{file}} and {{body}}, and {{{{ }}}} for braces"
        ) from None
    if unknown:
        shown = ", ".join("{" + name + "}" for name in unknown)
        raise _Invalid(f"unknown field {shown}; the fields are {{file}} and {{body}} ({{{{ }}}} for braces)")
    if not value.startswith(TEMPLATE_START):
        raise _Invalid(
            f"must start with {TEMPLATE_START} (got {json.dumps(value[:40])}): the [<id>.md] that the "
            "agent echoes first is how a restart tells which session holds which task"
        )
    return value


def _string_list(r: _Reader, path: _KeyPath, value: object) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise _Invalid(f"expected a list of strings, got {_describe_as_text(value)}")
    items: list[str] = []
    for i, item in enumerate(value):
        problem = _control_problem(item) if isinstance(item, str) else None
        if problem is not None:
            r.add((*path, i), problem)
        elif isinstance(item, str):
            items.append(item)
        else:
            r.add((*path, i), f"expected a string, got {_describe_as_text(item)}")
    return tuple(items)


_SESSION_NAME = _text("a tmux session name of letters, digits, - and _", re.compile(r"[A-Za-z0-9_-]+"))
_PREFIX = _text("a session name prefix of letters, digits, - and _", re.compile(r"[A-Za-z0-9_-]+"))
_ACCOUNT_NAME = _text(
    "an account name of letters, digits and . _ @ + -", re.compile(r"[A-Za-z0-9][A-Za-z0-9._@+-]*")
)
_SOCKET_NAME = _text("a tmux socket name of letters, digits, . - and _", re.compile(r"[A-Za-z0-9._-]+"))
_ENV_NAME = _text("an environment variable name", re.compile(r"[A-Za-z_][A-Za-z0-9_]*"))
_MODEL = _text("a model name without spaces", re.compile(r"\S+"))
_COMMAND = _text("a command")


# --- sections ----------------------------------------------------------------------------------------------


def _tmux(r: _Reader, path: _KeyPath, raw: object) -> TmuxConfig:
    return TmuxConfig(**r.section(path, raw, {"socket_name": _optional(_SOCKET_NAME)}))


def _models(r: _Reader, path: _KeyPath, raw: object) -> ModelsConfig:
    # Only `default` must name a model: every other priority falls back to it.
    spec = {priority: _MODEL if priority == "default" else _optional(_MODEL) for priority in PRIORITIES}
    return ModelsConfig(**r.section(path, raw, spec, example=" of priority to model, like {critical: opus}"))


def _agent(r: _Reader, path: _KeyPath, raw: object) -> AgentConfig:
    spec: dict[str, _Convert] = {
        "command": _COMMAND,
        "args": _string_list,
        "models": _models,
        "prompt_timeout": _duration(positive=True),
        "resume_dir": _path,
        "message_template": _template,
        "install_stop_hook": _boolean,
    }
    return AgentConfig(**r.section(path, raw, spec))


def _tasks(r: _Reader, path: _KeyPath, raw: object) -> TasksConfig:
    return TasksConfig(**r.section(path, raw, {"max_bytes": _size, "settle": _duration(positive=False)}))


def _accounts(r: _Reader, path: _KeyPath, raw: object) -> tuple[Account, ...]:
    if not isinstance(raw, list):
        raise _Invalid(f"expected a list of accounts, each with name and home, got {_describe(raw)}")
    if not raw:
        raise _Invalid("expected at least one account, got an empty list")
    accounts: list[Account] = []
    names: dict[str, int] = {}
    homes: dict[Path, tuple[int, str]] = {}
    required = {
        "name": "a short name, like primary",
        "home": "the account's CLAUDE_CONFIG_DIR, like ~/.claude-a",
    }
    for i, item in enumerate(raw):
        at = (*path, i)
        values = r.section(
            at,
            item,
            {"name": _ACCOUNT_NAME, "home": _path},
            required,
            " like {name: primary, home: ~/.claude-a}",
        )
        name, home = values.get("name"), values.get("home")
        if name is not None:
            if name in names:
                r.add((*at, "name"), f"{json.dumps(name)} is already the name of accounts[{names[name]}]")
            else:
                names[name] = i
        if home is not None:
            place = _same_place(home)
            if place in homes:
                first, first_name = homes[place]
                r.add((*at, "home"), f"{home} is already the home of accounts[{first}] ({first_name})")
            else:
                homes[place] = (i, name or "unnamed")
        if name is not None and home is not None:
            accounts.append(Account(name=name, home=home))
    return tuple(accounts)


def _dedicated(r: _Reader, path: _KeyPath, raw: object) -> tuple[DedicatedSession, ...]:
    if not isinstance(raw, list):
        raise _Invalid(f"expected a list of sessions, each with name and project, got {_describe(raw)}")
    sessions: list[DedicatedSession] = []
    names: dict[str, int] = {}
    required = {"name": "the tmux session name", "project": "the folder the session works in"}
    for i, item in enumerate(raw):
        at = (*path, i)
        example = " like {name: ccl-1-myproject, project: ~/src/myproject}"
        values = r.section(at, item, {"name": _SESSION_NAME, "project": _path}, required, example)
        name = values.get("name")
        if name is not None:
            if name in names:
                r.add(
                    (*at, "name"), f"{json.dumps(name)} is already the name of pool.dedicated[{names[name]}]"
                )
            else:
                names[name] = i
        if name is not None and "project" in values:
            sessions.append(DedicatedSession(name=name, project=values["project"]))
    return tuple(sessions)


def _autonomous(r: _Reader, path: _KeyPath, raw: object) -> AutonomousPool:
    spec = {"prefix": _PREFIX, "start_index": _integer(0), "min": _integer(0), "max": _integer(1)}
    pool = AutonomousPool(**r.section(path, raw, spec))
    if r.clean(path) and pool.min > pool.max:
        r.add((*path, "min"), f"{pool.min} is more than max ({pool.max})")
    return pool


def _pool(r: _Reader, path: _KeyPath, raw: object) -> PoolConfig:
    pool = PoolConfig(**r.section(path, raw, {"dedicated": _dedicated, "autonomous": _autonomous}))
    items = raw.get("dedicated") if isinstance(raw, dict) else None
    if r.clean((*path, "autonomous")) and isinstance(items, list):
        auto = pool.autonomous
        span = f"{auto.prefix}{auto.start_index} to {auto.prefix}{auto.start_index + auto.max - 1}"
        # Read names from the raw list: its indices are the ones the user sees in the file.
        for i, item in enumerate(items):
            name = item.get("name") if isinstance(item, dict) else None
            if isinstance(name, str) and auto.contains(name):
                r.add(
                    (*path, "dedicated", i, "name"),
                    f"{json.dumps(name)} is inside the autonomous pool's range ({span}); "
                    "rename it or move pool.autonomous.start_index",
                )
    return pool


def _watcher(r: _Reader, path: _KeyPath, raw: object) -> WatcherConfig:
    spec = {
        "interval": _duration(positive=True),
        "idle_timeout": _duration(positive=True),
        "done_signal_dir": _path,
    }
    return WatcherConfig(**r.section(path, raw, spec))


def _quota(r: _Reader, path: _KeyPath, raw: object) -> QuotaConfig:
    spec = {"reactivate_cooldown": _duration(positive=False), "prefer_first": _boolean}
    return QuotaConfig(**r.section(path, raw, spec))


def _not_shorter(
    r: _Reader, path: _KeyPath, longer: tuple[str, float], shorter: tuple[str, float], why: str
) -> None:
    """Report the `longer` duration of a section read cleanly when it is below the `shorter` one."""
    (key, value), (other, floor) = longer, shorter
    if r.clean(path) and value < floor:
        r.add(
            (*path, key),
            f"{format_duration(value)} is shorter than {other} ({format_duration(floor)}): {why}",
        )


def _delegation(r: _Reader, path: _KeyPath, raw: object) -> DelegationConfig:
    positive = _duration(positive=True)
    spec = {
        "url": _optional(_url),
        "api_key_env": _ENV_NAME,
        "request_timeout": positive,
        "call_timeout": positive,
        "job_timeout": positive,
        "unknown_status_timeout": positive,
        "max_result_bytes": _size,
    }
    delegation = DelegationConfig(**r.section(path, raw, spec))
    longer = ("call_timeout", delegation.call_timeout)
    shorter = ("request_timeout", delegation.request_timeout)
    _not_shorter(r, path, longer, shorter, "no request could take its full time")
    return delegation


def _watchdog(r: _Reader, path: _KeyPath, raw: object) -> WatchdogConfig:
    positive = _duration(positive=True)
    spec = {"blocked_warn": positive, "blocked_fail": positive, "stalled_after": positive}
    watchdog = WatchdogConfig(**r.section(path, raw, spec))
    longer = ("blocked_fail", watchdog.blocked_fail)
    shorter = ("blocked_warn", watchdog.blocked_warn)
    _not_shorter(r, path, longer, shorter, "the warning would never come first")
    return watchdog


def _status_api(r: _Reader, path: _KeyPath, raw: object) -> StatusApiConfig:
    status_api = StatusApiConfig(
        **r.section(path, raw, {"listen": _optional(_listen), "allow_remote": _boolean})
    )
    listen = status_api.listen
    if r.clean(path) and listen is not None and not status_api.allow_remote and not is_loopback(listen[0]):
        r.add(
            (*path, "listen"),
            f"{listen[0]} is not a loopback address; use 127.0.0.1, or set status_api.allow_remote: true "
            "to serve other machines",
        )
    return status_api


def _notifications(r: _Reader, path: _KeyPath, raw: object) -> NotificationsConfig:
    spec = {"webhook": _optional(_url), "webhook_format": _choice(WEBHOOK_FORMATS), "desktop": _boolean}
    return NotificationsConfig(**r.section(path, raw, spec))


def _janitor(r: _Reader, path: _KeyPath, raw: object) -> JanitorConfig:
    spec = {
        "keep_days": _integer(1),
        "inbox_stale_after": _duration(positive=True),
        "events_max_bytes": _size,
    }
    return JanitorConfig(**r.section(path, raw, spec))


def _screen(r: _Reader, path: _KeyPath, raw: object) -> ScreenConfig:
    return ScreenConfig(**r.section(path, raw, {"patterns_file": _optional(_path)}))


_nats_url = _url_of(("nats", "tls"), "expected a NATS server URL like nats://127.0.0.1:4222", port=True)


def default_host() -> str:
    """This machine's name as a fleet host name: letters, digits, - and _ only."""
    import socket

    return re.sub(r"[^A-Za-z0-9_-]+", "-", socket.gethostname()).strip("-") or "host"


_FLEET_NAME = _text("a name of letters, digits, - and _", re.compile(r"[A-Za-z0-9_-]{1,64}"))


def _fleet(r: _Reader, path: _KeyPath, raw: object) -> FleetConfig | None:
    if raw is None:  # `fleet: null` (or every key commented out): this host works alone
        return None
    positive = _duration(positive=True)
    spec = {
        "url": _nats_url,
        "host": _FLEET_NAME,
        "prefix": _FLEET_NAME,
        "heartbeat": positive,
        "silent_after": positive,
        "connect_timeout": positive,
        "ack_wait": positive,
        "takeover_after": positive,
    }
    required = {"url": "the NATS server with JetStream, like nats://127.0.0.1:4222"}
    values = r.section(path, raw, spec, required)
    if "url" not in values:
        return None
    values.setdefault("host", default_host())
    fleet = FleetConfig(**values)
    _not_shorter(
        r,
        path,
        ("silent_after", fleet.silent_after),
        ("heartbeat", fleet.heartbeat),
        "a host would be shown silent between two of its heartbeats",
    )
    _not_shorter(
        r,
        path,
        ("takeover_after", fleet.takeover_after),
        ("silent_after", fleet.silent_after),
        "a task would be taken from a host not even shown silent",
    )
    return fleet


_TOP: dict[str, _Convert] = {
    "tmux": _tmux,
    "agent": _agent,
    "tasks": _tasks,
    "accounts": _accounts,
    "shared_dir": _path,
    "pool": _pool,
    "projects_dir": _path,
    "watcher": _watcher,
    "quota": _quota,
    "state_dir": _path,
    "delegation": _delegation,
    "watchdog": _watchdog,
    "status_api": _status_api,
    "notifications": _notifications,
    "janitor": _janitor,
    "screen": _screen,
    "fleet": _fleet,
}


def _build(
    data: object, source: Path | None, lines: Mapping[_KeyPath, int]
) -> tuple[Config | None, list[str]]:
    r = _Reader(source, lines)
    if not isinstance(data, dict):
        message = (
            f"expected a mapping of sections (tmux:, accounts:, ...) at the top level, got {_describe(data)}"
        )
        return None, [format_problem(source, "", message)]
    required = {
        "accounts": "list the accounts to fail over between, like [{name: primary, home: ~/.claude-a}]"
    }
    values = r.section((), data, _TOP, required)
    accounts: tuple[Account, ...] = values.get("accounts", ())
    config = Config(**values, source=source) if accounts else None
    if config is not None and r.clean(("shared_dir",)):
        shared = _same_place(config.shared_dir)
        for i, account in enumerate(config.accounts):
            if _same_place(account.home) == shared:
                r.add(
                    ("accounts", i, "home"),
                    f"{account.home} is also shared_dir; an account needs its own folder",
                )
    if r.problems:
        return None, r.messages()
    return config, []


# --- files ------------------------------------------------------------------------------------------------


def _node_lines(
    node: yaml.Node, path: _KeyPath, lines: dict[_KeyPath, int], r: _Reader, active: set[int]
) -> None:
    """Record the line of every key and list item, and report keys given twice (YAML keeps the last)."""
    if id(node) in active:
        return  # an alias that refers to its own ancestor
    active.add(id(node))
    if isinstance(node, yaml.MappingNode):
        first_line: dict[str, int] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == "tag:yaml.org,2002:merge":
                continue
            child = (*path, key_node.value)
            line = key_node.start_mark.line + 1
            if key_node.value in first_line:
                r.add(
                    child,
                    f"given twice (first on line {first_line[key_node.value]}); only this last one counts",
                )
            else:
                first_line[key_node.value] = line
            # The last occurrence is the one in effect, so later problems point at it.
            lines[child] = line
            _node_lines(value_node, child, lines, r, active)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            lines[(*path, i)] = item.start_mark.line + 1
            _node_lines(item, (*path, i), lines, r, active)
    active.discard(id(node))


def init_command(path: Path) -> str:
    """The `cfo init` that writes `path`: with `--config` unless it is where cfo looks by default."""
    if os.path.abspath(path) == os.path.abspath(default_config_path()):
        return "cfo init"
    return f"cfo init --config {shlex.quote(str(path))}"


def _read(path: Path) -> str:
    try:
        return path.read_bytes().decode("utf-8-sig")
    except FileNotFoundError:
        raise ConfigError(
            f"{path}: no such file (write a commented example with: {init_command(path)})"
        ) from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a directory, not a config file") from None
    except PermissionError:
        raise ConfigError(f"{path}: cannot read it: permission denied") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read it: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte {exc.start})") from None


def _yaml_problem(path: Path, exc: yaml.YAMLError) -> str:
    if isinstance(exc, yaml.MarkedYAMLError):
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        what = exc.problem or exc.context or "cannot be parsed"
        context = f" ({exc.context})" if exc.problem and exc.context else ""
        return f"{path}: {where}not valid YAML: {what}{context}"
    return f"{path}: not valid YAML: {exc}"


def _load(path: Path) -> tuple[Config | None, list[str]]:
    source = Path(os.path.abspath(path.expanduser()))
    try:
        text = _read(source)
    except ConfigError as exc:
        return None, exc.problems
    lines: dict[_KeyPath, int] = {}
    duplicates = _Reader(source, lines)
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None, [
                f"{source}: the file is empty; it needs at least accounts (cfo init writes an example)"
            ]
        # Before construction, which folds `<<` merge keys into the mappings they extend.
        _node_lines(node, (), lines, duplicates, set())
        data = loader.construct_document(node)
    except yaml.YAMLError as exc:
        return None, [_yaml_problem(source, exc)]
    finally:
        loader.dispose()
    config, problems = _build(data, source, lines)
    problems = duplicates.messages() + problems
    return (None if problems else config), problems


def check_config(path: Path) -> list[str]:
    """Every problem with the config at `path`, one line each; empty when it is valid."""
    return _load(path)[1]


def load_config(path: Path) -> Config:
    """The config at `path`; raises ConfigError listing every problem found."""
    config, problems = _load(path)
    if config is None:
        raise ConfigError(problems)
    return config


def config_from_dict(data: Mapping[str, Any], source: Path | None = None) -> Config:
    """A config from parsed data (tests, the demo); relative paths are taken from `source`'s folder."""
    config, problems = _build(dict(data) if isinstance(data, Mapping) else data, source, {})
    if config is None:
        raise ConfigError(problems)
    return config
