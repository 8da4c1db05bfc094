"""The demo workspace: example projects, two simulated accounts and a private tmux socket."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PROJECTS = ("webapp", "billing-api", "docs site")  # a space on purpose: paths are data, never shell

# (project, id, priority, title, directives, depends_on)
SCRIPTED: tuple[tuple[str, str, str, str, tuple[str, ...], tuple[str, ...]], ...] = (
    ("billing-api", "001-fix-rounding", "critical", "Fix rounding of refunds", ("sim: work 4s",), ()),
    ("webapp", "001-login-form", "high", "Validate the login form", ("sim: work 3s",), ()),
    (
        "webapp",
        "002-quota-banner",
        "default",
        "Show a banner when the API says usage limit reached",
        ('sim: say "The banner reads: usage limit reached, resets 3am"', "sim: work 2s"),
        (),
    ),
    ("docs site", "001-changelog", "low", "Write the changelog entry", ("sim: work 2s",), ()),
    (
        "docs site",
        "002-document-refunds",
        "default",
        "Document the refund rounding fix",
        ("sim: work 2s",),
        ("billing-api:001-fix-rounding",),
    ),
    (
        "billing-api",
        "002-flaky-server",
        "default",
        "Retry flaky webhooks",
        ("sim: error 529", "sim: work 2s"),
        (),
    ),
)


@dataclass(frozen=True)
class Workspace:
    root: Path
    socket_name: str
    config: dict[str, Any]

    @property
    def projects_dir(self) -> Path:
        return self.root / "src"


def agent_command() -> tuple[str, list[str]]:
    """The simulated agent's command: the installed script if present, else the module."""
    script = Path(sys.executable).with_name("cfo-sim-claude")
    if script.exists():
        return str(script), ["--dangerously-skip-permissions"]
    return sys.executable, ["-m", "engine.sim", "--dangerously-skip-permissions"]


def _task_text(title: str, priority: str, directives: tuple[str, ...], depends_on: tuple[str, ...]) -> str:
    head = [f"title: {title}", f"priority: {priority}"]
    if depends_on:
        head.append("depends_on: [" + ", ".join(f'"{d}"' for d in depends_on) + "]")
    return "---\n" + "\n".join(head) + "\n---\n" + title + ".\n" + "\n".join(directives) + "\n"


def write_tasks(projects_dir: Path, count: int) -> int:
    """Queue the scripted tasks, then plain filler tasks up to `count`; returns how many were written."""
    written = 0
    for project, task_id, priority, title, directives, deps in SCRIPTED[:count]:
        inbox = projects_dir / project / ".agent-queue" / "inbox"
        (inbox / f"{task_id}.md").write_text(_task_text(title, priority, directives, deps), encoding="utf-8")
        written += 1
    n = 0
    while written < count:
        n += 1
        project = PROJECTS[n % len(PROJECTS)]
        inbox = projects_dir / project / ".agent-queue" / "inbox"
        text = _task_text(f"Tidy module {n}", "default", (f"sim: work {2 + n % 4}s",), ())
        (inbox / f"1{n:02d}-tidy-module-{n}.md").write_text(text, encoding="utf-8")
        written += 1
    return written


def build_workspace(agents: int, tasks: int | None = None, root: Path | None = None) -> Workspace:
    """Create projects, accounts and a config dict for `agents` pool sessions and `tasks` tasks."""
    root = root or Path(tempfile.mkdtemp(prefix="cfo-demo-"))
    socket_name = f"cfo-demo-{os.getpid()}-{root.name[-6:]}"
    projects_dir = root / "src"
    for project in PROJECTS:
        queue = projects_dir / project / ".agent-queue"
        for folder in ("inbox", "done", "failed"):
            (queue / folder).mkdir(parents=True, exist_ok=True)
    homes = {name: root / "accounts" / name for name in ("primary", "secondary")}
    for home in homes.values():
        home.mkdir(parents=True, exist_ok=True)
    write_tasks(projects_dir, tasks if tasks is not None else max(len(SCRIPTED), 3 * agents))
    command, args = agent_command()
    config: dict[str, Any] = {
        "tmux": {"socket_name": socket_name},
        "agent": {
            "command": command,
            "args": args,
            "prompt_timeout": "20s",
            "resume_dir": str(root / "resume"),
            "install_stop_hook": True,
        },
        "tasks": {"settle": "100ms"},
        "accounts": [{"name": name, "home": str(home)} for name, home in homes.items()],
        "shared_dir": str(root / "shared"),
        "pool": {"autonomous": {"prefix": "ccl-auto-", "start_index": 11, "min": agents, "max": agents}},
        "projects_dir": str(projects_dir),
        "watcher": {"interval": "500ms", "idle_timeout": "10m", "done_signal_dir": str(root / "signals")},
        "state_dir": str(root / "state"),
    }
    return Workspace(root=root, socket_name=socket_name, config=config)


def remove_workspace(workspace: Workspace) -> None:
    shutil.rmtree(workspace.root, ignore_errors=True)
