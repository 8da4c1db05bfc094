"""Redaction: which secrets never reach a line, and what stays readable around them."""

from __future__ import annotations

import pytest

from engine.config_reader import config_from_dict
from engine.redact import Secrets, protect, readable, redact, redact_tree

WEBHOOK = "https://ntfy.example:8443/alerts-7f3a9c1d?auth=q2b8e41x"


@pytest.mark.parametrize(
    ("url", "text", "shown"),
    [
        (
            WEBHOOK,
            f"webhook {WEBHOOK} failed (HTTP 503)",
            "webhook https://ntfy.example:8443/[redacted] failed (HTTP 503)",
        ),
        (WEBHOOK, "POST /alerts-7f3a9c1d?auth=q2b8e41x", "POST /[redacted]"),
        (WEBHOOK, "path /alerts-7f3a9c1d, query auth=q2b8e41x", "path /[redacted], query [redacted]"),
        # Parts under 8 characters are not searched for on their own: they would blank ordinary words.
        (
            "https://hooks.example/hook",
            "at https://hooks.example/hook",
            "at https://hooks.example/[redacted]",
        ),
        ("https://hooks.example/hook", "a /hook route", "a /hook route"),
    ],
)
def test_a_webhook_url_keeps_its_scheme_and_host_and_loses_its_path_and_query(
    url: str, text: str, shown: str
) -> None:
    secrets = Secrets()
    secrets.add_url(url)

    assert secrets.redact(text) == shown


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("Authorization: Bearer abc.def-123", "Authorization: Bearer [redacted]"),
        ("authorization=Basic Zm9vOmJhcg==", "authorization=Basic [redacted]"),
        ("x-api-key: 0123456789", "x-api-key: [redacted]"),
        ('{"error": "bad token Bearer eyJhbGciOi.x"}', '{"error": "bad token Bearer [redacted]"}'),
        (
            "https://user:pw@jobs.example/v1?api_key=123&x=1",
            "https://[redacted]@jobs.example/v1?api_key=[redacted]&x=1",
        ),
        ("key sk-ant-api03-abcdefghijkl used", "key [redacted] used"),
        ("the bearer of bad news", "the bearer of bad news"),
        ("↑ 120 tokens · esc to interrupt", "↑ 120 tokens · esc to interrupt"),
    ],
)
def test_credentials_are_known_by_their_shape(text: str, shown: str) -> None:
    assert redact(text) == shown
    assert redact(shown) == shown


def test_protect_registers_the_webhook_and_the_delegation_key_from_the_environment() -> None:
    config = config_from_dict(
        {
            "accounts": [{"name": "a", "home": "/nonexistent/a"}],
            "notifications": {"webhook": "https://hooks.example/T0/B1/unit-path-5e1f?token=unit-query-77aa"},
            "delegation": {"url": "http://127.0.0.1:1", "api_key_env": "UNIT_KEY"},
        }
    )

    protect(config, {"UNIT_KEY": "unit-key-0c3d9e"})

    assert redact_tree(
        {"reason": ["key unit-key-0c3d9e", "/T0/B1/unit-path-5e1f?token=unit-query-77aa"]}
    ) == {"reason": ["key [redacted]", "/[redacted]"]}


def test_readable_redacts_then_escapes() -> None:
    assert readable("key sk-ant-api03-abcdefghijkl in web\u202elave") == "key [redacted] in web\\u202elave"
