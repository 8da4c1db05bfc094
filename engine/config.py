"""The config as frozen dataclasses with their defaults, and the error that lists a config's problems."""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

PRIORITIES = ("critical", "high", "default", "low")
MESSAGE_FIELDS = ("file", "body")
TEMPLATE_START = "[{file}]"
WEBHOOK_FORMATS = ("json", "ntfy")
WebhookFormat = Literal["json", "ntfy"]

_CANONICAL_INDEX = re.compile(r"0|[1-9][0-9]*")


class ConfigError(Exception):
    """The config cannot be used; `problems` holds every reason, one line each, naming file and key."""

    def __init__(self, problems: str | Iterable[str]) -> None:
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        super().__init__("\n".join(self.problems))


def format_problem(source: Path | None, key: str, message: str) -> str:
    """One problem line, `<file>: <key path>: <message>`, the form every `cfo check` line takes."""
    return ": ".join(part for part in (str(source) if source else "", key, message) if part)


def _in_home(relative: str) -> Callable[[], Path]:
    # Evaluated when a config is built, so a HOME set by a test or a service unit is honoured.
    return lambda: Path.home() / relative


@dataclass(frozen=True)
class TmuxConfig:
    socket_name: str | None = None


@dataclass(frozen=True)
class ModelsConfig:
    critical: str | None = "opus"
    default: str = "sonnet"
    high: str | None = None
    low: str | None = None

    def for_priority(self, priority: str) -> str:
        specific = {"critical": self.critical, "high": self.high, "low": self.low}.get(priority)
        return specific or self.default


@dataclass(frozen=True)
class AgentConfig:
    command: str = "claude"
    args: tuple[str, ...] = ("--dangerously-skip-permissions",)
    models: ModelsConfig = field(default_factory=ModelsConfig)
    prompt_timeout: float = 30.0
    resume_dir: Path = field(default_factory=_in_home(".claude-context"))
    message_template: str = "[{file}] {body}"
    install_stop_hook: bool = False

    def model_for(self, priority: str) -> str:
        """The `--model` for a task of this priority; priorities without their own model use `default`."""
        return self.models.for_priority(priority)


@dataclass(frozen=True)
class TasksConfig:
    max_bytes: int = 1_048_576
    settle: float = 0.1


@dataclass(frozen=True)
class Account:
    name: str
    home: Path


@dataclass(frozen=True)
class DedicatedSession:
    name: str
    project: Path


@dataclass(frozen=True)
class AutonomousPool:
    prefix: str = "ccl-auto-"
    start_index: int = 11
    min: int = 2
    max: int = 10

    def names(self) -> tuple[str, ...]:
        """Every session name the pool may use, lowest index first."""
        return tuple(f"{self.prefix}{i}" for i in range(self.start_index, self.start_index + self.max))

    def contains(self, name: str) -> bool:
        """True if `name` is one of `names()`."""
        if not name.startswith(self.prefix):
            return False
        # `ccl-auto-011` is a different tmux session from `ccl-auto-11`, so only the canonical form counts.
        suffix = name[len(self.prefix) :]
        if not _CANONICAL_INDEX.fullmatch(suffix):
            return False
        return self.start_index <= int(suffix) < self.start_index + self.max


@dataclass(frozen=True)
class PoolConfig:
    dedicated: tuple[DedicatedSession, ...] = ()
    autonomous: AutonomousPool = field(default_factory=AutonomousPool)


@dataclass(frozen=True)
class WatcherConfig:
    interval: float = 1.0
    idle_timeout: float = 3600.0
    done_signal_dir: Path = Path("/tmp")


@dataclass(frozen=True)
class QuotaConfig:
    reactivate_cooldown: float = 300.0
    prefer_first: bool = False


@dataclass(frozen=True)
class DelegationConfig:
    url: str | None = None
    api_key_env: str = "SECUTOOLS_API_KEY"
    request_timeout: float = 10.0
    call_timeout: float = 30.0
    job_timeout: float = 7200.0
    unknown_status_timeout: float = 600.0
    max_result_bytes: int = 4 * 1_048_576

    def api_key(self, environ: Mapping[str, str] = os.environ) -> str | None:
        return environ.get(self.api_key_env) or None

    def enabled(self, environ: Mapping[str, str] = os.environ) -> bool:
        """Delegation is on when a URL is configured and the key variable is non-empty."""
        return self.url is not None and self.api_key(environ) is not None


