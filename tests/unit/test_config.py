"""The config contract: defaults, value parsing, and one clear problem line per mistake."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import pytest
import yaml

from engine.config import (
    Account,
    AutonomousPool,
    Config,
    ConfigError,
    DedicatedSession,
    DelegationConfig,
    ModelsConfig,
    default_config_path,
    format_problem,
)
from engine.config_reader import check_config, config_from_dict, load_config
from engine.config_template import INIT_TEMPLATE, write_init
from engine.durations import format_duration, parse_duration

ACCOUNTS = "accounts: [{name: primary, home: ~/.claude-a}]\n"
NO_ACCOUNTS = "# accounts left out on purpose\n"


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    return home


def write(tmp_path: Path, text: str, name: str = "config.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def problems_in(tmp_path: Path, text: str) -> list[str]:
    return check_config(write(tmp_path, text))


def load_text(tmp_path: Path, text: str) -> Config:
    return load_config(write(tmp_path, text))


# --- valid configs ---------------------------------------------------------------------------------------


def test_only_accounts_gives_the_documented_defaults(tmp_path: Path, home: Path) -> None:
    path = write(tmp_path, ACCOUNTS)
    config = load_config(path)

    assert config.source == path
    assert config.accounts == (Account("primary", home / ".claude-a"),)
    assert config.tmux.socket_name is None
    agent = config.agent
    assert agent.command == "claude"
    assert agent.args == ("--dangerously-skip-permissions",)
    assert (agent.models.critical, agent.models.default) == ("opus", "sonnet")
    assert agent.prompt_timeout == 30.0
    assert agent.resume_dir == home / ".claude-context"
    assert agent.message_template == "[{file}] {body}"
    assert agent.install_stop_hook is False
    assert (config.tasks.max_bytes, config.tasks.settle) == (1_048_576, 0.1)
    assert config.shared_dir == home / ".claude-shared"
    assert config.pool.dedicated == ()
    assert config.pool.autonomous == AutonomousPool(prefix="ccl-auto-", start_index=11, min=2, max=10)
    assert config.projects_dir == home / "src"
    assert (config.watcher.interval, config.watcher.idle_timeout) == (1.0, 3600.0)
    assert config.watcher.done_signal_dir == Path("/tmp")
    assert (config.quota.reactivate_cooldown, config.quota.prefer_first) == (300.0, False)
    assert config.state_dir == home / ".local/state/cfo"
    delegation = config.delegation
    assert (delegation.url, delegation.api_key_env) == (None, "SECUTOOLS_API_KEY")
    assert (delegation.request_timeout, delegation.call_timeout) == (10.0, 30.0)
    assert (delegation.job_timeout, delegation.unknown_status_timeout) == (7200.0, 600.0)
    assert delegation.max_result_bytes == 4 * 1_048_576
    watchdog = config.watchdog
    assert (watchdog.blocked_warn, watchdog.blocked_fail, watchdog.stalled_after) == (3600.0, 86400.0, 900.0)
    assert (config.status_api.listen, config.status_api.allow_remote) == (None, False)
    notifications = config.notifications
    assert (notifications.webhook, notifications.webhook_format, notifications.desktop) == (
        None,
        "json",
        False,
    )
    assert config.janitor.keep_days == 30
    assert config.janitor.inbox_stale_after == 7 * 86400.0
    assert config.janitor.events_max_bytes == 52_428_800
    assert config.screen.patterns_file is None


def test_the_design_example_loads(tmp_path: Path, home: Path) -> None:
    config = load_text(
        tmp_path,
        """\
tmux: {socket_name: null}
agent: {command: claude, args: [--dangerously-skip-permissions], models: {critical: opus, default: sonnet},
        prompt_timeout: 30s, resume_dir: ~/.claude-context, message_template: "[{file}] {body}",
        install_stop_hook: false}
tasks: {max_bytes: 1048576, settle: 100ms}
accounts:
  - {name: primary, home: ~/.claude-a}
  - {name: secondary, home: ~/.claude-b}
shared_dir: ~/.claude-shared
pool:
  dedicated: [{name: ccl-1-conformvault, project: ~/src/conformvault}]
  autonomous: {prefix: ccl-auto-, start_index: 11, min: 2, max: 10}
