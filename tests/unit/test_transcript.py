"""Reading transcripts: every sample under tests/data/transcripts has its expected reading here."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from engine import screen, transcript

DATA = Path(__file__).parent.parent / "data"
TRANSCRIPTS = DATA / "transcripts"
TZ = ZoneInfo("Europe/Madrid")
NOW = datetime(2026, 1, 14, 10, 30, tzinfo=TZ)
SID = "3f2c9a1e-8b4d-4c1a-9e7f-2d6b5a8c0e14"


@dataclass(frozen=True)
class Expect:
    stop: screen.StopKind | None  # how the latest turn ended, if on an API error
    pattern: str | None
    last_status: int | None  # the last API-error record's status, however old
    reset_at: str | None = None


EXPECTED: dict[str, Expect] = {
    "clean.jsonl": Expect(None, None, None),
    "interrupted.jsonl": Expect(None, None, None),
    "quota-429.jsonl": Expect("quota", "transcript:rate_limit", 429, "2026-01-14T13:00:00+01:00"),
    "quota-429-answered.jsonl": Expect(None, None, 429),
    "quota-429-then-status.jsonl": Expect("quota", "transcript:rate_limit", 429, "2026-01-14T13:00:00+01:00"),
    "quota-rate-limit-error-typed.jsonl": Expect("quota", "transcript:rate_limit", 429),
    "server-529.jsonl": Expect("server_error", "transcript:overloaded", 529),
    "server-500.jsonl": Expect("server_error", "transcript:api_error", 500),
    "server-throttle-429.jsonl": Expect("server_error", "transcript:server_throttle", 429),
    "auth-401.jsonl": Expect("auth", "transcript:authentication_failed", 401),
    "auth-not-logged-in.jsonl": Expect("auth", "transcript:authentication_failed", 401),
    "sidechain-429.jsonl": Expect(None, None, None),
    "torn-last-line.jsonl": Expect("quota", "transcript:rate_limit", 429, "2026-01-14T13:00:00+01:00"),
}


def _lines(name: str) -> list[str]:
    return transcript.read_lines(TRANSCRIPTS / name)


def test_every_sample_has_an_expected_reading() -> None:
    on_disk = {p.name for p in TRANSCRIPTS.glob("*.jsonl")}
    assert on_disk - set(EXPECTED) == set(), "samples without an expected reading"
    assert set(EXPECTED) - on_disk == set(), "expected readings without a sample"


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_sample_reads_as_expected(name: str) -> None:
    lines, want = _lines(name), EXPECTED[name]
    error = transcript.turn_stop(lines)
    stop = screen.classify_record(error) if error else None
    assert (stop.kind if stop else None, stop.pattern if stop else None) == (want.stop, want.pattern)
    last = transcript.last_api_error(lines)
    assert (last.status if last else None) == want.last_status
    assert transcript.last_session_id(lines) == SID
    # Next to a pane that shows nothing, the transcript alone decides.
    reading = screen.read(_pane("real-idle-after-turn.txt"), lines, now=NOW, tz=TZ)
    assert (reading.stop, reading.pattern) == (want.stop, want.pattern)
    assert (reading.reset_at.isoformat() if reading.reset_at else None) == want.reset_at


def test_an_api_error_record_keeps_its_fields() -> None:
    error = transcript.turn_stop(_lines("quota-429.jsonl"))
    assert error is not None
    assert (error.status, error.error, error.kind) == (429, "rate_limit", "quota")
    assert error.text == "You've hit your session limit · resets 1pm (Europe/Madrid)"
    assert error.timestamp == datetime.fromisoformat("2026-01-14T09:21:02.731+00:00")
    assert error.session_id == SID


@pytest.mark.parametrize(
    ("status", "error", "kind"),
    [
        (429, "rate_limit", "quota"),
        (None, "rate_limit", "quota"),
        (429, None, "quota"),
        (529, "overloaded", "server_error"),
        (503, None, "server_error"),
        (None, "api_error", "server_error"),
        (401, "authentication_failed", "auth"),
        (403, None, "auth"),
        (400, "invalid_request", None),
        (None, None, None),
    ],
)
def test_kind_from_the_typed_fields(status: int | None, error: str | None, kind: str | None) -> None:
    assert transcript.ApiError(status, error, "", None, None).kind == kind


def test_a_record_without_usable_fields_falls_back_to_its_text() -> None:
    record = transcript.ApiError(None, "unknown", "Claude AI usage limit reached|1768402800", None, None)
    stop = screen.classify_record(record)
    assert stop is not None and (stop.kind, stop.pattern) == ("quota", "transcript:usage_limit_epoch")
    assert screen.classify_record(transcript.ApiError(400, None, "Prompt is too long", None, None)) is None


def test_session_id_is_the_last_valid_one() -> None:
    other = "605d46b9-cbaf-4d65-833b-3ba8b940c183"
    lines = [
        *_lines("clean.jsonl"),
        json.dumps({"type": "user", "sessionId": other}),
        '{"sessionId": "nope"}',
    ]
    assert transcript.last_session_id(lines) == other
    assert transcript.last_session_id(["not json", "[1, 2]"]) is None


# --- the transcript next to the screen --------------------------------------------------------------------


def _pane(name: str) -> str:
    return (DATA / "panes" / name).read_text(encoding="utf-8")


def test_the_transcript_is_preferred_to_the_screen() -> None:
    # The screen reads a quota hit, the record says the server throttled: no swap.
    reading = screen.read(_pane("real-quota-hit-your-limit-paris.txt"), _lines("server-throttle-429.jsonl"))
    assert (reading.stop, reading.pattern, reading.source) == (
        "server_error",
        "transcript:server_throttle",
        "transcript",
    )


def test_a_transcript_stop_without_a_reset_takes_the_screens() -> None:
    reading = screen.read(
        _pane("real-quota-5hour.txt"), _lines("quota-rate-limit-error-typed.jsonl"), now=NOW, tz=TZ
    )
    assert (reading.stop, reading.pattern) == ("quota", "transcript:rate_limit")
    assert reading.reset_at is not None and reading.reset_at.isoformat() == "2026-01-15T03:00:00+01:00"


def test_an_answered_error_in_the_transcript_leaves_the_screen_to_decide() -> None:
    lines = _lines("quota-429-answered.jsonl")
    assert screen.read(_pane("real-idle-after-turn.txt"), lines).stop is None
    reading = screen.read(_pane("real-quota-5hour.txt"), lines, now=NOW, tz=TZ)
    assert (reading.stop, reading.pattern, reading.source) == ("quota", "five_hour_limit", "screen")


# --- reading a growing file -------------------------------------------------------------------------------


def test_read_new_returns_only_complete_new_lines(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    path.write_bytes(b'{"a": 1}\n{"b": 2}\n{"c": ')
    lines, offset = transcript.read_new(path, 0)
    assert lines == ['{"a": 1}', '{"b": 2}']
    assert offset == len(b'{"a": 1}\n{"b": 2}\n')
    assert transcript.read_new(path, offset) == ([], offset)
    with path.open("ab") as f:
        f.write(b'3}\n{"d": 4}\n')
    lines, offset = transcript.read_new(path, offset)
    assert lines == ['{"c": 3}', '{"d": 4}']
    assert offset == path.stat().st_size


def test_read_new_starts_over_when_the_file_shrank(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    path.write_text('{"a": 1}\n{"b": 2}\n', encoding="utf-8")
    _, offset = transcript.read_new(path, 0)
    path.write_text('{"z": 9}\n', encoding="utf-8")
    assert transcript.read_new(path, offset) == (['{"z": 9}'], len('{"z": 9}\n'))


def test_read_new_keeps_a_multibyte_character_split_by_a_write_whole(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    line = '{"text": "resets 2am ∙ Europe/Paris"}\n'.encode()
    cut = line.index("∙".encode()) + 1
    path.write_bytes(line[:cut])
    assert transcript.read_new(path, 0) == ([], 0)
    path.write_bytes(line)
    assert transcript.read_new(path, 0) == ([line.decode().rstrip("\n")], len(line))


def test_a_follower_reads_only_what_was_appended_and_remembers_how_the_turn_ended(tmp_path: Path) -> None:
    lines = _lines("quota-429-answered.jsonl")
    error = next(i for i, line in enumerate(lines) if '"isApiErrorMessage": true' in line)
    path = tmp_path / "t.jsonl"
    path.write_text("\n".join(lines[:error]) + "\n", encoding="utf-8")
    follower = transcript.Follower(path)
    assert follower.poll() is None and follower.stop is None
    with path.open("a", encoding="utf-8") as f:
        f.write(lines[error] + "\n")
    stop = follower.poll()
    assert stop is not None and stop.status == 429 and follower.stop == stop
    assert follower.poll() is None and follower.stop == stop  # no fresh stop, but the turn still ended
    with path.open("a", encoding="utf-8") as f:
        f.write("\n".join(lines[error + 1 :]) + "\n")
    assert follower.poll() is None and follower.stop is None  # the conversation went on after it
    assert follower.offset == path.stat().st_size


def test_a_follower_meeting_a_long_conversation_reads_only_its_tail(tmp_path: Path) -> None:
    lines = _lines("quota-429.jsonl")
    path = tmp_path / "t.jsonl"
    filler = json.dumps({"type": "user", "message": {"role": "user", "content": "x" * 1000}})
    path.write_text("\n".join([filler] * 200 + lines) + "\n", encoding="utf-8")
    follower = transcript.Follower(path)
    stop = follower.poll()
    assert stop is not None and stop.status == 429


def _record(kind: str, uid: str, parent: str | None, at: str, **extra: object) -> str:
    text = extra.pop("text", "hello")
    content: object = text if kind == "user" else [{"type": "text", "text": text}]
    message = {"role": kind, "content": content}
    fields = {"type": kind, "uuid": uid, "parentUuid": parent, "timestamp": at, "sessionId": SID}
    return json.dumps({**fields, "message": message, **extra})


LIMIT = {"isApiErrorMessage": True, "apiErrorStatus": 429, "error": "rate_limit", "text": "You've hit it"}
PROMPT = _record("user", "u2", "a1", "2026-12-06T14:15:51.900Z", text="[t.md] Task")
ERROR = _record("assistant", "a2", "u2", "2026-12-06T14:15:52.409Z", **LIMIT)
EARLIER = [
    _record("user", "u1", None, "2026-12-06T14:10:00.000Z", text="[s.md] Before"),
    _record("assistant", "a1", "u1", "2026-12-06T14:10:05.000Z", text="Done."),
]


def test_the_turns_last_event_is_found_by_parent_and_time_not_by_file_order() -> None:
    # The agent wrote the API-error record before the prompt it answers.
    stop = transcript.turn_stop([*EARLIER, ERROR, PROMPT])
    assert stop is not None and stop.status == 429
    assert transcript.turn_stop([*EARLIER, PROMPT, ERROR]) == stop
    assert transcript.turn_stop([*EARLIER, PROMPT]) is None


def test_a_follower_keeps_the_stop_when_the_older_prompt_arrives_in_a_later_read(tmp_path: Path) -> None:
    path = tmp_path / f"{SID}.jsonl"
    path.write_text("\n".join([*EARLIER, ERROR]) + "\n", encoding="utf-8")
    follower = transcript.Follower(path)
    first = follower.poll()
    assert first is not None and first.status == 429
    with path.open("a", encoding="utf-8") as f:
        f.write(PROMPT + "\n")
    assert follower.poll() is None and follower.stop == first  # the prompt is older: the turn still ended so
    with path.open("a", encoding="utf-8") as f:
        f.write(_record("user", "u3", "a2", "2026-12-06T14:20:00.000Z", text="continue") + "\n")
    assert follower.poll() is None and follower.stop is None  # the conversation went on
