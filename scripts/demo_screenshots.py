"""Screenshots of the real demo: `cfo demo`'s story (real tmux, simulated agents, the real engine) in the
console at 160×45, taken at three moments — work flowing on the first account, just after the failover,
and after the return to the first account — into screenshots/demo_*.svg and .png.

Run: .venv/bin/python scripts/demo_screenshots.py   (about a minute and a half; needs tmux)
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pictures import converter, export, write  # noqa: E402

from cfo_tui.app import make_app  # noqa: E402
from cfo_tui.demo import Director  # noqa: E402
from engine.config_reader import config_from_dict  # noqa: E402
from engine.core import Engine  # noqa: E402
from engine.tmux import client_for  # noqa: E402
from engine.workspace import Story, build_workspace, remove_workspace  # noqa: E402

SIZE = (160, 45)


def events(path: Path) -> list[dict[str, object]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text("utf-8").splitlines() if line.strip()]


async def tell_and_shoot(workspace: object, config: object, tmux: object) -> dict[str, str]:
    shots: dict[str, str] = {}
    app = make_app(config, Engine(config, tmux))  # type: ignore[arg-type]
    director = Director(workspace, lambda line: print(f"demo: {line}", file=sys.stderr))  # type: ignore[arg-type]
    log = Path(workspace.config["state_dir"]) / "events.jsonl"  # type: ignore[attr-defined]
    moments = {
        "demo_working": lambda e: sum(1 for x in e if x["type"] == "dispatched") >= 4,
        "demo_failover": lambda e: any(x["type"] == "swap" for x in e),
        "demo_returned": lambda e: any(
            x["type"] == "completed" and x.get("task") == director.story.last_task.key for x in e
        ),
    }
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        director.start()
        deadline = time.monotonic() + 240
        try:
            for name, reached in moments.items():
                while not reached(events(log)):
                    if time.monotonic() > deadline:
                        raise SystemExit(f"demo screenshots: the story did not reach {name}")
                    await pilot.pause(0.2)
                await pilot.pause(1.0 if name == "demo_failover" else 0.6)  # the toast and panes catch up
                shots[name] = export(app, f"cfo demo · {SIZE[0]}x{SIZE[1]}")
                print(f"demo screenshots: {name}", file=sys.stderr)
        finally:
            director.stop()
            await pilot.press("q")
    return shots


def main() -> int:
    workspace = build_workspace(4, None, story=Story())
    config = config_from_dict(workspace.config)
    tmux = client_for(config)
    try:
        shots = asyncio.run(tell_and_shoot(workspace, config, tmux))
    finally:
        tmux.kill_server()
        remove_workspace(workspace)
    rsvg = converter()
    for name, svg in shots.items():
        write(name, svg, rsvg)
    return 0


if __name__ == "__main__":
    sys.exit(main())
