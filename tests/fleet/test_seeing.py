"""Seeing the fleet: `cfo status --fleet` from any machine with the config, a host that went silent, and
/metrics samples labelled with their host."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from engine.statusviews import metrics_text
from engine.tmux import LibtmuxClient
from tests.fleet.hosts import host_engine, joined, make_host
from tests.fleet.natsserver import NatsServer
from tests.helpers import drop_killed_engine_lock, wait_until
from tests.integration.pipeline_support import run_engines, start_headless

pytestmark = pytest.mark.integration


def cfo_status_fleet(config: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cfo_tui.cli", "--config", str(config), "status", "--fleet", *extra],
        capture_output=True,
        text=True,
        timeout=60,
    )


def cfo_status(config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cfo_tui.cli", "--config", str(config), "status"],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_status_shows_every_host_and_one_killed_goes_silent(
    tmp_path: Path, tmux: LibtmuxClient, tmux2: LibtmuxClient, nats_server: NatsServer
) -> None:
    one = make_host(tmp_path / "one", tmux, nats_server.url, "host-1")
    two = make_host(tmp_path / "two", tmux2, nats_server.url, "host-2")
    two.add_task("web", "long", "Long work\nsim: work 60s")
    proc = start_headless(two)  # host 2 is a process of its own: it can die
    config = tmp_path / "one" / "config.yaml"
    config.write_text(json.dumps(one.data), encoding="utf-8")
    e1 = host_engine(one)
    seen: list[dict[str, object]] = []
    try:

        def both_seen_at_work() -> bool:
            out = cfo_status_fleet(config, "--json")
            if out.returncode != 0:
                return False
            data = json.loads(out.stdout)
            hosts = {h["host"]: h for h in data["hosts"]}
            if set(hosts) == {"host-1", "host-2"} and hosts["host-2"]["running"] == 1:
                seen.append(data)
                return True
            return False

        labelled: list[str] = []

        plain: list[str] = []

        def seen_and_measured() -> bool:
            if joined(e1, 2) and both_seen_at_work():
                labelled.append(metrics_text(e1))  # while the engine runs
                plain.append(cfo_status(config).stdout)
                return True
            return False

        run_engines([e1], seen_and_measured, timeout=90)
        text = cfo_status_fleet(config).stdout
        assert "host-1" in text and "host-2" in text and "web:long" in text and "SILENT" not in text
        assert f"fleet: host-1 joined at {nats_server.url} · 2 host(s)" in plain[0]  # plain `cfo status`
        assert 'cfo_fleet_connected{host="host-1"} 1' in labelled[0]
        assert 'cfo_queue_tasks{queue="inbox",host="host-1"} 0' in labelled[0]

        os.killpg(proc.pid, signal.SIGKILL)  # host 2 dies with its task running
        proc.wait(timeout=10)
        wait_until(
            lambda: "SILENT" in cfo_status_fleet(config).stdout, timeout=30, what="host 2 shown silent"
        )
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        drop_killed_engine_lock(tmux2.socket_name)
    data = json.loads(cfo_status_fleet(config, "--json").stdout)
    hosts = {h["host"]: h for h in data["hosts"]}
    assert hosts["host-2"]["silent"] and hosts["host-2"]["dispatch"] == "running"  # died, said nothing
    assert hosts["host-1"]["dispatch"] == "stopped"  # stopped cleanly: it said so
    assert data["account"] == "primary" and seen


def test_status_fleet_without_a_section_or_a_server_is_one_line(tmp_path: Path, tmux: LibtmuxClient) -> None:
    lone = make_host(tmp_path / "lone", tmux, "nats://127.0.0.1:9", "lone")
    config = tmp_path / "lone.yaml"
    del lone.data["fleet"]
    config.write_text(json.dumps(lone.data), encoding="utf-8")
    out = cfo_status_fleet(config)
    assert out.returncode == 1 and out.stderr.strip().endswith("no fleet: section; this host works alone")
    far = make_host(tmp_path / "far", tmux, "nats://127.0.0.1:9", "far")
    config.write_text(json.dumps(far.data), encoding="utf-8")
    out = cfo_status_fleet(config)
    assert out.returncode == 1 and len(out.stderr.strip().splitlines()) == 1
    assert "cannot reach nats://127.0.0.1:9" in out.stderr
