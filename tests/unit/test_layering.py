"""The engine and `cfo --no-ui` stay UI-free: neither pulls in Textual."""

from __future__ import annotations

import json
import os
import pkgutil
import subprocess
import sys
from pathlib import Path

import engine
from engine.lock import StateLock


def test_engine_modules_never_import_textual() -> None:
    modules = [
        m.name for m in pkgutil.walk_packages(engine.__path__, "engine.") if not m.name.endswith("__main__")
    ]
    code = (
        "import importlib, json, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in ('textual', 'cfo_tui'))))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []
    assert len(modules) >= 1


def test_cfo_no_ui_runs_up_to_the_engine_without_importing_textual(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    settings = {
        "accounts": [{"name": "primary", "home": str(tmp_path / "home")}],
        "state_dir": str(tmp_path / "state"),
        "projects_dir": str(tmp_path / "src"),
        "tmux": {"socket_name": f"cfo-never-started-{os.getpid()}"},
    }
    config.write_text(json.dumps(settings), encoding="utf-8")  # JSON is YAML
    (tmp_path / "state").mkdir()
    code = (
        "import json, sys\n"
        "from cfo_tui.cli import main\n"
        f"status = main(['--no-ui', '--config', {str(config)!r}])\n"
        "print(json.dumps([status, sorted(sys.modules)]))\n"
    )
    # Held here, the state_dir's lock stops the engine as it starts: the whole `--no-ui` path has run
    # (arguments, config, tmux client, headless runner, engine) and the process ends at once.
    lock = StateLock(tmp_path / "state")
    lock.acquire()
    try:
        out = subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
            env={**os.environ, "HOME": str(tmp_path)},
        )
    finally:
        lock.release()
    status, modules = json.loads(out.stdout.strip().splitlines()[-1])
    assert status == 1 and "another cfo" in out.stderr
    assert {"cfo_tui.headless", "engine.core"} <= set(modules)
    assert [m for m in modules if m.split(".")[0] == "textual"] == []
