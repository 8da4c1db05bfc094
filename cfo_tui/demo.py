"""`cfo demo`: the console (or the headless engine) on a throw-away workspace with simulated agents, telling
a scripted story: a failover mid-task, a 529 burst that does not swap, a bad file, the return."""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from engine.workspace import FIRST, SECOND, Story, Workspace, build_workspace, remove_workspace

log = logging.getLogger("demo")
LOOK = 0.2  # how often the story looks at the event log


def _hang_up(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


class DemoError(RuntimeError):
    """The demo could not be set up (tmux missing, workspace not writable)."""


class Director:
    """Tells the story as a user of cfo would: follows `events.jsonl`, drops each act's task files into the
    inboxes when their moment comes, and says what happens, one `demo: …` line per step. It never acts on
    the engine: what cfo does, it only reports."""

    def __init__(
        self,
        workspace: Workspace,
        say: Callable[[str], None],
        on_end: Callable[[], None] = lambda: None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        assert workspace.story is not None
        self.workspace = workspace
        self.story: Story = workspace.story
        self.say = say
        self.on_end = on_end
        self.clock = clock
        self.ended = threading.Event()
        self.finished = False
        """The whole story happened: the last task ran on the first account after the return."""
        self.cooldown_until: float | None = None
        self.act_two_due = False
        self.act_two_queued = False
        self.returned = False
        self.seen: set[str] = set()
        self.task_of: dict[str, str] = {}
        """The task each session was last given."""
        self._stop = threading.Event()
        self._offset = 0
        self._partial = b""
        self._started = clock()
        self._thread: threading.Thread | None = None

    # ----------------------------------------------------------------- running

    def start(self) -> None:
        story = self.story
        self.say(
            f"{len(story.opening)} tasks queued for the pool on {FIRST}; {story.limit_task.key} will run "
            f"{FIRST} out of its session limit half-way"
        )
        self._thread = threading.Thread(target=self._run, name="demo-story", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2)

    def _run(self) -> None:
        while not self._stop.is_set() and not self.ended.is_set():
            try:
                for event in self._new_events():
                    self.on_event(event)
                self.tick(self.clock())
            except OSError as exc:  # a workspace removed under it: nothing more to tell
                log.warning("demo: %s", exc)
                return
            self._stop.wait(LOOK)

    def _new_events(self) -> list[dict[str, Any]]:
        try:
            with self.workspace.events_file.open("rb") as handle:
                handle.seek(self._offset)
                data = handle.read()
        except FileNotFoundError:
            return []
        self._offset += len(data)
        lines = (self._partial + data).split(b"\n")
        self._partial = lines.pop()  # a line still being written
        events = []
        for line in lines:
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if isinstance(event, dict):
                events.append(event)
        return events

    def _end(self, finished: bool) -> None:
        self.finished = finished
        self.ended.set()
        self.on_end()

    # ----------------------------------------------------------------- the story

    def _once(self, step: str) -> bool:
        """True the first time `step` is told."""
        if step in self.seen:
            return False
        self.seen.add(step)
        return True

    def on_event(self, event: dict[str, Any]) -> None:
        story = self.story
        kind, task, account = event.get("type"), event.get("task"), event.get("account")
        if kind == "dispatched" and isinstance(event.get("session"), str):
            self.task_of[event["session"]] = str(task)
        if kind == "quota_hit" and account == FIRST and self._once("limit"):
            self.say(f"{FIRST} hit its limit in {task} ({event.get('reason')}): the pool fails over")
        elif kind == "swap" and event.get("from_account") == FIRST and account == SECOND:
            resumed = [self.task_of.get(s, s) for s in event.get("resumed") or []]
            self.say(
                f"the pool is on {SECOND} now: new tasks start there; resumed there, each in its own "
                f"conversation: {', '.join(resumed) or 'none'}"
            )
            self.cooldown_until = _epoch(event.get("ts")) + story.cooldown
        elif kind == "moved" and account == SECOND:
            self.say(
                f"{task or event.get('session')} stopped at {FIRST}'s limit too and moved alone to {SECOND}"
            )
        elif kind == "completed" and task == story.limit_task.key:
            self.say(f"{task} finished on {account}, in the conversation it began on {FIRST}")
            self.act_two_due = True
        elif kind == "api_error" and task == story.flaky_task.key and self._once("529"):
            self.say(
                f"{task}: 529 Overloaded; cfo waits and types continue: a server error is not quota, no swap"
            )
        elif kind == "failed" and task == self._bad_key:
            self.say(f"{task} went to failed/: {event.get('reason')}")
            self.seen.add("bad file failed")
            self._wait_for_reset()
        elif kind == "completed" and task == story.flaky_task.key:
            self.say(f"{task} finished on {account} after its 529 burst, and the pool never swapped for it")
            self.seen.add("529 task done")
            self._wait_for_reset()
        elif kind == "all_exhausted":
            self.say(
                f"every account is exhausted: dispatch waits for the earliest reset ({event.get('until')})"
            )
        elif kind == "swap" and account == FIRST and not self.returned:
            self.returned = True
            self.say(f"{FIRST}'s limit has reset: quota.prefer_first brought the pool back to {FIRST}")
            story.last_task.write(self.workspace.projects_dir)
            self.say(f"queued {story.last_task.key}")
        elif kind == "completed" and task == story.last_task.key:
            if account == FIRST:
                self.say(f"{task} ran on {FIRST}: the story is over")
                self._end(True)
            else:
                self.say(f"{task} ran on {account}, not on {FIRST}: the story went wrong")
                self._end(False)

    @property
    def _bad_key(self) -> str:
        project, name = self.story.bad_file
        return f"{project}:{name.removesuffix('.md')}"

    def _wait_for_reset(self) -> None:
        """Once the second act is over, the wait for the first account's limit to reset."""
        if self.returned or not {"bad file failed", "529 task done"} <= self.seen or not self._once("wait"):
            return
        reset = self._reset_of_first()
        when = time.strftime("%H:%M:%S", time.localtime(reset)) if reset else "its reset time"
        if reset is not None and reset <= self.clock():
            self.say(
                f"{FIRST}'s limit reset at {when}; quota.prefer_first brings the pool back once no task runs"
            )
        else:
            back = "quota.prefer_first then brings the pool back"
            self.say(f"waiting for {FIRST}'s limit to reset at {when}; {back}")

    def _reset_of_first(self) -> float | None:
        try:
            state = json.loads((Path(self.workspace.config["state_dir"]) / "state.json").read_text("utf-8"))
        except (OSError, ValueError):
            return None
        for account in state.get("accounts") or []:
            if account.get("name") == FIRST and isinstance(account.get("usable_again_at"), int | float):
                return float(account["usable_again_at"])
        return None

    def tick(self, now: float) -> None:
        """The second act starts once the failed-over task is done and a swap could happen again; the story
        is given up after its timeout."""
        cooled = self.cooldown_until is None or now >= self.cooldown_until
        if self.act_two_due and not self.act_two_queued and cooled:
            self.act_two_queued = True
            story = self.story
            story.flaky_task.write(self.workspace.projects_dir)
            story.write_bad_file(self.workspace.projects_dir)
            self.say(
                f"queued {story.flaky_task.key}, which meets a burst of 529 Overloaded errors, and "
                f"{self._bad_key}, whose front matter is broken"
            )
        if now - self._started > self.story.timeout:
            self.say(f"the story did not end within {self.story.timeout:g}s")
            self._end(False)


def _epoch(ts: object) -> float:
    """An event's ISO 8601 `ts` as seconds; now if it cannot be read."""
    from datetime import datetime

    try:
        return datetime.fromisoformat(str(ts)).timestamp()
    except ValueError:
        return time.time()


def _stderr_line(text: str) -> None:
    sys.stderr.write(f"{time.strftime('%H:%M:%S')} demo: {text}\n")
    sys.stderr.flush()


def _log_line(text: str) -> None:
    log.info("%s", text)


def run_demo(
    agents: int = 4,
    tasks: int | None = None,
    headless: bool = False,
    keep: bool = False,
    story: Story | None = None,
) -> int:
    """Build the workspace, run the console (or the headless engine) on it, then clean up. With `tasks`,
    a plain queue of that many tasks instead of the story (headless: until it is drained)."""
    from engine.config_reader import config_from_dict
    from engine.tmux import TmuxError, client_for

    if agents < 1:
        raise DemoError("--agents must be at least 1")
    # A closed terminal (SIGHUP) must still remove the demo's tmux server and workspace.
    signal.signal(signal.SIGHUP, _hang_up)
    try:
        workspace = build_workspace(agents, tasks, story=story)
    except OSError as exc:
        raise DemoError(f"cannot create the demo workspace: {exc}") from exc
    finished = True
    try:
        config = config_from_dict(workspace.config)
        try:
            tmux = client_for(config)
        except TmuxError as exc:
            raise DemoError(str(exc)) from exc
        print(f"demo workspace: {workspace.root}  (tmux -L {workspace.socket_name} attach)", file=sys.stderr)
        try:
            code, finished = _run(workspace, config, tmux, headless)
            return code
        finally:
            tmux.kill_server()
    finally:
        _part(workspace, keep, finished)


def _run(workspace: Workspace, config: Any, tmux: Any, headless: bool) -> tuple[int, bool]:
    """(exit status, whether the story, if any, was told to its end)."""
    director: Director | None = None
    if workspace.story is not None:
        # Headless, the story's end stops the engine as Ctrl-C would; the console stays until q.
        on_end = (lambda: os.kill(os.getpid(), signal.SIGTERM)) if headless else (lambda: None)
        director = Director(workspace, _stderr_line if headless else _log_line, on_end)
        director.start()
    try:
        if headless:
            from cfo_tui.headless import run_headless

            code = run_headless(config, tmux=tmux, until_idle=director is None)
        else:
            from cfo_tui.app import run_app

            code = run_app(config, tmux=tmux)
    finally:
        if director is not None:
            director.stop()
    if director is None or not headless:
        return code, True
    # Stopped by the operator (Ctrl-C) mid-story: the engine's status; the story gone wrong or out of
    # time: a failure.
    went_wrong = director.ended.is_set() and not director.finished
    return (code or (1 if went_wrong else 0)), director.finished


def _part(workspace: Workspace, keep: bool, finished: bool) -> None:
    """The parting line, saying what is true now."""
    root = workspace.root
    if not finished:
        print("demo: the story stopped before its end; the log above shows how far it got", file=sys.stderr)
    if keep:
        print(
            f"demo: kept {root} (its agents' tmux server is stopped): the queues are under {root}/src, "
            f"the events in {workspace.events_file}; cfo status --config {workspace.config_file}",
            file=sys.stderr,
        )
        return
    remove_workspace(workspace)
    if root.exists():
        print(f"demo: could not remove {root} entirely; remove it by hand", file=sys.stderr)
    else:
        print(
            f"demo: removed {root} and stopped its tmux server (--keep keeps the workspace)",
            file=sys.stderr,
        )
