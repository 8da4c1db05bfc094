"""`cfo delegate` against a real job server on 127.0.0.1: output and every documented exit code."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from cfo_tui.delegate import EXIT_INPUT, EXIT_JOB_FAILED, EXIT_LOCAL, EXIT_NOT_FINISHED, EXIT_OK, EXIT_SERVICE
from tests.integration.jobserver import Canned, JobServer, Plan, running

pytestmark = pytest.mark.integration

KEY_ENV = "CFO_TEST_DELEGATE_KEY"


@pytest.fixture
def server() -> Iterator[JobServer]:
    with running(token="secret") as srv:
        yield srv


def write_config(tmp_path: Path, url: str | None) -> Path:
    path = tmp_path / "config.yaml"
    data = {
        "accounts": [{"name": "a", "home": str(tmp_path / "home-a")}],
        "delegation": {"url": url, "api_key_env": KEY_ENV},
        "state_dir": str(tmp_path / "state"),
    }
    path.write_text(yaml.safe_dump(data))
    return path


def task_file(tmp_path: Path, name: str = "poem", **front: object) -> Path:
    inbox = tmp_path / "proj" / ".agent-queue" / "inbox"
    inbox.mkdir(parents=True, exist_ok=True)
    head = "".join(f"{k}: {json.dumps(v)}\n" for k, v in front.items())
    path = inbox / f"{name}.md"
    path.write_text((f"---\n{head}---\n" if head else "") + "Write a haiku\n")
    return path


def cfo(config: Path, *args: str, key: str | None = "secret") -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != KEY_ENV}
    if key is not None:
        env[KEY_ENV] = key
    return subprocess.run(
        [sys.executable, "-m", "cfo_tui.cli", "delegate", *args, "--config", str(config)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )


def test_decide_prints_the_routing_as_json(tmp_path: Path) -> None:
    config = write_config(tmp_path, None)
    path = task_file(tmp_path, allow_delegation=True, preferred_ai="auto", complexity_hint="medium")
    out = cfo(config, "decide", str(path), key=None)
    assert out.returncode == EXIT_OK, out.stderr
    assert json.loads(out.stdout) == {
        "task": "proj:poem",
        "provider": "gemini",
        "delegated": True,
        "reason": "preferred_ai is auto, complexity_hint medium: gemini",
    }


def test_submit_get_and_result(tmp_path: Path, server: JobServer) -> None:
    server.plan(Plan(result="five seven five", cost_usd=0.1))
    config = write_config(tmp_path, server.url)
    path = task_file(tmp_path, allow_delegation=True, preferred_ai="gpu", priority="high")
    submitted = cfo(config, "submit", str(path))
    assert submitted.returncode == EXIT_OK, submitted.stderr
    assert submitted.stdout.strip() == "job-1"
    assert server.requests[0].body == {
        "provider": "gpu",
        "priority": "high",
        "prompt": "Write a haiku",
        "project": "proj",
        "task": "poem",
    }
    got = cfo(config, "get", "job-1")
    assert got.returncode == EXIT_OK
    assert json.loads(got.stdout) == {
        "id": "job-1",
        "status": "completed",
        "provider": "gpu",
        "result": "five seven five",
        "cost_usd": 0.1,
    }
    result = cfo(config, "result", "job-1")
    assert (result.returncode, result.stdout) == (EXIT_OK, "five seven five\n")


def test_submit_of_a_local_task_submits_nothing_unless_a_provider_is_given(
    tmp_path: Path, server: JobServer
) -> None:
    config = write_config(tmp_path, server.url)
    path = task_file(tmp_path)
    local = cfo(config, "submit", str(path))
    assert local.returncode == EXIT_LOCAL
    assert "stays local: allow_delegation is absent" in local.stderr
    assert server.requests == []
    forced = cfo(config, "submit", str(path), "--provider", "claude-api")
    assert forced.returncode == EXIT_OK and forced.stdout.strip() == "job-1"
    assert server.requests[0].body is not None and server.requests[0].body["provider"] == "claude-api"


def test_result_of_a_failed_and_an_unfinished_job(tmp_path: Path, server: JobServer) -> None:
    server.plan(Plan(error="provider exploded"), Plan(polls=10**6))
    config = write_config(tmp_path, server.url)
    path = task_file(tmp_path, allow_delegation=True, preferred_ai="gpu")
    assert cfo(config, "submit", str(path)).returncode == EXIT_OK
    assert cfo(config, "submit", str(path)).returncode == EXIT_OK
    failed = cfo(config, "result", "job-1")
    assert failed.returncode == EXIT_JOB_FAILED and "provider exploded" in failed.stderr
    running_now = cfo(config, "result", "job-2")
    assert running_now.returncode == EXIT_NOT_FINISHED and "job-2 is queued" in running_now.stderr
    waited = cfo(config, "result", "job-2", "--wait", "--poll", "0.05", "--timeout", "0.3")
    assert waited.returncode == EXIT_NOT_FINISHED and "after 0.3s" in waited.stderr


def test_service_errors_exit_3_with_status_and_body(tmp_path: Path, server: JobServer) -> None:
    server.script("get", Canned(400, {"error": "malformed id"}))
    config = write_config(tmp_path, server.url)
    out = cfo(config, "get", "what")
    assert out.returncode == EXIT_SERVICE
    assert "HTTP 400" in out.stderr and "malformed id" in out.stderr
    unknown = cfo(config, "get", "nope")
    assert unknown.returncode == EXIT_SERVICE and "HTTP 404" in unknown.stderr


def test_missing_key_or_url_is_one_clear_line(tmp_path: Path, server: JobServer) -> None:
    config = write_config(tmp_path, server.url)
    no_key = cfo(config, "get", "job-1", key=None)
    assert no_key.returncode == EXIT_INPUT
    assert no_key.stderr.strip().splitlines() == [
        f"cfo delegate: the variable {KEY_ENV} (delegation.api_key_env) is empty or unset"
    ]
    no_url = cfo(write_config(tmp_path, None), "get", "job-1")
    assert no_url.returncode == EXIT_INPUT and "delegation.url is not set" in no_url.stderr
    bad = cfo(config, "decide", str(tmp_path / "missing.md"))
    assert bad.returncode == EXIT_INPUT
    assert bad.stderr.strip().splitlines() == [f"cfo delegate: {tmp_path / 'missing.md'}: no such file"]
