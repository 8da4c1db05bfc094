"""The libtmux client against a real tmux server on a private socket."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest

from engine.tmux import LibtmuxClient, TmuxClient, TmuxError, socket_path
from tests.helpers import wait_until

pytestmark = pytest.mark.integration

# A raw-mode program that asks for bracketed paste, like the agent, and logs every read it gets.
RECORDER = textwrap.dedent(
    """
    import os, sys, termios, tty
    out = open(sys.argv[1], "ab", buffering=0)
    tty.setraw(0)
    sys.stdout.write("\\x1b[?2004hready\\r\\n"); sys.stdout.flush()
    while True:
        data = os.read(0, 4096)
        out.write(repr(data).encode() + b"\\n")
    """
)


def test_client_satisfies_protocol(tmux: LibtmuxClient) -> None:
    assert isinstance(tmux, TmuxClient)


def test_sessions_are_created_listed_and_killed(tmux: LibtmuxClient, tmp_path: Path) -> None:
    tmux.new_session("ccl-auto-11", tmp_path, env={"CFO_PROBE": "a b;c"}, width=100, height=30)
    assert tmux.has_session("ccl-auto-11")
    assert not tmux.has_session("ccl-auto-1")  # exact match, not a prefix
    assert tmux.list_sessions() == ["ccl-auto-11"]
    tmux.send_text("ccl-auto-11", 'echo "[$CFO_PROBE]"')
    tmux.send_enter("ccl-auto-11")
    wait_until(lambda: "[a b;c]" in tmux.capture("ccl-auto-11"), what="env var echoed")
    assert tmux.current_command("ccl-auto-11") == "sh"
    assert tmux.pane_pid("ccl-auto-11")
    tmux.kill_session("ccl-auto-11")
    assert tmux.list_sessions() == []


def test_multiline_text_arrives_as_one_bracketed_paste(tmux: LibtmuxClient, tmp_path: Path) -> None:
    log = tmp_path / "reads.log"
    script = tmp_path / "recorder.py"
    script.write_text(RECORDER)
    tmux.new_session("rec", tmp_path, command=[sys.executable, str(script), str(log)])
    wait_until(lambda: "ready" in tmux.capture("rec"), what="recorder ready")
    tmux.send_text("rec", "line one\nline two\nline three")
    received = wait_until(lambda: log.read_bytes() if log.exists() and b"201~" in log.read_bytes() else b"")
    data = b"".join(eval(line) for line in received.splitlines())  # the recorder logs repr(bytes)
    assert data.startswith(b"\x1b[200~") and data.endswith(b"\x1b[201~")
    inner = data[len(b"\x1b[200~") : -len(b"\x1b[201~")]
    assert inner.replace(b"\r", b"\n") == b"line one\nline two\nline three"


def test_capture_returns_last_lines_including_scrollback(tmux: LibtmuxClient, tmp_path: Path) -> None:
    tmux.new_session("cap", tmp_path, command=["sh", "-c", "seq 1 200; sleep 30"], height=20)
    wait_until(lambda: "200" in tmux.capture("cap", lines=5), what="seq output")
    text = tmux.capture("cap", lines=50)
    assert text.splitlines() == [str(i) for i in range(151, 201)]


def test_missing_tmux_binary_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(TmuxError, match="tmux not found on PATH"):
        LibtmuxClient(socket_name="cfo-never-started")


@pytest.mark.parametrize("text", ["echo hi;", "echo a\\;", "echo 'x;y' ; true", "a \\; b"])
def test_trailing_semicolons_survive_typing(tmux: LibtmuxClient, tmp_path: Path, text: str) -> None:
    tmux.new_session("semi", tmp_path, command=["sh", "-c", "cat > typed.txt"])
    tmux.send_text("semi", text)
    tmux.send_enter("semi")
    tmux.type_line("semi", text)
    typed = tmp_path / "typed.txt"
    wait_until(lambda: typed.exists() and typed.read_text().count("\n") == 2, what="two lines typed")
    assert typed.read_text().splitlines() == [text, text]


def test_pane_commands_lists_every_session_in_one_call(tmux: LibtmuxClient, tmp_path: Path) -> None:
    tmux.new_session("with space", tmp_path, command=["sh"])
    tmux.new_session("sleeper", tmp_path, command=["sh"])
    tmux.type_line("sleeper", "sleep 30")
    wait_until(lambda: tmux.pane_commands().get("sleeper") == "sleep", what="sleep in the foreground")
    assert tmux.pane_commands() == {"with space": "sh", "sleeper": "sleep"}


def test_capture_many_reads_several_sessions_in_one_call(tmux: LibtmuxClient, tmp_path: Path) -> None:
    for name, word in (("one", "alpha"), ("two words", "beta")):
        tmux.new_session(name, tmp_path, command=["sh"])
        tmux.type_line(name, f"echo {word}-out")
    wait_until(lambda: "beta-out\n" in tmux.capture("two words") + "\n", what="output")
    wait_until(lambda: "alpha-out\n" in tmux.capture("one") + "\n", what="output")
    texts = tmux.capture_many(["one", "two words", "gone"], lines=20)
    assert set(texts) == {"one", "two words"}
    assert texts["one"] == tmux.capture("one", 20)
    assert texts["two words"] == tmux.capture("two words", 20)


def test_killing_a_private_server_leaves_no_socket_file_behind(tmux: LibtmuxClient, tmp_path: Path) -> None:
    tmux.new_session("ccl-auto-11", tmp_path)
    socket_path = Path(tmux._cmd("display-message", "-p", "#{socket_path}")[0])
    assert socket_path.exists()
    tmux.kill_server()
    assert not socket_path.exists()
    assert tmux.list_sessions() == []


def test_respawning_the_only_session_keeps_the_server_and_starts_afresh(
    tmux: LibtmuxClient, tmp_path: Path
) -> None:
    tmux.new_session("only", tmp_path, command=["sh", "-c", "echo first-run; exec sleep 60"])
    wait_until(lambda: "first-run" in tmux.capture("only"), what="the first program")
    for _ in range(5):  # killing the only session instead would take the server down with it
        tmux.respawn("only", tmp_path, ["/bin/sh"])
    assert tmux.list_sessions() == ["only"]
    wait_until(lambda: tmux.current_command("only") == "sh", what="a fresh shell")
    assert "first-run" not in tmux.capture("only", 200)


def test_a_server_that_exited_with_its_last_session_leaves_no_socket_file_behind(
    tmux: LibtmuxClient, tmp_path: Path
) -> None:
    tmux.new_session("only", tmp_path)
    path = Path(tmux._cmd("display-message", "-p", "#{socket_path}")[0])
    assert tmux.socket_name is not None and path == socket_path(tmux.socket_name)
    tmux.kill_session("only")  # the server exits with its last session and leaves its socket file
    wait_until(lambda: tmux.list_sessions() == [], what="the server gone")
    tmux.kill_server()
    assert not path.exists()
