"""A state_dir that cannot be written at start ends `cfo --no-ui` with one `cfo: …` line and exit status 1,
not a traceback: one that cannot be created, and one that is read-only."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.pipeline_support import Workspace, start_headless

pytestmark = pytest.mark.integration


def one_line_exit(ws: Workspace) -> str:
    log = ws.root / "engine.log"
    engine = start_headless(ws, log)
    try:
        assert engine.wait(timeout=60) == 1
    except subprocess.TimeoutExpired:
        os.killpg(engine.pid, 9)
        raise
    lines = log.read_text().splitlines()
    assert len(lines) == 1 and lines[0].startswith("cfo: "), lines
    assert "Traceback" not in log.read_text()
    return lines[0]


@pytest.fixture
def read_only(tmp_path: Path) -> Iterator[Path]:
    """A folder nothing can be created in: mode 0555, and for root (whom modes do not stop) immutable."""
    folder = tmp_path / "read-only"
    folder.mkdir()
    folder.chmod(0o555)
    immutable = False
    try:
        (folder / "probe").touch()
    except PermissionError:
        pass
    else:
        (folder / "probe").unlink()
        if subprocess.run(["chattr", "+i", str(folder)], capture_output=True).returncode != 0:
            pytest.skip("running as root where chattr +i is not available")
        immutable = True
    yield folder
    if immutable:
        subprocess.run(["chattr", "-i", str(folder)], check=True)
    folder.chmod(0o755)


def test_a_state_dir_that_cannot_be_created_ends_in_one_line(ws: Workspace) -> None:
    blocker = ws.root / "a-file"
    blocker.write_text("not a folder")
    ws.data["state_dir"] = str(blocker / "state")
    line = one_line_exit(ws)
    assert f"state_dir {blocker / 'state'}: cannot be used: Not a directory" in line


def test_a_read_only_state_dir_ends_in_one_line(ws: Workspace, read_only: Path) -> None:
    ws.data["state_dir"] = str(read_only)
    line = one_line_exit(ws)
    assert str(read_only) in line and ("Permission denied" in line or "Operation not permitted" in line)
