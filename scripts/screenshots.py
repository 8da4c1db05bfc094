"""Regenerate screenshots/*.svg and *.png from the snapshot apps in tests/tui/scenes.py.

PNGs come from `rsvg-convert` (Debian `librsvg2-bin`); the agent's glyphs (⏺ ⎿ ⏵) need a font
that has them, e.g. Debian `fonts-symbola`, or they show as boxes in the PNGs (the SVGs are fine).

Run: .venv/bin/python scripts/screenshots.py [SCENE ...]
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
# Clock times in the pictures are the frozen clock's, in UTC, on every machine.
os.environ["TZ"] = "UTC"
time.tzset()

from pictures import converter, export, write  # noqa: E402

from tests.tui.scenes import SCENES, Scene, settle  # noqa: E402


async def shoot(scene: Scene) -> str:
    app = scene.build()
    async with app.run_test(size=scene.size, notifications=True) as pilot:
        await scene.before(pilot)
        await pilot.press(*scene.press)
        await settle(pilot)
        return export(app, f"cfo · {scene.size[0]}x{scene.size[1]}")


def main(names: list[str]) -> int:
    unknown = [n for n in names if n not in SCENES]
    if unknown:
        print(
            f"screenshots: unknown scene(s): {', '.join(unknown)}; known: {', '.join(SCENES)}",
            file=sys.stderr,
        )
        return 2
    rsvg = converter()
    if rsvg is None:
        print(
            "screenshots: rsvg-convert not found (apt-get install librsvg2-bin); writing SVG only",
            file=sys.stderr,
        )
    for name in names or list(SCENES):
        svg_path = write(name, asyncio.run(shoot(SCENES[name])), rsvg)
        print(svg_path.relative_to(ROOT), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
