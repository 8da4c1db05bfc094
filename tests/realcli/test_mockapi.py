"""The mock API's own contract, as the real-CLI tests rely on it: accounts, error budgets, tool calls."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
import pytest

from tests.realcli.mockapi import Behaviour, MockApi

pytestmark = pytest.mark.realcli

KEY = "sk-ant-api03-key"
TOKEN = "sk-ant-oat01-token"
TOOLS = [{"name": "Bash", "input_schema": {"type": "object"}}]


def post(
    api: MockApi, messages: list[dict[str, Any]], tools: bool = True, token: str | None = None
) -> httpx.Response:
    auth = {"authorization": f"Bearer {token}"} if token else {"x-api-key": KEY}
    body = {"model": "m", "stream": True, "messages": messages, "tools": TOOLS if tools else []}
    return httpx.post(f"{api.url}/v1/messages?beta=true", json=body, headers=auth, timeout=10)


def events(response: httpx.Response) -> list[dict[str, Any]]:
    return [json.loads(line[6:]) for line in response.text.splitlines() if line.startswith("data: ")]


def answer(response: httpx.Response) -> str:
    return "".join(e["delta"].get("text", "") for e in events(response) if e["type"] == "content_block_delta")


def prompt(text: str) -> dict[str, Any]:
    reminder = {"type": "text", "text": "<system-reminder>\ncontext\n</system-reminder>"}
    return {"role": "user", "content": [reminder, {"type": "text", "text": text}]}


def test_answers_with_the_first_line_of_the_prompt_and_ignores_the_cli_reminders(mock_api: MockApi) -> None:
    response = post(mock_api, [prompt("[t1.md] Say hello.\nMore.")])
    assert response.headers["content-type"] == "text/event-stream"
    kinds = [e["type"] for e in events(response)]
    assert kinds[:2] == ["message_start", "content_block_start"]
    assert kinds[-2:] == ["message_delta", "message_stop"]
    assert answer(response) == "Done: [t1.md] Say hello."


def test_a_bash_directive_is_a_tool_call_and_its_result_gets_the_final_answer(mock_api: MockApi) -> None:
    task = prompt("[t1.md] Log it.\nmock: bash echo hi >> /tmp/x")
    first = events(post(mock_api, [task]))
    tool = next(e["content_block"] for e in first if e["type"] == "content_block_start")
    arguments = next(e["delta"]["partial_json"] for e in first if e["type"] == "content_block_delta")
    assert tool["name"] == "Bash" and json.loads(arguments)["command"] == "echo hi >> /tmp/x"
    assert first[-2]["delta"]["stop_reason"] == "tool_use"
    call = {"role": "assistant", "content": [{**tool, "input": json.loads(arguments)}]}
    result = {"role": "user", "content": [{"type": "tool_result", "tool_use_id": tool["id"], "content": ""}]}
    assert answer(post(mock_api, [task, call, result])) == "Done: [t1.md] Log it."
    assert [(r.kind, r.answered) for r in mock_api.requests(KEY)] == [
        ("prompt", False),
        ("tool_result", True),
    ]


def test_continue_goes_on_with_the_prompt_a_stop_cut_off(mock_api: MockApi) -> None:
    task = prompt("[t1.md] Log it.\nmock: bash echo hi >> /tmp/x")
    # As the CLI resumes a conversation whose turn a limit stopped: a placeholder answer, then `continue`.
    stopped = [task, {"role": "assistant", "content": "No response requested."}, prompt("continue")]
    first = events(post(mock_api, stopped))
    assert first[-2]["delta"]["stop_reason"] == "tool_use"  # the task's command runs now
    tool = next(e["content_block"] for e in first if e["type"] == "content_block_start")
    call = {"role": "assistant", "content": [{**tool, "input": {"command": "echo hi >> /tmp/x"}}]}
    result = {"role": "user", "content": [{"type": "tool_result", "tool_use_id": tool["id"], "content": ""}]}
    # Stopped after its command ran: `continue` answers without running it again.
    assert answer(post(mock_api, [*stopped, call, result, prompt("continue")])) == "Done: [t1.md] Log it."
    # After an API error the CLI sends `continue` as the last block of the stopped prompt's own message.
    blocks = [{"type": "text", "text": text} for text in ("[t2.md] Say it.", "continue")]
    assert answer(post(mock_api, [{"role": "user", "content": blocks}])) == "Done: [t2.md] Say it."
    requests = mock_api.requests(KEY)
    assert [(r.prompt, r.continued, r.answered) for r in requests] == [
        ("[t1.md] Log it.", True, False),  # a tool call
        ("[t1.md] Log it.", True, True),  # the task's answer
        ("[t2.md] Say it.", True, True),
    ]


def test_a_request_records_when_its_streamed_answer_ended(mock_api: MockApi) -> None:
    assert answer(post(mock_api, [prompt("[t1.md] Slowly.\nmock: stream 300ms")])) == "Done: [t1.md] Slowly."
    [request] = mock_api.requests(KEY)
    assert request.answered and request.ended is not None and request.ended - request.at >= 0.25


def test_title_requests_get_the_error_but_never_use_up_its_budget(mock_api: MockApi) -> None:
    mock_api.behave(KEY, Behaviour("overloaded", times=2))
    statuses = [
        post(mock_api, [prompt("title")], tools=False).status_code,
        post(mock_api, [prompt("a")]).status_code,
        post(mock_api, [prompt("title")], tools=False).status_code,
        post(mock_api, [prompt("a")]).status_code,
        post(mock_api, [prompt("a")]).status_code,
    ]
    assert statuses == [529, 529, 529, 529, 200]
    assert [r.kind for r in mock_api.requests(KEY)] == ["title", "prompt", "title", "prompt", "prompt"]


def test_a_subscriber_limit_carries_the_unified_headers_and_only_for_that_account(mock_api: MockApi) -> None:
    mock_api.behave(TOKEN, Behaviour("subscriber_limit", claim="seven_day", reset_in=60))
    limited = post(mock_api, [prompt("a")], token=TOKEN)
    assert limited.status_code == 429
    assert limited.headers["anthropic-ratelimit-unified-status"] == "rejected"
    assert limited.headers["anthropic-ratelimit-unified-representative-claim"] == "seven_day"
    assert 50 < int(limited.headers["anthropic-ratelimit-unified-reset"]) - time.time() <= 60
    assert post(mock_api, [prompt("a")]).status_code == 200  # the API-key account is untouched
    assert [(r.auth, r.status) for r in mock_api.requests()] == [("oauth", 429), ("api_key", 200)]
