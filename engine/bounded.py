"""Long lists in what cfo writes (log lines, event reasons, sidecars, status): a head, then a count."""

from __future__ import annotations

from collections.abc import Iterable

LIST_SHOWN = 10
"""Items a list shows before `… and N more`: a task may name 10,000 dependencies; a person reads the line."""


def listed(items: Iterable[object], sep: str = ", ", shown: int = LIST_SHOWN) -> str:
    """`a, b, c` — or, past `shown` items, the first `shown` and `… and 9,990 more`."""
    head: list[str] = []
    rest = 0
    for item in items:
        if len(head) < shown:
            head.append(str(item))
        else:
            rest += 1
    return sep.join(head) + (f"{sep}… and {rest:,} more" if rest else "")
