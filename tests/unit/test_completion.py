"""`cfo completion`: the generated script completes subcommands, options and file names in a real bash."""

from __future__ import annotations

import subprocess
from pathlib import Path

from cfo_tui.cli import build_parser
from cfo_tui.completion import script


def complete(line: str, cwd: Path) -> list[str]:
    """What bash offers for the last word of `line` (a trailing space means a new, empty word)."""
    words = line.split()
    if line.endswith(" "):
        words.append("")
    array = " ".join(f"'{w}'" for w in words)
    program = (
        script(build_parser(), "bash")
        + f"COMP_WORDS=({array}); COMP_CWORD={len(words) - 1}; _cfo; printf '%s\\n' \"${{COMPREPLY[@]}}\"\n"
    )
    out = subprocess.run(["bash", "-c", program], cwd=cwd, capture_output=True, text=True, check=True)
    return [w for w in out.stdout.splitlines() if w]


def test_subcommands_and_their_options_complete(tmp_path: Path) -> None:
    assert complete("cfo de", tmp_path) == ["demo", "delegate"]
    assert complete("cfo delegate ", tmp_path)[:4] == ["submit", "get", "result", "decide"]
    assert complete("cfo delegate result --w", tmp_path) == ["--wait"]
    assert complete("cfo --config x.yaml status --j", tmp_path) == ["--json"]
    assert complete("cfo completion ", tmp_path)[:2] == ["bash", "zsh"]


def test_paths_complete_as_file_names(tmp_path: Path) -> None:
    (tmp_path / "pane.txt").write_text("")
    (tmp_path / "cfg.yaml").write_text("")
    assert complete("cfo screen pa", tmp_path) == ["pane.txt"]
    assert complete("cfo check --config cf", tmp_path) == ["cfg.yaml"]


def test_zsh_loads_the_same_function_through_bashcompinit() -> None:
    text = script(build_parser(), "zsh")
    assert text.startswith("autoload -U +X bashcompinit && bashcompinit\n")
    assert "complete -o filenames -F _cfo cfo" in text
