"""`cfo delegate submit|get|result|decide`: the delegation client for scripts, with documented exit codes."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from engine.tasks import Task

EXIT_OK = 0
EXIT_INPUT = 1  # config, task file, or delegation not configured
EXIT_SERVICE = 3  # the job service failed (HTTP status or no answer)
EXIT_JOB_FAILED = 4  # `result`: the job ended failed
EXIT_NOT_FINISHED = 5  # `result`: not finished (without --wait, or --wait timed out)
EXIT_LOCAL = 6  # `submit`: the router keeps this task local, nothing was submitted

EXIT_CODES = f"""exit codes:
  {EXIT_OK}  done
  {EXIT_INPUT}  bad input: the config, the task file, or delegation not configured (url and key)
  2  usage error
  {EXIT_SERVICE}  the job service failed: its HTTP status and body, or no answer, on stderr
  {EXIT_JOB_FAILED}  result: the job failed (its error on stderr)
  {EXIT_NOT_FINISHED}  result: the job has not finished (or --wait timed out)
  {EXIT_LOCAL}  submit: the task stays local by its fields; nothing submitted (--provider overrides)
"""

T = TypeVar("T")


class _Input(Exception):
    pass


def add_parser(
    sub: argparse._SubParsersAction[argparse.ArgumentParser],
    add_config: Callable[[argparse.ArgumentParser], None],
) -> None:
    """The `delegate` subcommand; `add_config` gives it and each action the `--config` option."""
    parser = sub.add_parser(
        "delegate",
        help="talk to the delegation job service: submit, get, result, decide",
        epilog=EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    submit = actions.add_parser("submit", help="submit a task file; prints the job id")
    submit.add_argument("task", type=Path, help="a task file (<id>.md)")
    submit.add_argument("--provider", help="send to this provider whatever the task's fields say")
    get = actions.add_parser("get", help="print a job's status as JSON")
    get.add_argument("job")
    result = actions.add_parser("result", help="print a finished job's result")
    result.add_argument("job")
    result.add_argument("--wait", action="store_true", help="poll until the job finishes")
    result.add_argument("--timeout", type=float, default=3600.0, metavar="SECONDS", help="for --wait")
    result.add_argument("--poll", type=float, default=5.0, metavar="SECONDS", help="for --wait")
    decide = actions.add_parser("decide", help="print where a task file would run, and why, as JSON")
    decide.add_argument("task", type=Path, help="a task file (<id>.md)")
    for each in (parser, submit, get, result, decide):
        add_config(each)


def run(args: argparse.Namespace, config_path: Path) -> int:
    try:
        if args.action == "decide":
            return _decide(args.task)
        return _remote(args, config_path)
    except _Input as exc:
        _err(str(exc))
        return EXIT_INPUT


def _err(message: str) -> None:
    print(f"cfo delegate: {message}", file=sys.stderr)


def _read(path: Path, max_bytes: int = 1 << 20) -> Task:
    from engine.safetext import visible
    from engine.tasks import VANISHED, TaskError, read_task

    path = path.absolute()
    in_queue = path.parent.name == "inbox" and path.parent.parent.name == ".agent-queue"
    project_dir = path.parent.parent.parent if in_queue else path.parent
    try:
        return read_task(path, project_dir.name, project_dir, max_bytes)
    except TaskError as exc:
        if exc.reason == VANISHED:  # the engine's word for a file gone mid-scan; here it was never there
            raise _Input(f"{visible(path)}: no such file") from None
        raise _Input(str(exc)) from None


def _decide(path: Path) -> int:
    from engine.delegation.router import decide

    task = _read(path)
    decision = decide(task)
    out = {"task": task.key, "provider": decision.provider, "delegated": decision.delegated}
    print(json.dumps(out | {"reason": decision.reason}))
    return EXIT_OK


def _remote(args: argparse.Namespace, config_path: Path) -> int:
    from engine.config import ConfigError
    from engine.config_reader import load_config
    from engine.delegation.client import DelegationError, JobClient

    try:
        config = load_config(config_path)
    except ConfigError as exc:
        raise _Input(str(exc)) from None
    delegation = config.delegation
    token = delegation.api_key()
    if not delegation.url:
        raise _Input(f"{config_path}: delegation.url is not set")
    if not token:
        raise _Input(f"the variable {delegation.api_key_env} (delegation.api_key_env) is empty or unset")
    url = delegation.url

    def call(body: Callable[[JobClient], Awaitable[T]]) -> T:
        async def main() -> T:
            async with JobClient(url, token) as client:
                return await body(client)

        return asyncio.run(main())

    try:
        if args.action == "submit":
            return _submit(args, config.tasks.max_bytes, call)
        if args.action == "get":
            job = call(lambda c: c.get(args.job))
            print(json.dumps(_job_json(job)))
            return EXIT_OK
        return _result(args, call)
    except DelegationError as exc:
        _err(str(exc))
        return EXIT_SERVICE


def _submit(args: argparse.Namespace, max_bytes: int, call: Callable[..., object]) -> int:
    from engine.delegation.router import decide

    task = _read(args.task, max_bytes)
    provider = args.provider
    if provider is None:
        decision = decide(task)
        if not decision.delegated:
            _err(f"{task.key} stays local: {decision.reason}")
            return EXIT_LOCAL
        provider = decision.provider
    prompt = task.body.strip() or task.title
    job_id = call(lambda c: c.submit(provider, task.priority, prompt, task.project, task.id))
    print(job_id)
    return EXIT_OK


def _result(args: argparse.Namespace, call: Callable[..., object]) -> int:
    from engine.delegation.client import Job, JobTimeout

    try:
        job = call(
            lambda c: c.wait(args.job, poll=args.poll, timeout=args.timeout) if args.wait else c.get(args.job)
        )
    except JobTimeout as exc:
        _err(str(exc))
        return EXIT_NOT_FINISHED
    assert isinstance(job, Job)
    if job.status == "failed":
        _err(f"job {job.id} failed: {job.error or 'no error given'}")
        return EXIT_JOB_FAILED
    if job.status != "completed":
        _err(f"job {job.id} is {job.status}")
        return EXIT_NOT_FINISHED
    sys.stdout.write((job.result or "").rstrip("\n") + "\n")
    return EXIT_OK


def _job_json(job: object) -> dict[str, object]:
    from dataclasses import asdict, is_dataclass

    assert is_dataclass(job) and not isinstance(job, type)
    return {k: v for k, v in asdict(job).items() if v is not None}