projects_dir: ~/src
watcher: {interval: 1s, idle_timeout: 60m, done_signal_dir: /tmp}
quota: {reactivate_cooldown: 5m, prefer_first: false}
state_dir: ~/.local/state/cfo
delegation: {url: null, api_key_env: SECUTOOLS_API_KEY}
watchdog: {blocked_warn: 1h, blocked_fail: 24h, stalled_after: 15m}
status_api: {listen: 127.0.0.1:8765, allow_remote: false}
notifications: {webhook: https://ntfy.sh/cfo, webhook_format: ntfy, desktop: true}
janitor: {keep_days: 30, inbox_stale_after: 7d, events_max_bytes: 52428800}
screen: {patterns_file: ~/patterns.yaml}
""",
    )
    assert [a.name for a in config.accounts] == ["primary", "secondary"]
    assert config.pool.dedicated == (DedicatedSession("ccl-1-conformvault", home / "src/conformvault"),)
    assert config.status_api.listen == ("127.0.0.1", 8765)
    assert config.notifications.webhook_format == "ntfy"
    assert config.screen.patterns_file == home / "patterns.yaml"


def test_an_empty_section_means_its_defaults(tmp_path: Path) -> None:
    config = load_text(tmp_path, ACCOUNTS + "tmux:\nagent:\n  # every key commented out\n")
    assert config.tmux.socket_name is None
    assert config.agent.command == "claude"


def test_config_is_frozen(tmp_path: Path) -> None:
    config = load_text(tmp_path, ACCOUNTS)
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.agent.command = "other"  # type: ignore[misc]


def test_tilde_is_expanded_in_every_path(tmp_path: Path, home: Path) -> None:
    config = load_text(
        tmp_path,
        """\
accounts: [{name: a, home: ~/acc}]
agent: {resume_dir: ~/resume}
shared_dir: ~/shared
pool: {dedicated: [{name: mine, project: ~/src/mine}]}
projects_dir: ~/projects
watcher: {done_signal_dir: ~/signals}
state_dir: ~/state
screen: {patterns_file: ~/patterns.yaml}
""",
    )
    paths = [
        config.accounts[0].home,
        config.agent.resume_dir,
        config.shared_dir,
        config.pool.dedicated[0].project,
        config.projects_dir,
        config.watcher.done_signal_dir,
        config.state_dir,
        config.screen.patterns_file,
    ]
    assert paths == [
        home / name
        for name in ("acc", "resume", "shared", "src/mine", "projects", "signals", "state", "patterns.yaml")
    ]


def test_environment_variables_are_expanded_in_paths(
    tmp_path: Path, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CFO_TEST_ROOT", "/srv/cfo")
    config = load_text(
        tmp_path, ACCOUNTS + "state_dir: ${CFO_TEST_ROOT}/state\nprojects_dir: $HOME/price$$list/./src/\n"
    )
    assert config.state_dir == Path("/srv/cfo/state")
    assert config.projects_dir == home / "price$list/src"


def test_relative_paths_are_taken_from_the_config_folder(tmp_path: Path) -> None:
    config = load_text(tmp_path, ACCOUNTS + "state_dir: state\nprojects_dir: ../elsewhere\n")
    assert config.state_dir == tmp_path / "state"
    assert config.projects_dir == tmp_path.parent / "elsewhere"


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("500ms", 0.5),
        ("30s", 30.0),
        ("5m", 300.0),
        ("1h", 3600.0),
        ("7d", 604800.0),
        ("1h30m", 5400.0),
        ("1.5s", 1.5),
        ("0s", 0.0),
        (" 2m ", 120.0),
        ("45", 45.0),
        (45, 45.0),
        (0.25, 0.25),
    ],
    ids=lambda v: repr(v),
)
def test_durations_parse_to_seconds(text: str | float, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("10 minutes", 'got "10 minutes"'),
        ("-5s", "not negative"),
        ("abc", 'got "abc"'),
        ("", 'got ""'),
        ("5M", 'got "5M"'),
        ("30s5m", "largest to smallest"),
        ("5m5m", "largest to smallest"),
        (-1, "not negative"),
        (float("inf"), "finite"),
    ],
    ids=lambda v: repr(v),
)
def test_bad_durations_are_refused(text: str | float, fragment: str) -> None:
    with pytest.raises(ValueError, match=r"duration|units") as caught:
        parse_duration(text)
    assert fragment in str(caught.value)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0s"),
        (0.5, "500ms"),
        (30, "30s"),
        (90, "1m30s"),
        (3600, "1h"),
        (604800, "7d"),
        (90061.5, "1d1h1m1s500ms"),
    ],
)
def test_durations_format_in_the_config_spelling(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text
    assert parse_duration(text) == seconds


def test_durations_in_the_file_become_seconds(tmp_path: Path) -> None:
    config = load_text(
        tmp_path,
        ACCOUNTS + "watcher: {interval: 250ms, idle_timeout: 2h}\nquota: {reactivate_cooldown: 0s}\n",
    )
    assert (config.watcher.interval, config.watcher.idle_timeout) == (0.25, 7200.0)
    assert config.quota.reactivate_cooldown == 0.0


def test_the_delegation_bounds_read_as_durations_and_a_size(tmp_path: Path) -> None:
    bounds = "request_timeout: 2s, call_timeout: 5s, job_timeout: 30m, unknown_status_timeout: 90s"
    config = load_text(tmp_path, ACCOUNTS + f"delegation: {{{bounds}, max_result_bytes: 8MiB}}\n")
    delegation = config.delegation
    assert (delegation.request_timeout, delegation.call_timeout) == (2.0, 5.0)
    assert (delegation.job_timeout, delegation.unknown_status_timeout) == (1800.0, 90.0)
    assert delegation.max_result_bytes == 8 * 1_048_576


@pytest.mark.parametrize(
    ("text", "size"), [("4096", 4096), ("512KiB", 524288), ("1MiB", 1_048_576), ("50MB", 50 * 10**6)]
)
def test_sizes_are_integers_or_unit_strings(tmp_path: Path, text: str, size: int) -> None:
    config = load_text(
        tmp_path, ACCOUNTS + f"tasks: {{max_bytes: {text}}}\njanitor: {{events_max_bytes: {text}}}\n"
    )
    assert config.tasks.max_bytes == config.janitor.events_max_bytes == size


@pytest.mark.parametrize(
    ("text", "listen"),
    [
        ("127.0.0.1:8765", ("127.0.0.1", 8765)),
        ("localhost:80", ("localhost", 80)),
        ("'[::1]:8765'", ("::1", 8765)),
        ("127.0.0.1:0", ("127.0.0.1", 0)),
    ],
)
def test_status_api_listen_becomes_host_and_port(tmp_path: Path, text: str, listen: tuple[str, int]) -> None:
    assert load_text(tmp_path, ACCOUNTS + f"status_api: {{listen: {text}}}\n").status_api.listen == listen


def test_allow_remote_permits_a_public_listen_address(tmp_path: Path) -> None:
    config = load_text(tmp_path, ACCOUNTS + "status_api: {listen: 0.0.0.0:8765, allow_remote: true}\n")
    assert config.status_api.listen == ("0.0.0.0", 8765)


# --- derived accessors ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "inside"),
    [
        ("ccl-auto-11", True),
        ("ccl-auto-20", True),
        ("ccl-auto-10", False),
        ("ccl-auto-21", False),
        ("ccl-auto-011", False),
        ("ccl-auto-", False),
        ("ccl-auto-1x", False),
        ("other-12", False),
        ("ccl-auto-١٢", False),
    ],
)
def test_autonomous_pool_range(name: str, inside: bool) -> None:
    pool = AutonomousPool(prefix="ccl-auto-", start_index=11, min=2, max=10)
    assert pool.contains(name) is inside
    assert (name in pool.names()) is inside


def test_pool_names_dedicated_names_and_managed_sessions(tmp_path: Path, home: Path) -> None:
    config = load_text(
        tmp_path,
        ACCOUNTS
        + "pool:\n  dedicated: [{name: ccl-1-vault, project: ~/v}]\n"
        + "  autonomous: {prefix: w-, start_index: 0, min: 0, max: 3}\n",
    )
    assert config.pool_names == ("w-0", "w-1", "w-2")
    assert config.dedicated_names == ("ccl-1-vault",)
    assert config.dedicated_session("ccl-1-vault") == DedicatedSession("ccl-1-vault", home / "v")
    assert config.dedicated_session("w-0") is None
    assert [n for n in ("w-0", "w-2", "w-3", "ccl-1-vault", "mine") if config.is_managed(n)] == [
        "w-0",
        "w-2",
        "ccl-1-vault",
    ]


def test_account_by_name(tmp_path: Path, home: Path) -> None:
    config = load_text(tmp_path, "accounts: [{name: a, home: ~/a}, {name: b, home: ~/b}]\n")
    assert config.account("b") == Account("b", home / "b")
    assert config.account("c") is None


@pytest.mark.parametrize(
    ("models", "priority", "model"),
    [
        (ModelsConfig(), "critical", "opus"),
        (ModelsConfig(), "high", "sonnet"),
        (ModelsConfig(), "default", "sonnet"),
        (ModelsConfig(), "low", "sonnet"),
        (ModelsConfig(high="opus", low="haiku"), "high", "opus"),
        (ModelsConfig(high="opus", low="haiku"), "low", "haiku"),
        (ModelsConfig(critical=None, default="haiku"), "critical", "haiku"),
    ],
)
def test_model_for_priority(models: ModelsConfig, priority: str, model: str) -> None:
    assert models.for_priority(priority) == model


def test_agent_model_for_reads_the_file(tmp_path: Path) -> None:
    agent = load_text(tmp_path, ACCOUNTS + "agent: {models: {default: haiku, low: null}}\n").agent
    assert (agent.model_for("critical"), agent.model_for("low"), agent.model_for("default")) == (
        "opus",
        "haiku",
        "haiku",
    )


@pytest.mark.parametrize(
    ("url", "environ", "enabled"),
    [
        (None, {"SECUTOOLS_API_KEY": "k"}, False),
        ("https://jobs.example", {}, False),
        ("https://jobs.example", {"SECUTOOLS_API_KEY": ""}, False),
        ("https://jobs.example", {"SECUTOOLS_API_KEY": "k"}, True),
    ],
)
def test_delegation_is_on_with_a_url_and_a_key(
    url: str | None, environ: dict[str, str], enabled: bool
) -> None:
    assert DelegationConfig(url=url).enabled(environ) is enabled


def test_default_config_path(tmp_path: Path) -> None:
    assert default_config_path({"CFO_CONFIG": "/etc/cfo.yaml", "HOME": "/h"}) == Path("/etc/cfo.yaml")
    assert default_config_path({"CFO_CONFIG": "", "HOME": "/h"}) == Path("/h/.config/cfo/config.yaml")
    assert default_config_path({"HOME": "/h"}) == Path("/h/.config/cfo/config.yaml")


# --- problems ---------------------------------------------------------------------------------------------

# (id, YAML, key path, fragment of the message); ACCOUNTS is added when the YAML does not mention accounts.
PROBLEMS = [
    ("unknown-top-level", "acounts_extra: 1\n", "acounts_extra", "unknown key"),
    ("unknown-suggests", "tmux: {sockt_name: x}\n", "tmux.sockt_name", "did you mean socket_name?"),
    ("unknown-deep", "pool: {autonomous: {maxx: 3}}\n", "pool.autonomous.maxx", "did you mean max?"),
    (
        "unknown-in-account",
        "accounts: [{name: a, home: ~/a, email: a@b}]\n",
        "accounts[0].email",
        "unknown key",
    ),
    ("missing-accounts", NO_ACCOUNTS + "tmux: {socket_name: x}\n", "accounts", "required"),
    ("empty-accounts", "accounts: []\n", "accounts", "at least one account"),
    ("accounts-mapping", "accounts: {primary: ~/a}\n", "accounts", "expected a list of accounts"),
    ("account-not-mapping", "accounts: [primary]\n", "accounts[0]", "expected a mapping like {name: primary"),
    ("account-without-name", "accounts: [{home: ~/a}]\n", "accounts[0].name", "required"),
    ("account-without-home", "accounts: [{name: a}]\n", "accounts[0].home", "required"),
    (
        "account-same-name",
        "accounts: [{name: a, home: ~/a}, {name: a, home: ~/b}]\n",
        "accounts[1].name",
        '"a" is already the name of accounts[0]',
    ),
    (
        "account-same-home",
        "accounts: [{name: a, home: ~/x}, {name: b, home: $HOME/y/../x/}]\n",
        "accounts[1].home",
        "is already the home of accounts[0] (a)",
    ),
    (
        "account-home-is-shared-dir",
        "accounts: [{name: a, home: ~/shared}]\nshared_dir: ~/shared\n",
        "accounts[0].home",
        "also shared_dir",
    ),
    ("account-name-number", "accounts: [{name: 5, home: ~/a}]\n", "accounts[0].name", "got 5 (quote it"),
    (
        "account-name-spaces",
        "accounts: [{name: my account, home: ~/a}]\n",
        "accounts[0].name",
        "account name",
    ),
    (
        "dedicated-in-range",
        "pool: {dedicated: [{name: ccl-auto-12, project: ~/p}]}\n",
        "pool.dedicated[0].name",
        "inside the autonomous pool's range (ccl-auto-11 to ccl-auto-20)",
    ),
    (
        "dedicated-same-name",
        "pool: {dedicated: [{name: d, project: ~/p}, {name: d, project: ~/q}]}\n",
        "pool.dedicated[1].name",
        "already the name of pool.dedicated[0]",
    ),
    (
        "dedicated-without-project",
        "pool: {dedicated: [{name: d}]}\n",
        "pool.dedicated[0].project",
        "required",
    ),
    (
        "dedicated-bad-name",
        "pool: {dedicated: [{name: a.b, project: ~/p}]}\n",
        "pool.dedicated[0].name",
        "tmux",
    ),
    (
        "int-as-string",
        "pool: {autonomous: {max: ten}}\n",
        "pool.autonomous.max",
        'expected an integer >= 1, got "ten"',
    ),
    (
        "int-as-bool",
        "pool: {autonomous: {max: yes}}\n",
        "pool.autonomous.max",
        "expected an integer >= 1, got true",
    ),
    ("int-as-float", "janitor: {keep_days: 1.5}\n", "janitor.keep_days", "got 1.5"),
    ("max-zero", "pool: {autonomous: {max: 0, min: 0}}\n", "pool.autonomous.max", ">= 1, got 0"),
    ("min-negative", "pool: {autonomous: {min: -1}}\n", "pool.autonomous.min", ">= 0, got -1"),
    ("min-above-max", "pool: {autonomous: {min: 5, max: 3}}\n", "pool.autonomous.min", "more than max (3)"),
    (
        "bool-as-string",
        "quota: {prefer_first: 'yes'}\n",
        "quota.prefer_first",
        'expected true or false, got "yes"',
    ),
    ("bool-as-number", "agent: {install_stop_hook: 1}\n", "agent.install_stop_hook", "got 1"),
    ("string-as-yaml-bool", "tmux: {socket_name: no}\n", "tmux.socket_name", "quote the value"),
    (
        "list-as-string",
        "agent: {args: --verbose}\n",
        "agent.args",
        'expected a list of strings, got "--verbose"',
    ),
    ("list-item-number", "agent: {args: [--max-turns, 5]}\n", "agent.args[1]", "expected a string, got 5"),
    ("section-as-list", "watcher: [1s]\n", "watcher", "expected a mapping, got a list"),
    ("section-as-string", "agent: claude\n", "agent", 'expected a mapping, got "claude"'),
    ("path-as-number", "state_dir: 5\n", "state_dir", "expected a path"),
    (
        "path-unset-variable",
        "state_dir: $CFO_UNSET_VARIABLE/x\n",
        "state_dir",
        "$CFO_UNSET_VARIABLE is not set",
    ),
    ("path-lone-dollar", "state_dir: /a/$/b\n", "state_dir", "lone $"),
    ("duration-words", "watcher: {interval: 10 minutes}\n", "watcher.interval", 'got "10 minutes"'),
    ("duration-negative", "watcher: {idle_timeout: -5s}\n", "watcher.idle_timeout", "not negative"),
    ("duration-letters", "agent: {prompt_timeout: abc}\n", "agent.prompt_timeout", 'got "abc"'),
    ("duration-zero", "watcher: {interval: 0s}\n", "watcher.interval", "above zero"),
    ("duration-list", "tasks: {settle: [1s]}\n", "tasks.settle", "got a list"),
    (
        "blocked-fail-before-warn",
        "watchdog: {blocked_warn: 2h, blocked_fail: 30m}\n",
        "watchdog.blocked_fail",
        "30m is shorter than blocked_warn (2h)",
    ),
    ("size-words", "tasks: {max_bytes: one meg}\n", "tasks.max_bytes", "expected a size in bytes"),
    ("size-zero", "janitor: {events_max_bytes: 0}\n", "janitor.events_max_bytes", "got 0"),
    ("model-key", "agent: {models: {urgent: opus}}\n", "agent.models.urgent", "critical, high, default, low"),
    (
        "model-key-typo",
        "agent: {models: {critcal: opus}}\n",
        "agent.models.critcal",
        "did you mean critical?",
    ),
    ("model-key-number", "agent: {models: {1: opus}}\n", "agent.models.1", "unknown key"),
    ("model-default-null", "agent: {models: {default: null}}\n", "agent.models.default", "got null"),
    ("models-list", "agent: {models: [opus]}\n", "agent.models", "priority to model"),
    ("listen-no-port", "status_api: {listen: localhost}\n", "status_api.listen", "expected host:port"),
    ("listen-port-range", "status_api: {listen: '127.0.0.1:99999'}\n", "status_api.listen", "65535"),
    ("listen-bad-host", "status_api: {listen: 'ex ample:80'}\n", "status_api.listen", "not a valid host"),
    (
        "listen-bracketed-v4",
        "status_api: {listen: '[127.0.0.1]:80'}\n",
        "status_api.listen",
        "not a valid host",
    ),
    ("listen-number", "status_api: {listen: 8765}\n", "status_api.listen", "got 8765"),
    ("listen-remote", "status_api: {listen: 0.0.0.0:8765}\n", "status_api.listen", "allow_remote: true"),
    (
        "webhook-format",
        "notifications: {webhook_format: xml}\n",
        "notifications.webhook_format",
        "json, ntfy",
    ),
    ("webhook-url", "notifications: {webhook: ntfy.sh/x}\n", "notifications.webhook", "http:// or https://"),
    ("delegation-url", "delegation: {url: 'ftp://x'}\n", "delegation.url", "http:// or https://"),
    (
        "api-key-env",
        "delegation: {api_key_env: my-key}\n",
        "delegation.api_key_env",
        "environment variable name",
    ),
    (
        "request-timeout-zero",
        "delegation: {request_timeout: 0s}\n",
        "delegation.request_timeout",
        "above zero",
    ),
    ("job-timeout-words", "delegation: {job_timeout: forever}\n", "delegation.job_timeout", 'got "forever"'),
    (
        "unknown-status-timeout-negative",
        "delegation: {unknown_status_timeout: -1m}\n",
        "delegation.unknown_status_timeout",
        "not negative",
    ),
    (
        "call-timeout-under-request-timeout",
        "delegation: {request_timeout: 1m, call_timeout: 30s}\n",
        "delegation.call_timeout",
        "30s is shorter than request_timeout (1m): no request could take its full time",
    ),
    ("max-result-zero", "delegation: {max_result_bytes: 0}\n", "delegation.max_result_bytes", "got 0"),
    (
        "template-without-file",
        "agent: {message_template: '{body}'}\n",
        "agent.message_template",
        "must start with [{file}]",
    ),
    (
        "template-file-not-first",
        "agent: {message_template: 'Task {file}: {body}'}\n",
        "agent.message_template",
        'must start with [{file}] (got "Task {file}: {body}"): the [<id>.md] that the agent echoes first',
    ),
    (
        "template-field",
        "agent: {message_template: '{file} {title}'}\n",
        "agent.message_template",
        "unknown field {title}",
    ),
    (
        "template-braces",
        "agent: {message_template: '{file} {'}\n",
        "agent.message_template",
        "not a valid template",
    ),
    (
        "template-attribute",
        "agent: {message_template: '{file.x}'}\n",
        "agent.message_template",
        "unknown field {file.x}",
    ),
    ("path-control", 'projects_dir: "/src/a\\x15b"\n', "projects_dir", "control character U+0015 (Ctrl-U)"),
    ("args-control", 'agent: {args: ["a\\rb"]}\n', "agent.args[0]", "control character U+000D"),
    ("model-control", 'agent: {models: {default: "op\\x1bus"}}\n', "agent.models.default", "U+001B (Esc)"),
    (
        "template-control",
        'agent: {message_template: "[{file}] \\x1b{body}"}\n',
        "agent.message_template",
        "U+001B (Esc)",
    ),
    ("socket-slash", "tmux: {socket_name: a/b}\n", "tmux.socket_name", "tmux socket name"),
    ("prefix-dot", "pool: {autonomous: {prefix: a.}}\n", "pool.autonomous.prefix", "prefix"),
    ("command-empty", "agent: {command: ''}\n", "agent.command", 'expected a command, got ""'),
    (
        "duplicate-key",
        "tmux: {socket_name: a}\ntmux: {socket_name: b}\n",
        "tmux",
        "given twice (first on line",
    ),
]


@pytest.mark.parametrize(("text", "key", "fragment"), [p[1:] for p in PROBLEMS], ids=[p[0] for p in PROBLEMS])
def test_each_mistake_is_one_problem_naming_file_and_key(
    tmp_path: Path, text: str, key: str, fragment: str
) -> None:
    path = write(tmp_path, text if "accounts" in text else ACCOUNTS + text)
    problems = check_config(path)
    assert len(problems) == 1, problems
    assert problems[0].startswith(f"{path}: {key}: "), problems[0]
    assert fragment in problems[0]
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert caught.value.problems == problems


def test_problems_carry_the_line_of_the_key(tmp_path: Path) -> None:
    text = ACCOUNTS + "pool:\n  autonomous:\n    prefix: w-\n    max: ten\n"
    assert problems_in(tmp_path, text)[0].endswith('expected an integer >= 1, got "ten" (line 5)')


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        ACCOUNTS + "tmux: {sockt_name: x}\nwatcher: {interval: 10 minutes}\npool: {autonomous: {max: ten}}\n",
    )
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    keys = ["tmux.sockt_name", "watcher.interval", "pool.autonomous.max"]
    assert [p.split(": ")[1] for p in caught.value.problems] == keys
    assert str(caught.value).splitlines() == caught.value.problems
    assert check_config(path) == caught.value.problems


def test_a_bad_section_does_not_hide_problems_elsewhere(tmp_path: Path) -> None:
    problems = problems_in(
        tmp_path, "accounts: [{name: a}, {home: ~/b}]\nagent: 5\njanitor: {keep_days: 0}\n"
    )
    keys = [p.split(": ")[1] for p in problems]
    assert keys == ["accounts[0].home", "accounts[1].name", "agent", "janitor.keep_days"]


def test_dedicated_range_check_waits_for_a_valid_pool(tmp_path: Path) -> None:
    text = ACCOUNTS + "pool: {dedicated: [{name: ccl-auto-12, project: ~/p}], autonomous: {max: ten}}\n"
    assert [p.split(": ")[1] for p in problems_in(tmp_path, text)] == ["pool.autonomous.max"]


# --- files ------------------------------------------------------------------------------------------------


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "absent.yaml"
    with pytest.raises(ConfigError, match="no such file") as caught:
        load_config(path)
    assert caught.value.problems == [
        f"{path}: no such file (write a commented example with: cfo init --config {path})"
    ]


def test_directory_instead_of_file(tmp_path: Path) -> None:
    assert check_config(tmp_path) == [f"{tmp_path}: is a directory, not a config file"]


def test_unreadable_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path, ACCOUNTS)
    path.chmod(0)
    if os.access(path, os.R_OK):  # root reads anything: make the read fail as it would for a user
        original = Path.read_bytes

        def refuse(self: Path) -> bytes:
            if self == path:
                raise PermissionError(13, "Permission denied", str(self))
            return original(self)

        monkeypatch.setattr(Path, "read_bytes", refuse)
    assert check_config(path) == [f"{path}: cannot read it: permission denied"]


def test_file_that_is_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_bytes(b"accounts: [{name: caf\xe9, home: ~/a}]\n")
    assert check_config(path) == [f"{path}: not UTF-8 text (byte 21)"]


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("accounts:\n  - name: a\n   home: ~/a\n", "line 3, column 4"),
        ("tmux: {socket_name: x\n", "line 2, column 1"),
        ("tmux: [a\n\n\nagent: b\n", "line 4"),
        ("\tagent: x\n", "line 1, column 1"),
        ("a: 1\n---\nb: 2\n", "line 2"),
    ],
    ids=["bad-indent", "unclosed-brace", "unclosed-bracket", "tab", "two-documents"],
)
def test_file_that_is_not_yaml_names_the_line(tmp_path: Path, text: str, where: str) -> None:
    path = write(tmp_path, text)
    [problem] = check_config(path)
    assert problem.startswith(f"{path}: {where}")
    assert "not valid YAML" in problem


@pytest.mark.parametrize(
    ("text", "got"),
    [("- a\n- b\n", "a list"), ("just text\n", '"just text"'), ("42\n", "42")],
    ids=["list", "string", "number"],
)
def test_document_that_is_not_a_mapping(tmp_path: Path, text: str, got: str) -> None:
    path = write(tmp_path, text)
    [problem] = check_config(path)
    assert (
        problem
        == f"{path}: expected a mapping of sections (tmux:, accounts:, ...) at the top level, got {got}"
    )


@pytest.mark.parametrize("text", ["", "\n\n", "# only a comment\n"], ids=["empty", "blank", "comment"])
def test_empty_file(tmp_path: Path, text: str) -> None:
    path = write(tmp_path, text)
    assert check_config(path) == [
        f"{path}: the file is empty; it needs at least accounts (cfo init writes an example)"
    ]


def test_a_self_referencing_alias_is_reported_not_looped(tmp_path: Path) -> None:
    [problem] = problems_in(tmp_path, ACCOUNTS + "agent: {args: &a [*a]}\n")
    assert "agent.args[0]: expected a string, got a list" in problem


def test_yaml_merge_keys_are_not_duplicates(tmp_path: Path) -> None:
    config = load_text(tmp_path, "accounts:\n  - &a {name: a, home: ~/a}\n  - {<<: *a, name: b, home: ~/b}\n")
    assert [a.name for a in config.accounts] == ["a", "b"]


def test_config_from_dict_names_keys_without_a_file() -> None:
    with pytest.raises(ConfigError) as caught:
        config_from_dict({"accounts": [], "pool": {"autonomous": {"max": "ten"}}})
    assert caught.value.problems == [
        "accounts: expected at least one account, got an empty list",
        'pool.autonomous.max: expected an integer >= 1, got "ten"',
    ]


def test_config_from_dict_with_a_source_names_it(tmp_path: Path) -> None:
    source = tmp_path / "cfg.yaml"
    with pytest.raises(ConfigError, match=f"^{source}: accounts: required"):
        config_from_dict({}, source=source)
    config = config_from_dict({"accounts": [{"name": "a", "home": "rel"}]}, source=source)
    assert config.accounts[0].home == tmp_path / "rel"


def test_format_problem() -> None:
    assert (
        format_problem(Path("/c.yaml"), "pool.autonomous.max", "bad") == "/c.yaml: pool.autonomous.max: bad"
    )
    assert format_problem(None, "tmux", "bad") == "tmux: bad"
    assert format_problem(Path("/c.yaml"), "", "empty") == "/c.yaml: empty"


# --- cfo init ---------------------------------------------------------------------------------------------


def test_init_template_loads_with_the_defaults(tmp_path: Path) -> None:
    path = write_init(tmp_path / "deep" / "er" / "config.yaml")
    assert path.read_text(encoding="utf-8") == INIT_TEMPLATE
    config = load_config(path)
    assert [a.name for a in config.accounts] == ["primary", "secondary"]
    assert dataclasses.replace(config, source=None) == Config(accounts=config.accounts)


def test_init_template_shows_and_explains_every_key() -> None:
    data = yaml.safe_load(INIT_TEMPLATE)
    defaults = Config(accounts=())
    for section in dataclasses.fields(Config):
        if section.name == "source":
            continue
        assert section.name in data
        value = getattr(defaults, section.name)
        if dataclasses.is_dataclass(value):
            assert set(data[section.name]) == {f.name for f in dataclasses.fields(value)} - {"high", "low"}


def test_init_refuses_to_overwrite_unless_forced(tmp_path: Path) -> None:
    path = write(tmp_path, "# mine\n")
    with pytest.raises(ConfigError, match="already exists") as caught:
        write_init(path)
    assert caught.value.problems[0].startswith(f"{path}: ")
    assert path.read_text(encoding="utf-8") == "# mine\n"
    write_init(path, force=True)
    assert path.read_text(encoding="utf-8") == INIT_TEMPLATE


def test_init_refuses_a_directory(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="is a directory"):
        write_init(tmp_path, force=True)


def test_init_reports_a_folder_it_cannot_create(tmp_path: Path) -> None:
    blocker = write(tmp_path, "", name="file")
    with pytest.raises(ConfigError, match=f"^{blocker}/config.yaml: cannot create its folder"):
        write_init(blocker / "config.yaml")
