"""How Claude Code names a project's conversation folder (`projects/<name>`), exactly as the CLI does."""

from __future__ import annotations

MAX_NAME = 200  # longer names are cut and end in a hash of the whole path


def project_folder_name(path: str) -> str:
    """Every character but an ASCII letter or digit becomes `-`; past MAX_NAME characters the name is cut
    and `-<hash>` added, the hash being the CLI's 32-bit string hash of `path` in base 36."""
    # The CLI replaces UTF-16 code units: a character beyond the BMP is two of them, so two dashes.
    name = "".join(c if c.isascii() and c.isalnum() else "-" * (1 + (ord(c) > 0xFFFF)) for c in path)
    if len(name) <= MAX_NAME:
        return name
    return f"{name[:MAX_NAME]}-{_base36(abs(_string_hash(path)))}"


def _string_hash(text: str) -> int:
    """Java's String.hashCode over UTF-16 code units, as a signed 32-bit integer (the CLI's `jCe`)."""
    h = 0
    data = text.encode("utf-16-le")
    for i in range(0, len(data), 2):
        h = (h * 31 + (data[i] | data[i + 1] << 8)) & 0xFFFFFFFF
    return h - (1 << 32) if h >= 1 << 31 else h


def _base36(n: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while True:
        n, r = divmod(n, 36)
        out = digits[r] + out
        if n == 0:
            return out
