"""Config durations (`500ms`, `30s`, `5m`, `1h`, `7d`, `1h30m`) parsed to and formatted from float seconds."""

from __future__ import annotations

import json
import math
import re

UNITS: dict[str, float] = {"d": 86400.0, "h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}

_NUMBER = re.compile(r"\d+(?:\.\d+)?")
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_COMPOUND = re.compile(r"(?:\d+(?:\.\d+)?(?:ms|s|m|h|d))+")
_RANK = {unit: rank for rank, unit in enumerate(UNITS)}

EXAMPLES = "500ms, 30s, 5m, 1h or 7d"


def _shown(value: str | float) -> str:
    return json.dumps(value, ensure_ascii=False) if isinstance(value, str) else repr(value)


def parse_duration(value: str | float) -> float:
    """Seconds for `value`; a bare number counts as seconds. Raises ValueError naming the value."""
    if isinstance(value, bool):
        raise ValueError(f"expected a duration like {EXAMPLES}, got {str(value).lower()}")
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        text = value.strip()
        if text.startswith("-"):
            raise ValueError(f"expected a duration that is not negative, got {_shown(value)}")
        if _NUMBER.fullmatch(text):
            seconds = float(text)
        elif _COMPOUND.fullmatch(text):
            parts = _PART.findall(text)
            ranks = [_RANK[unit] for _, unit in parts]
            # `30s5m` or `5m5m` is more likely a typo than an intended sum.
            if ranks != sorted(set(ranks)):
                raise ValueError(
                    f"expected units from largest to smallest, each once (like 1h30m), got {_shown(value)}"
                )
            seconds = sum(float(number) * UNITS[unit] for number, unit in parts)
        else:
            raise ValueError(f"expected a duration like {EXAMPLES}, got {_shown(value)}")
    if not math.isfinite(seconds):
        raise ValueError(f"expected a finite duration, got {_shown(value)}")
    if seconds < 0:
        raise ValueError(f"expected a duration that is not negative, got {_shown(value)}")
    return seconds


def format_duration(seconds: float) -> str:
    """The shortest config spelling of `seconds`, to the millisecond: 90 -> `1m30s`, 0.5 -> `500ms`."""
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"cannot format {seconds!r} as a duration")
    left = round(seconds * 1000)
    if left == 0:
        return "0s"
    parts: list[str] = []
    for unit, size in UNITS.items():
        count, left = divmod(left, round(size * 1000))
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)
