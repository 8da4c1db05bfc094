"""A cfo workspace whose agents are the real Claude Code CLI, its accounts served by the mock API."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from engine.tmux import LibtmuxClient
from tests.integration.pipeline_support import Workspace, make_workspace
from tests.realcli.driver import ARGS
from tests.realcli.homes import Account, AuthMode, seed_home
from tests.realcli.mockapi import MockApi

# A real CLI starts in a few seconds, two at once on two cores take longer; cfo's default is 30 s.
PROMPT_TIMEOUT = "30s"


@dataclass
class RealWorkspace:
    """The integration tests' workspace, plus the seeded accounts in config order and the mock."""

    ws: Workspace
    accounts: list[Account]
    api: MockApi

    def account(self, name: str) -> Account:
        return next(a for a in self.accounts if a.name == name)


def real_workspace(
    root: Path,
    tmux: LibtmuxClient,
    claude: Path,
    api: MockApi,
    projects: Sequence[str],
    agents: int = 2,
    auth: Sequence[AuthMode] = ("api_key", "api_key"),
    max_retries: int | None = None,
) -> RealWorkspace:
    """`make_workspace` with the real CLI as the agent and every account home seeded for the mock.

    The projects are created up front because each is trusted by name in every home (a project first
    seen later would still be trusted through `projects_dir`, but open on the CLI's welcome banner).
    """
    ws = make_workspace(root, tmux, agents=agents)
    ws.data["agent"].update(command=str(claude), args=list(ARGS), prompt_timeout=PROMPT_TIMEOUT)
    folders = [ws.projects_dir, *(ws.project(name) for name in projects)]
    accounts = [
        seed_home(Path(entry["home"]), entry["name"], api.url, mode, folders, max_retries)
        for entry, mode in zip(ws.data["accounts"], auth, strict=True)
    ]
    return RealWorkspace(ws, accounts, api)


def answers_in(conversations: Path) -> list[str]:
    """Every text the assistant wrote, over all conversation files under `conversations`."""
    texts = []
    for path in conversations.rglob("*.jsonl"):
        for line in path.read_text(encoding="utf-8").splitlines():
            record = json.loads(line)
            message = record.get("message") or {}
            if record.get("type") != "assistant" or not isinstance(message.get("content"), list):
                continue
            texts += [b.get("text", "") for b in message["content"] if b.get("type") == "text"]
    return texts
