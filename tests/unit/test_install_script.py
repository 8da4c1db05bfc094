"""scripts/install.sh runs pip only when pyproject.toml or the extras asked for changed, or the package is
broken, and says what it does; run in a copy whose .venv python only records how it was called."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

FAKE_PYTHON = """#!/bin/sh
here="$(dirname "$0")"
echo "$*" >>"$here/../calls.log"
if [ "$1" = "-I" ] && [ -e "$here/../broken" ]; then exit 1; fi
exit 0
"""


def executable(path: Path, text: str) -> None:
    path.write_text(text, encoding="utf-8")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    (tmp_path / "scripts").mkdir()
    shutil.copy(ROOT / "scripts" / "install.sh", tmp_path / "scripts" / "install.sh")
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    venv = tmp_path / ".venv" / "bin"
    venv.mkdir(parents=True)
    executable(venv / "python", FAKE_PYTHON)
    executable(venv / "cfo", "#!/bin/sh\n")
    tools = tmp_path / "tools"  # tmux is there, so nothing is asked of apt-get
    tools.mkdir()
    executable(tools / "tmux", "#!/bin/sh\n")
    return tmp_path


def install(checkout: Path, extras: str | None = None) -> tuple[list[str], str]:
    """The pip installs one run made, and what it said."""
    log = checkout / ".venv" / "calls.log"
    log.unlink(missing_ok=True)
    env = {k: v for k, v in os.environ.items() if k != "CFO_EXTRAS"}
    env["PATH"] = f"{checkout / 'tools'}{os.pathsep}{env['PATH']}"
    if extras is not None:
        env["CFO_EXTRAS"] = extras
    done = subprocess.run(
        ["bash", str(checkout / "scripts" / "install.sh")],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    calls = log.read_text().splitlines() if log.exists() else []
    return [c.rsplit(" ", 1)[1] for c in calls if c.startswith("-m pip install")], done.stderr


def test_a_second_run_installs_nothing(checkout: Path) -> None:
    assert install(checkout) == (
        [".[test]"],
        "install.sh: installing claude-failover[test] into .venv with pip (a few seconds)\n",
    )
    assert install(checkout) == (
        [],
        "install.sh: .venv is up to date (pyproject.toml unchanged, extras: test)\n",
    )


def test_new_extras_install_and_extras_already_there_do_not(checkout: Path) -> None:
    install(checkout)
    assert install(checkout, "dev")[0] == [".[dev,test]"]
    assert install(checkout)[0] == []  # the demo after the tests: test is there already
    assert install(checkout, "dev")[0] == []


def test_a_changed_pyproject_or_a_broken_package_installs_again(checkout: Path) -> None:
    install(checkout, "dev")
    with (checkout / "pyproject.toml").open("a", encoding="utf-8") as f:
        f.write("\n# a new dependency, say\n")
    assert install(checkout)[0] == [".[dev,test]"]  # the extras installed before stay installed
    assert install(checkout)[0] == []
    (checkout / ".venv" / "broken").touch()
    assert install(checkout)[0] == [".[dev,test]"]
    (checkout / ".venv" / "broken").unlink()
    (checkout / ".venv" / ".cfo-install-stamp").unlink()  # a .venv from before the stamp
    assert install(checkout)[0] == [".[test]"]
