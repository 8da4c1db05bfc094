"""Which conversation file is a session's: by the answers its screen shows, never merely the newest."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from engine.conversations import answers_match, conversation_dir, conversation_on_screen, recent_answers

A = "605d46b9-cbaf-4d65-833b-3ba8b940c183"
B = "11111111-2222-4333-8444-555555555555"
C = "99999999-2222-4333-8444-555555555555"


def answer(text: str) -> dict[str, object]:
    return {
        "type": "assistant",
        "message": {"role": "assistant", "content": [{"type": "text", "text": text}]},
    }


def limit(text: str) -> dict[str, object]:
    return {**answer(text), "isApiErrorMessage": True, "apiErrorStatus": 429, "error": "rate_limit"}


def write(home: Path, cwd: Path, uuid: str, records: list[dict[str, object]], mtime: float) -> Path:
    folder = conversation_dir(home, cwd)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{uuid}.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    os.utime(path, (mtime, mtime))
    return path


def test_the_conversation_whose_latest_answer_is_on_screen_wins_over_a_newer_one(tmp_path: Path) -> None:
    home, cwd = tmp_path / "home", tmp_path / "vault"
    cwd.mkdir()
    write(home, cwd, A, [answer("Done: hello there, operator")], mtime=1000)
    write(home, cwd, B, [answer("Done: the pool task of the vault")], mtime=2000)
    shown = ["Done: hello there, operator"]
    assert conversation_on_screen(home, cwd, shown) == (A, 1)


def test_an_answer_shown_earlier_is_not_a_match_only_the_latest_one(tmp_path: Path) -> None:
    home, cwd = tmp_path / "home", tmp_path / "vault"
    cwd.mkdir()
    write(home, cwd, A, [answer("Done: the same question"), answer("Done: a later one of A")], mtime=2000)
    write(home, cwd, B, [answer("Done: the same question")], mtime=1000)
    assert conversation_on_screen(home, cwd, ["Done: the same question"]) == (B, 1)


def test_the_longer_run_of_matching_answers_breaks_a_tie_and_an_equal_run_is_no_answer(
    tmp_path: Path,
) -> None:
    home, cwd = tmp_path / "home", tmp_path / "vault"
    cwd.mkdir()
    write(home, cwd, A, [answer("Done: first of agent A"), answer("Done: the same question")], mtime=1000)
    write(home, cwd, B, [answer("Done: first of agent B"), answer("Done: the same question")], mtime=2000)
    assert conversation_on_screen(home, cwd, ["Done: first of agent A", "Done: the same question"]) == (A, 2)
    assert conversation_on_screen(home, cwd, ["Done: the same question"]) == (None, 2)  # newer is no proof
    assert conversation_on_screen(home, cwd, ["Done: the same question"], frozenset({B})) == (A, 1)


def test_a_short_answer_or_an_error_record_identifies_nothing(tmp_path: Path) -> None:
    home, cwd = tmp_path / "home", tmp_path / "vault"
    cwd.mkdir()
    path = write(home, cwd, A, [answer("Done."), limit("You've hit your limit · resets 3am")], mtime=1000)
    assert recent_answers(path) == ["Done."]
    assert conversation_on_screen(home, cwd, ["Done."]) == (None, 0)
    assert conversation_on_screen(home, cwd, ["You've hit your limit · resets 3am"]) == (None, 0)
    assert conversation_on_screen(home, cwd, []) == (None, 0)
    assert conversation_on_screen(home, tmp_path / "elsewhere", ["Done: hello there"]) == (None, 0)


def test_files_that_are_not_uuid_conversations_are_ignored(tmp_path: Path) -> None:
    home, cwd = tmp_path / "home", tmp_path / "vault"
    cwd.mkdir()
    folder = conversation_dir(home, cwd)
    folder.mkdir(parents=True)
    (folder / "notes.jsonl").write_text(json.dumps(answer("Done: hello there, operator")) + "\n")
    write(home, cwd, C, [answer("Done: hello there, operator")], mtime=1000)
    assert conversation_on_screen(home, cwd, ["Done: hello there, operator"]) == (C, 1)


def test_answers_match_needs_enough_text_to_tell_conversations_apart() -> None:
    assert answers_match("Done: hello there", ["x", "Done: hello there, and more"])
    assert not answers_match("Done.", ["Done."])
    assert not answers_match("Done: hello there", ["Done: something else"])


@pytest.mark.parametrize(
    ("path", "name"),
    [
        ("/w/docs site/my_app.v2", "-w-docs-site-my-app-v2"),
        ("/p/😀x", "-p---x"),  # two UTF-16 code units, two dashes
        ("/tmp/" + "x" * 250, "-tmp-" + "x" * 195 + "-3v30nt"),  # the hash node computes for this path
    ],
)
def test_a_project_folder_is_named_as_the_cli_names_it(path: str, name: str) -> None:
    from engine.agentpaths import project_folder_name

    assert project_folder_name(path) == name
