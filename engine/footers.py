"""Footers of finished task files: the fenced `cfo` block of `key: value` lines, written and read back."""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Mapping
from pathlib import Path

import yaml

FOOTER_OPEN = "```cfo"
FOOTER_CLOSE = "```"
# The footer is the last thing in the file, so the tail is enough; a huge task body is never read whole.
_FOOTER_TAIL = 64 * 1024
_FOOTER_KEY = re.compile(r"[a-z_][a-z0-9_]*")

FooterValue = str | int | float | bool | None


def footer_yaml(fields: Mapping[str, FooterValue]) -> str:
    """`key: value` lines, one per field; values are made single-line so nothing can end the block."""
    clean: dict[str, FooterValue] = {}
    for key, value in fields.items():
        if not _FOOTER_KEY.fullmatch(key):
            raise ValueError(f"footer key {key!r} must be lower_snake_case")
        if isinstance(value, str):
            value = " ".join(value.splitlines()).encode("utf-8", "backslashreplace").decode("utf-8")
        clean[key] = value
    return yaml.safe_dump(
        clean, sort_keys=False, allow_unicode=True, width=1_000_000, default_flow_style=False
    )


def append_footer(content: bytes, fields: Mapping[str, FooterValue]) -> bytes:
    """`content`, a `---` rule and a fenced `cfo` block with `fields`: plain to read, and parseable."""
    head = content if not content or content.endswith(b"\n") else content + b"\n"
    block = f"\n---\n\n{FOOTER_OPEN}\n{footer_yaml(fields)}{FOOTER_CLOSE}\n"
    return head + block.encode("utf-8")


def read_footer(path: Path) -> dict[str, object] | None:
    """The last footer of a finished task file, or None if it has none (or it is unreadable)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            return None
        tail = os.pread(fd, _FOOTER_TAIL, max(0, st.st_size - _FOOTER_TAIL))
    finally:
        os.close(fd)
    text = tail.decode("utf-8", "replace")
    start = text.rfind(f"\n{FOOTER_OPEN}\n")
    if start < 0:
        return None
    start += len(FOOTER_OPEN) + 2
    end = text.find(f"\n{FOOTER_CLOSE}", start - 1)
    if end < 0:
        return None
    try:
        loaded = yaml.safe_load(text[start : end + 1])
    except yaml.YAMLError:
        return None
    return {str(k): v for k, v in loaded.items()} if isinstance(loaded, dict) else None
