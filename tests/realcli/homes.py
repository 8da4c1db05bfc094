"""Account homes (CLAUDE_CONFIG_DIR) for the real Claude Code CLI that start straight at its prompt."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

# The pinned version, also read by scripts/install-realcli.sh.
VERSION = Path(__file__).with_name("claude-code-version").read_text(encoding="utf-8").strip()
AuthMode = Literal["api_key", "oauth"]


@dataclass(frozen=True)
class Account:
    """A seeded home: its name, folder, the fake credential the mock tells it apart by, and its auth mode."""

    name: str
    home: Path
    credential: str
    auth: AuthMode


def fake_credential(name: str, auth: AuthMode) -> str:
    """A credential shaped like the real ones, unique per account name; nothing real ever sees it."""
    stem = "".join(c for c in name if c.isalnum()).lower() or "account"
    prefix = "sk-ant-api03-" if auth == "api_key" else "sk-ant-oat01-"
    return (prefix + "cfo-test-" + stem + "-").ljust(64, "0")


def agent_env(
    base_url: str, credential: str, auth: AuthMode, max_retries: int | None = None
) -> dict[str, str]:
    """The `env` block of settings.json: the mock as the API, the credential, nothing sent elsewhere."""
    env = {
        "ANTHROPIC_BASE_URL": base_url,
        "ANTHROPIC_API_KEY" if auth == "api_key" else "CLAUDE_CODE_OAUTH_TOKEN": credential,
        "DISABLE_AUTOUPDATER": "1",
        "DISABLE_TELEMETRY": "1",
        "DISABLE_ERROR_REPORTING": "1",
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        # As root, --dangerously-skip-permissions exits at once without it.
        "IS_SANDBOX": "1",
    }
    if max_retries is not None:
        env["CLAUDE_CODE_MAX_RETRIES"] = str(max_retries)
    return env


def _read_json(path: Path) -> dict[str, object]:
    if not path.exists():
        return {}
    data = json.loads(path.read_text(encoding="utf-8"))
    return data if isinstance(data, dict) else {}


def trust(home: Path, folders: Iterable[Path]) -> None:
    """Mark each folder as trusted and long used in the home's .claude.json.

    The CLI looks folders up by real path; trusting a folder covers the folders under it, but a folder
    whose own onboarding is not marked done gets the big welcome banner instead of the compact one.
    """
    path = home / ".claude.json"
    data = _read_json(path)
    projects = data.setdefault("projects", {})
    assert isinstance(projects, dict)
    for folder in folders:
        entry = projects.setdefault(os.path.realpath(folder), {})
        entry.update(hasTrustDialogAccepted=True, hasCompletedProjectOnboarding=True)
    path.write_text(json.dumps(data, indent=2), encoding="utf-8")


def seed_home(
    home: Path,
    name: str,
    base_url: str,
    auth: AuthMode = "api_key",
    trusted: Iterable[Path] = (),
    max_retries: int | None = None,
    extra_env: Mapping[str, str] | None = None,
) -> Account:
    """Write .claude.json and settings.json into `home` (created if missing) and return the account.

    Only those two files: `projects`, `session-env` and `file-history` are left for cfo to link to its
    shared folder, and settings.json is merged into so that a Stop hook cfo installed survives a reseed.
    """
    home.mkdir(parents=True, exist_ok=True)
    credential = fake_credential(name, auth)
    state = _read_json(home / ".claude.json")
    state.update(
        hasCompletedOnboarding=True,
        lastOnboardingVersion=VERSION,
        lastReleaseNotesSeen=VERSION,
        theme="dark",
        bypassPermissionsModeAccepted=True,
        # Past the first few starts the CLI shows its compact banner, as a long-used account does.
        numStartups=20,
        customApiKeyResponses={"approved": [credential[-20:]] if auth == "api_key" else [], "rejected": []},
    )
    (home / ".claude.json").write_text(json.dumps(state, indent=2), encoding="utf-8")
    trust(home, trusted)
    settings = _read_json(home / "settings.json")
    settings["skipDangerousModePermissionPrompt"] = True
    settings["env"] = agent_env(base_url, credential, auth, max_retries) | dict(extra_env or {})
    (home / "settings.json").write_text(json.dumps(settings, indent=2), encoding="utf-8")
    return Account(name, home, credential, auth)
