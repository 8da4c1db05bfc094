"""Quota failover on real tmux with the simulated agent: swaps, resumed conversations, false alarms."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from engine.conversations import conversation_dir
from engine.tmux import LibtmuxClient
from tests.integration.pipeline_support import Workspace, make_workspace, new_engine, run_engine

pytestmark = pytest.mark.integration


@pytest.fixture
def ws(tmp_path: Path, tmux: LibtmuxClient) -> Workspace:
    return make_workspace(tmp_path / "ws", tmux, agents=2)


def swaps(ws: Workspace) -> list[dict[str, object]]:
    return [e for e in ws.events() if e["type"] == "swap"]


def footer_account(ws: Workspace, project: str, name: str) -> str:
    text = (ws.project(project) / ".agent-queue" / "done" / name).read_text()
    return next(line.split(": ", 1)[1] for line in text.splitlines() if line.startswith("account: "))


def test_quota_hit_moves_the_pool_to_the_next_account_in_the_same_conversations(ws: Workspace) -> None:
    ran = ws.root / "ran.log"
    ws.add_task(
        "web",
        "a-limited",
        "Hits the limit\nsim: work 1s\n"
        f"sim: quota \"You've hit your limit · resets 3am\"\nsim: append {ran} A",
        age=2,
    )
    ws.add_task("web", "b-long", f"Long work\nsim: work 4s\nsim: append {ran} B", age=1)
    engine = new_engine(ws)
    run_engine(engine, lambda: len(ws.done("web")) == 2, timeout=90)

    [swap] = swaps(ws)
    assert (swap["from_account"], swap["account"]) == ("primary", "secondary")
    assert swap["pattern"] == "hit_your_limit" and swap["session"] in ("ccl-auto-11", "ccl-auto-12")
    assert sorted(swap["resumed"]) == ["ccl-auto-11", "ccl-auto-12"]  # type: ignore[arg-type]
    assert sorted(ran.read_text().split()) == ["A", "B"]  # each finished once, after the swap
    assert footer_account(ws, "web", "a-limited.md") == "secondary"
    assert footer_account(ws, "web", "b-long.md") == "secondary"
    # one conversation file per task: the resumed agent appended to the same transcript
    folder = conversation_dir(ws.root / "shared", ws.project("web"))
    assert len([p for p in os.listdir(folder) if p.endswith(".jsonl")]) == 2
    assert engine.state.active_account == "secondary"
    assert engine.state.accounts["primary"].usable_again_at is not None


def test_server_errors_never_swap(ws: Workspace) -> None:
    ws.add_task("web", "flaky", "Flaky API\nsim: error 529\nsim: error 500\nsim: work 200ms")
    engine = new_engine(ws)
    run_engine(engine, lambda: ws.done("web") == ["flaky.md"], timeout=60)
    assert swaps(ws) == []
    assert engine.state.active_account == "primary"
    assert [e["type"] for e in ws.events()].count("api_error") == 2


def test_quota_words_in_a_task_and_its_answers_never_swap(ws: Workspace) -> None:
    body = (
        "Handle 'Claude AI usage limit reached|1700000000' and \"You've hit your limit · resets 2am\"\n"
        'sim: say "Detected: 5-hour limit reached ∙ resets 3am (rate_limit_error)"\n'
        "sim: work 300ms"
    )
    ws.add_task("web", "quota-code", body)
    engine = new_engine(ws)
    run_engine(engine, lambda: ws.done("web") == ["quota-code.md"], timeout=60)
    assert swaps(ws) == []
    assert not [e for e in ws.events() if e["type"] == "quota_hit"]


def test_operator_requested_swap_moves_an_idle_pool(ws: Workspace) -> None:
    engine = new_engine(ws)
    answers: list[str | None] = []

    def ask_once() -> None:
        if not answers and engine.state.sessions.get("ccl-auto-12") is not None:
            answers.append(engine.request_swap("operator"))

    run_engine(engine, lambda: bool(swaps(ws)), timeout=60, during=ask_once)
    assert answers == ["secondary"]
    assert engine.state.active_account == "secondary"
    assert (
        engine.state.accounts.get("primary") is None
        or engine.state.accounts["primary"].usable_again_at is None
    )
