"""Secrets kept out of everything cfo writes: the webhook URL, API keys, credentials in URLs and headers."""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Mapping
from urllib.parse import unquote, urlsplit

from engine.config import Config
from engine.safetext import visible

REDACTED = "[redacted]"
MIN_SECRET = 8
"""Values (and URL parts) shorter than this are not searched for: they would blank ordinary words."""
AGENT_KEYS = ("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN", "CLAUDE_CODE_OAUTH_TOKEN")
"""Variables of cfo's environment that hold a Claude credential the agents inherit."""

# Credentials known by their shape wherever they turn up (an error body a service echoed, a pane line):
# a header's value, a bearer token, the user:password of a URL, a query parameter named like a
# credential, an Anthropic key. `keep` is what stays readable in front of the secret.
_SHAPES = re.compile(
    r"(?P<keep>\b(?:proxy-)?authorization\s*[:=]\s*(?:(?:bearer|basic|token)\s+)?"
    r"|\bx-api-key\s*[:=]\s*"
    r"|[?&;][a-z0-9_.-]*(?:token|key|secret|password|passwd|signature|sig|auth)=)"
    r"(?P<secret>[^\s&#,;'\"<>]+)"
    r"|(?P<bearer>\bbearer\s+)[a-z0-9._~+/=-]{8,}"
    r"|(?P<scheme>\b[a-z][a-z0-9+.-]*://)[^\s/?#@]+@"
    r"|\bsk-ant-[a-z0-9_-]{8,}",
    re.IGNORECASE,
)


def _shape(match: re.Match[str]) -> str:
    if match["secret"] is not None:
        return match["keep"] + REDACTED
    if match["bearer"] is not None:
        return match["bearer"] + REDACTED
    if match["scheme"] is not None:
        return match["scheme"] + REDACTED + "@"
    return REDACTED


class Secrets:
    """Configured secret values and what each becomes; thread-safe, as every thread logs."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values: dict[str, str] = {}
        self._compiled: tuple[re.Pattern[str], dict[str, str]] | None = None

    def add(self, secret: str, replacement: str = REDACTED) -> None:
        if len(secret) < MIN_SECRET:
            return
        with self._lock:
            self._values[secret] = replacement
            values = dict(self._values)
            # Longest first: where a URL and its own path both match, the whole URL is replaced.
            ordered = sorted(values, key=len, reverse=True)
            self._compiled = (re.compile("|".join(map(re.escape, ordered))), values)

    def add_url(self, url: str) -> None:
        """A secret URL keeps its scheme and host (which service it is); its path and query go, alone too."""
        parts = urlsplit(url)
        host = parts.netloc.rpartition("@")[2]
        for form in {url, unquote(url)}:
            self.add(form, f"{parts.scheme}://{host}/{REDACTED}" if host else REDACTED)
        tail = url.split(parts.netloc, 1)[1] if parts.netloc else url
        for part in {tail, unquote(tail), parts.path, unquote(parts.path), parts.query, unquote(parts.query)}:
            if len(part.strip("/?")) >= MIN_SECRET:
                self.add(part, ("/" if part.startswith("/") else "") + REDACTED)

    def redact(self, text: str) -> str:
        compiled = self._compiled
        if compiled is not None:
            pattern, values = compiled
            text = pattern.sub(lambda m: values[m[0]], text)
        return _SHAPES.sub(_shape, text)


_SECRETS = Secrets()


def protect(config: Config, environ: Mapping[str, str] = os.environ) -> None:
    """Register the secrets `config` names: its webhook URL, the delegation key, the agents' keys."""
    if config.notifications.webhook:
        _SECRETS.add_url(config.notifications.webhook)
    for value in (config.delegation.api_key(environ), *(environ.get(name) for name in AGENT_KEYS)):
        if value:
            _SECRETS.add(value)


def redact(text: str) -> str:
    """`text` with every registered secret and every credential-shaped string replaced."""
    return _SECRETS.redact(text)


def redact_tree(value: object) -> object:
    """A JSON-like value (dicts, lists, strings) with `redact` applied to every string in it."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, Mapping):
        return {key: redact_tree(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [redact_tree(item) for item in value]
    return value


def readable(text: object) -> str:
    """A line for a person: secrets redacted, then control, bidi and invisible characters escaped."""
    return visible(redact(str(text)))
