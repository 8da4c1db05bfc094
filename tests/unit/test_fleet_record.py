"""The fleet's shared records as data, and a single-host engine that never loads the fleet's client."""

from __future__ import annotations

import asyncio
import logging
import subprocess
import sys
from pathlib import Path

import pytest

from engine.config_reader import config_from_dict
from engine.fleet.record import AccountRecord, HostView, RecordError, merged_usable


def test_an_account_record_round_trips_and_a_foreign_one_is_refused() -> None:
    record = AccountRecord("secondary", {"primary": 1_900_000_000.0}, "host-1", 1_800_000_000.0, "quota", 3)
    assert AccountRecord.decode(record.encode()) == record
    for raw in (b"not json", b"[]", b'{"active": ""}', b'{"active": "a", "usable_at": {"b": "soon"}}'):
        with pytest.raises(RecordError):
            AccountRecord.decode(raw)


def test_limits_merge_to_the_latest_still_to_come() -> None:
    now = 1000.0
    merged = merged_usable({"a": 2000.0, "b": 500.0}, {"a": 3000.0, "c": 1500.0}, now=now)
    assert merged == {"a": 3000.0, "c": 1500.0}  # b has reset: history


def test_a_host_view_round_trips_and_says_when_it_went_silent() -> None:
    view = HostView("h1", 100.0, "primary", "running", [{"name": "s", "state": "working"}], 3, 1, None)
    assert HostView.decode(view.encode()) == view
    assert not view.silent(105.0, 10.0) and view.silent(111.0, 10.0)
    with pytest.raises(RecordError):
        HostView.decode(b'{"host": "h1"}')


def test_the_fleet_section_is_read_with_one_line_per_problem() -> None:
    base = {"accounts": [{"name": "a", "home": "/tmp/a"}]}
    config = config_from_dict({**base, "fleet": {"url": "nats://127.0.0.1:4222", "host": "box-1"}})
    assert config.fleet is not None and config.fleet.host == "box-1" and config.fleet.prefix == "cfo"
    assert config_from_dict(base).fleet is None
    with pytest.raises(Exception) as problems:
        config_from_dict({**base, "fleet": {"url": "http://x", "host": "a b"}})
    assert "fleet.url: expected a NATS server URL" in str(problems.value)
    assert "fleet.host: expected a name of letters, digits, - and _" in str(problems.value)
    with pytest.raises(Exception) as short:
        config_from_dict(
            {**base, "fleet": {"url": "nats://h:4222", "heartbeat": "20s", "silent_after": "5s"}}
        )
    assert "fleet.silent_after" in str(short.value)


def test_an_engine_without_a_fleet_section_never_imports_the_fleets_client(tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "from engine.config_reader import config_from_dict\n"
        "from engine.core import Engine\n"
        "from engine.tmux import LibtmuxClient\n"
        f"config = config_from_dict({{'accounts': [{{'name': 'a', 'home': '{tmp_path}/a'}}],"
        f" 'state_dir': '{tmp_path}/state'}})\n"
        "Engine(config, LibtmuxClient(socket_name='cfo-never-started')).snapshot()\n"
        "print(sorted(m for m in sys.modules if m == 'nats' or m.startswith(('nats.', 'engine.fleet'))))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr


def test_a_fleet_without_its_client_installed_is_one_line_and_the_host_works_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from engine.core import Engine
    from engine.tmux import LibtmuxClient

    config = config_from_dict(
        {
            "accounts": [{"name": "a", "home": str(tmp_path / "a")}],
            "state_dir": str(tmp_path / "state"),
            "fleet": {"url": "nats://127.0.0.1:4222", "host": "h1"},
        }
    )
    engine = Engine(config, LibtmuxClient(socket_name="cfo-never-started"))
    assert engine.fleet is not None
    monkeypatch.setitem(sys.modules, "nats", None)  # as if nats-py were not installed
    caplog.set_level(logging.ERROR, logger="engine.fleet")
    asyncio.run(engine.fleet.run())
    assert [r.getMessage() for r in caplog.records] == [
        "fleet: the fleet needs nats-py: pip install 'claude-failover[fleet]'; this host works alone"
    ]
    assert engine.fleet.view(0.0).state == "unavailable: nats-py is not installed"
