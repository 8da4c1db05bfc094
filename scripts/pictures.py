"""What both screenshot scripts do with a console: export it as an SVG that rsvg draws true, and write it
into screenshots/ with its PNG beside it."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from textual.app import App

OUT = Path(__file__).resolve().parents[1] / "screenshots"


def export(app: App[object], title: str) -> str:
    # Simplified: a text drawn across table cells is one run, which rsvg spaces evenly.
    svg = app.export_screenshot(title=title, simplify=True)
    # Without it rsvg collapses the leading spaces of text runs and shifts columns.
    return svg.replace("<svg ", '<svg xml:space="preserve" ', 1)


def converter() -> str | None:
    """rsvg-convert (Debian librsvg2-bin), or None: the SVGs are written alone."""
    return shutil.which("rsvg-convert")


def write(name: str, svg: str, rsvg: str | None) -> Path:
    """screenshots/<name>.svg, and its PNG when `rsvg` is there; returns the SVG's path."""
    OUT.mkdir(exist_ok=True)
    path = OUT / f"{name}.svg"
    path.write_text(svg, encoding="utf-8")
    if rsvg is not None:
        subprocess.run([rsvg, "-o", str(path.with_suffix(".png")), str(path)], check=True)
    return path
