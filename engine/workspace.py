"""The demo workspace: example projects, two simulated accounts, a private tmux socket, and the story's
task files (or, on request, a plain queue of tasks)."""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

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


FIRST, SECOND = "primary", "secondary"


@dataclass(frozen=True)
class StoryTask:
    project: str
    id: str
    title: str
    directives: tuple[str, ...]
    priority: str = "default"
    depends_on: tuple[str, ...] = ()

    @property
    def key(self) -> str:
        return f"{self.project}:{self.id}"

    def write(self, projects_dir: Path) -> Path:
        """Written beside the inbox, then renamed in: the engine never reads half a file."""
        inbox = projects_dir / self.project / ".agent-queue" / "inbox"
        text = _task_text(self.title, self.priority, self.directives, self.depends_on)
        return _rename_in(inbox, f"{self.id}.md", text)


@dataclass(frozen=True)
class Story:
    """The demo's story and its timings; a test may shorten them.

    Work flows on the first account until one task runs the account out of its limit mid-task
    (`sim: exhaust`): every session of that account stops at its next request, the pool fails over and
    the stopped tasks resume in their own conversations under the second account. Then a task meets a
    burst of 529 errors (no swap: a server error is not quota) and a task file with broken front matter
    goes to failed/. Once the first account's limit has reset, `quota.prefer_first` brings the pool back
    and a last task runs there.
    """

    limit_message: str = "You've hit your session limit · resets {reset}"
    """What the limit reads; `{reset}` is a clock time (the reset on that whole minute), `{epoch}` exact."""
    reset_after: float = 20.0
    """Seconds from the limit to its reset, at least (a clock time rounds up to the whole minute)."""
    cooldown: float = 5.0
    """`quota.reactivate_cooldown`: the 529 burst comes after it, when a swap could happen again."""
    limit_menu: bool = True
    """The simulated agent opens its limit menu after the limit, as Claude Code 2.1 does."""
    timeout: float = 240.0
    """The story is given up (and the headless demo stops) after this many seconds."""
    bad_file: tuple[str, str] = ("webapp", "003-rename-settings.md")
    """(project, name) of the task file whose front matter does not parse."""

    @property
    def limit_task(self) -> StoryTask:
        """The task that runs its account out of its limit half-way, then finishes (wherever it resumes)."""
        return StoryTask(
            "billing-api",
            "003-export-ledger",
            "Export the ledger to CSV",
            (
                "sim: work 3s",
                "sim: append exports/ledger.csv first half",
                f"sim: exhaust {self.reset_after:g}s {json.dumps(self.limit_message, ensure_ascii=False)}",
                "sim: work 3s",
                "sim: append exports/ledger.csv second half",
            ),
            priority="high",
        )

    @property
    def flaky_task(self) -> StoryTask:
        """The task that meets a burst of 529 Overloaded errors."""
        return StoryTask(
            "billing-api", "004-retry-webhooks", "Retry flaky webhooks", ("sim: error 529", "sim: work 2s")
        )

    @property
    def last_task(self) -> StoryTask:
        """The task queued once the pool is back on the first account."""
        return StoryTask("docs site", "003-release-notes", "Write the release notes", ("sim: work 2s",))

    @property
    def opening(self) -> tuple[StoryTask, ...]:
        """The tasks queued at the start: work for the whole pool, the limit among it."""
        return (
            StoryTask(
                "billing-api", "001-fix-rounding", "Fix rounding of refunds", ("sim: work 4s",), "critical"
            ),
            self.limit_task,
            StoryTask("webapp", "001-login-form", "Validate the login form", ("sim: work 3s",), "high"),
            StoryTask(
                "webapp",
                "002-quota-banner",
                "Show a banner when the API says usage limit reached",
                ('sim: say "The banner reads: usage limit reached, resets 3am"', "sim: work 2s"),
            ),
            StoryTask("docs site", "001-changelog", "Write the changelog entry", ("sim: work 2s",), "low"),
            StoryTask(
                "docs site",
                "002-document-refunds",
                "Document the refund rounding fix",
                ("sim: work 2s",),
                depends_on=("billing-api:001-fix-rounding",),
            ),
        )

    @property
    def good_tasks(self) -> tuple[StoryTask, ...]:
        """Every task the story queues that should end in done/, once."""
        return (*self.opening, self.flaky_task, self.last_task)

    def write_bad_file(self, projects_dir: Path) -> Path:
        project, name = self.bad_file
        inbox = projects_dir / project / ".agent-queue" / "inbox"
        text = "---\ntitle: Rename the settings page\npriority: [high\n---\nRename Settings to Preferences.\n"
        return _rename_in(inbox, name, text)


@dataclass(frozen=True)
class Workspace:
    root: Path
    socket_name: str
    config: dict[str, Any]
    story: Story | None = None
    """The story its tasks tell; None for a plain queue."""

    @property
    def projects_dir(self) -> Path:
        return self.root / "src"

    @property
    def config_file(self) -> Path:
        """The config, written out so that `cfo status --config` can look at a kept workspace."""
        return self.root / "config.yaml"

    @property
    def events_file(self) -> Path:
        return Path(self.config["state_dir"]) / "events.jsonl"


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


def _rename_in(inbox: Path, name: str, text: str) -> Path:
    temporary = inbox.parent / f".{name}.tmp"
    temporary.write_text(text, encoding="utf-8")
    target = inbox / name
    temporary.rename(target)
    return target


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


def build_workspace(
    agents: int, tasks: int | None = None, root: Path | None = None, story: Story | None = None
) -> Workspace:
    """Create projects, accounts and a config for `agents` pool sessions and a plain queue of `tasks`
    tasks, or, with `tasks` None, the story's opening tasks (`story`, or the default timings)."""
    root = root or Path(tempfile.mkdtemp(prefix="cfo-demo-"))
    socket_name = f"cfo-demo-{os.getpid()}-{root.name[-6:]}"
    projects_dir = root / "src"
    for project in PROJECTS:
        queue = projects_dir / project / ".agent-queue"
        for folder in ("inbox", "done", "failed"):
            (queue / folder).mkdir(parents=True, exist_ok=True)
    story = (story or Story()) if tasks is None else None
    homes = {name: root / "accounts" / name for name in (FIRST, SECOND)}
    for home in homes.values():
        home.mkdir(parents=True, exist_ok=True)
        if story is not None and story.limit_menu:
            (home / "sim-limit-menu").touch()
    if story is None:
        write_tasks(projects_dir, tasks or 0)
    else:
        for task in story.opening:
            task.write(projects_dir)
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
    if story is not None:
        config["quota"] = {"reactivate_cooldown": f"{story.cooldown:g}s", "prefer_first": True}
    workspace = Workspace(root=root, socket_name=socket_name, config=config, story=story)
    workspace.config_file.write_text(
        "# The demo's config: `cfo status --config` on this file shows its state.\n"
        + yaml.safe_dump(config, sort_keys=False, allow_unicode=True),
        encoding="utf-8",
    )
    return workspace


def remove_workspace(workspace: Workspace) -> None:
    shutil.rmtree(workspace.root, ignore_errors=True)