@dataclass(frozen=True)
class WatchdogConfig:
    blocked_warn: float = 3600.0
    blocked_fail: float = 86400.0
    stalled_after: float = 900.0


@dataclass(frozen=True)
class StatusApiConfig:
    listen: tuple[str, int] | None = None
    allow_remote: bool = False


@dataclass(frozen=True)
class NotificationsConfig:
    webhook: str | None = None
    webhook_format: WebhookFormat = "json"
    desktop: bool = False


@dataclass(frozen=True)
class JanitorConfig:
    keep_days: int = 30
    inbox_stale_after: float = 7 * 86400.0
    events_max_bytes: int = 52_428_800


@dataclass(frozen=True)
class ScreenConfig:
    patterns_file: Path | None = None


@dataclass(frozen=True)
class FleetConfig:
    """Several hosts sharing one account state and one queue over NATS JetStream."""

    url: str
    host: str
    prefix: str = "cfo"  # names of its buckets: two fleets may share one server
    heartbeat: float = 2.0  # how often this host publishes its snapshot and checks the account state
    silent_after: float = 10.0  # a host whose snapshot is older than this is shown as silent
    connect_timeout: float = 2.0  # one connection attempt; failed ones are retried with backoff
    ack_wait: float = 60.0  # a task message not acknowledged (nor kept alive) this long is delivered again
    takeover_after: float = 120.0  # a task running on a host silent this long is taken over by another


@dataclass(frozen=True)
class Config:
    accounts: tuple[Account, ...]
    tmux: TmuxConfig = field(default_factory=TmuxConfig)
    agent: AgentConfig = field(default_factory=AgentConfig)
    tasks: TasksConfig = field(default_factory=TasksConfig)
    shared_dir: Path = field(default_factory=_in_home(".claude-shared"))
    pool: PoolConfig = field(default_factory=PoolConfig)
    projects_dir: Path = field(default_factory=_in_home("src"))
    watcher: WatcherConfig = field(default_factory=WatcherConfig)
    quota: QuotaConfig = field(default_factory=QuotaConfig)
    state_dir: Path = field(default_factory=_in_home(".local/state/cfo"))
    delegation: DelegationConfig = field(default_factory=DelegationConfig)
    watchdog: WatchdogConfig = field(default_factory=WatchdogConfig)
    status_api: StatusApiConfig = field(default_factory=StatusApiConfig)
    notifications: NotificationsConfig = field(default_factory=NotificationsConfig)
    janitor: JanitorConfig = field(default_factory=JanitorConfig)
    screen: ScreenConfig = field(default_factory=ScreenConfig)
    fleet: FleetConfig | None = None
    source: Path | None = None

    def account(self, name: str) -> Account | None:
        return next((a for a in self.accounts if a.name == name), None)

    def dedicated_session(self, name: str) -> DedicatedSession | None:
        return next((d for d in self.pool.dedicated if d.name == name), None)

    @property
    def dedicated_names(self) -> tuple[str, ...]:
        return tuple(d.name for d in self.pool.dedicated)

    @property
    def pool_names(self) -> tuple[str, ...]:
        """The autonomous pool's whole name range, whether or not those sessions exist."""
        return self.pool.autonomous.names()

    def is_managed(self, name: str) -> bool:
        """True for the sessions cfo may touch: dedicated ones and the autonomous range."""
        return name in self.dedicated_names or self.pool.autonomous.contains(name)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def default_config_path(environ: Mapping[str, str] = os.environ) -> Path:
    """`$CFO_CONFIG` if set and non-empty, else `~/.config/cfo/config.yaml`."""
    explicit = environ.get("CFO_CONFIG")
    if explicit:
        return Path(explicit).expanduser()
    home = environ.get("HOME")
    return (Path(home) if home else Path.home()) / ".config" / "cfo" / "config.yaml"
