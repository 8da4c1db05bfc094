"""Lines a person reads: control, bidi and invisible characters escaped, long lists cut with a count."""

from __future__ import annotations

import unicodedata

from engine.bounded import listed
from engine.safetext import visible


def test_every_control_format_and_separator_character_is_escaped() -> None:
    hidden = [
        chr(code)
        for code in range(0x110000)
        if unicodedata.category(chr(code)) in ("Cc", "Cf", "Zl", "Zp", "Cs")
        or code in (0x115F, 0x1160, 0x3164, 0xFFA0)
    ]

    assert [c for c in hidden if visible(c) == c] == []
    assert visible("a\u202eb\x1bc\U000e0041 日本 é 👍") == "a\\u202eb\\x1bc\\U000e0041 日本 é 👍"
    assert visible("one\ntwo\tthree", multiline=True) == "one\ntwo\\x09three"


def test_a_long_list_shows_its_head_and_counts_the_rest() -> None:
    assert listed(range(3)) == "0, 1, 2"
    assert listed(range(10)) == "0, 1, 2, 3, 4, 5, 6, 7, 8, 9"
    assert listed(range(10_000), sep="; ", shown=2) == "0; 1; … and 9,998 more"
