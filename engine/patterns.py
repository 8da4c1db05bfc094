"""The screen patterns: the shipped patterns.yaml, then the user's screen.patterns_file, checked on load."""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from types import MappingProxyType
from typing import Any, cast

import yaml

from engine.transcript import StopKind

STOP_KINDS: tuple[StopKind, ...] = ("quota", "server_error", "auth")

LAYOUT_KEYS: tuple[str, ...] = (
    "rule",
    "box",
    "box_placeholder",
    "prompt_echo",
    "echo_continuation",
    "local_command",
    "answer",
    "tool_call",
    "result",
    "interrupted",
    "spinner",
    "retry_spinner",
    "error_answer",
    "turn_end",
    "paste",
    "session_id",
    "limit_menu",
    "menu_title",
    "agent_exited",
    "shell_prompt",
    "reset_epoch",
    "reset_clock",
)
_REQUIRED_GROUPS: Mapping[str, frozenset[str]] = {
    "session_id": frozenset({"id"}),
    "reset_epoch": frozenset({"epoch"}),
    "reset_clock": frozenset({"hour"}),
}
_ENTRY_KEYS: Mapping[str, frozenset[str]] = {
    "layout": frozenset({"regex", "example", "label"}),
    "stops": frozenset({"name", "kind", "regex", "example", "label"}),
    "warnings": frozenset({"name", "regex", "example", "label"}),
}
TRANSCRIPT = "transcript:"
"""The prefix of a stop read from a conversation's API-error record rather than the screen."""
TRIGGER_LABELS: Mapping[str, str] = {
    "operator": "operator",
    "limit_reset": "limit reset",
    "back_to_first": "back to first account",
    "fleet": "another host",
}
"""What starts a swap besides a pattern on screen: the operator, and the engine when a limit resets."""
RECORD_LABELS: Mapping[str, str] = {
    "rate_limit": "API 429",
    "overloaded": "API 529 overloaded",
    "api_error": "API 500",
    "server_error": "API 5xx",
    "authentication_failed": "API 401",
}
"""A conversation's API-error record by its `error` field (a bare status reads `API <status>`)."""


class PatternError(ValueError):
    """A patterns file is unreadable or an entry is wrong; the message names the file and the key."""


@dataclass(frozen=True)
class Pattern:
    """One entry of a patterns file (`source`); `kind` is set for stops only."""

    name: str
    regex: re.Pattern[str]
    example: str
    source: str
    kind: StopKind | None = None
    label: str | None = None
    """What a person reads for it (`session limit`, `API 429`): swap rows, toasts, logs, alerts."""


@dataclass(frozen=True)
class Patterns:
    """The layout patterns by key, the stop patterns and the warnings, in file order (user additions last)."""

    layout: Mapping[str, Pattern]
    stops: tuple[Pattern, ...]
    warnings: tuple[Pattern, ...]

    def rx(self, key: str) -> re.Pattern[str]:
        return self.layout[key].regex

    def all(self) -> tuple[Pattern, ...]:
        return (*self.layout.values(), *self.stops, *self.warnings)

    def label(self, name: str | None) -> str:
        """The readable name of what triggered a stop or a swap: a pattern's label, a transcript record's
        (`transcript:rate_limit` reads `API 429`), the operator or a limit reset; "" for none. A name
        without a label (a user's pattern) reads as its words."""
        if not name:
            return ""
        if name in TRIGGER_LABELS:
            return TRIGGER_LABELS[name]
        if name.startswith(TRANSCRIPT):
            inner = name.removeprefix(TRANSCRIPT)
            if inner in RECORD_LABELS:
                return RECORD_LABELS[inner]
            return f"API {inner}" if inner.isdigit() else self.label(inner)
        found = next((p for p in self.all() if p.name == name and p.label), None)
        return found.label if found is not None and found.label else name.replace("_", " ")


def _shipped_text() -> tuple[str, str]:
    # Through importlib.resources, so the file is found in an installed wheel as well as in a checkout.
    ref = resources.files("engine").joinpath("patterns.yaml")
    return str(ref), ref.read_text(encoding="utf-8")


def _parse_file(source: str, text: str) -> dict[str, Any]:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise PatternError(f"{source}: not valid YAML: {exc}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise PatternError(f"{source}: expected a mapping with layout, stops and warnings")
    unknown = sorted(set(data) - set(_ENTRY_KEYS))
    if unknown:
        raise PatternError(
            f"{source}: unknown section(s) {', '.join(unknown)}; expected layout, stops, warnings"
        )
    return cast(dict[str, Any], data)


def _compile(source: str, key: str, entry: Any, section: str) -> Pattern:
    if not isinstance(entry, dict):
        raise PatternError(f"{source}: {key}: expected a mapping with regex and example")
    allowed = _ENTRY_KEYS[section]
    unknown = sorted(set(entry) - allowed)
    if unknown:
        raise PatternError(f"{source}: {key}: unknown key(s) {', '.join(map(str, unknown))}")
    for required in ("regex", "example"):
        if not isinstance(entry.get(required), str) or not entry[required]:
            raise PatternError(f"{source}: {key}.{required}: expected a non-empty string")
    try:
        regex = re.compile(entry["regex"])
    except re.error as exc:
        raise PatternError(f"{source}: {key}.regex: does not compile: {exc}") from exc
    name = key.rsplit(".", 1)[-1]
    missing = _REQUIRED_GROUPS.get(name, frozenset()) - set(regex.groupindex)
    if section == "layout" and missing:
        raise PatternError(f"{source}: {key}.regex: needs the named group(s) {', '.join(sorted(missing))}")
    if not regex.search(entry["example"]):
        raise PatternError(f"{source}: {key}: regex does not match its example {entry['example']!r}")
    label = entry.get("label")
    if label is not None and (not isinstance(label, str) or not label.strip()):
        raise PatternError(f"{source}: {key}.label: expected a non-empty string")
    kind: StopKind | None = None
    if section == "stops":
        if entry.get("kind") not in STOP_KINDS:
            raise PatternError(f"{source}: {key}.kind: expected one of {', '.join(STOP_KINDS)}")
        kind = cast(StopKind, entry["kind"])
    return Pattern(name=name, regex=regex, example=entry["example"], source=source, kind=kind, label=label)


def _named_list(source: str, section: str, entries: Any) -> list[Pattern]:
    if not isinstance(entries, list):
        raise PatternError(f"{source}: {section}: expected a list of entries")
    out: list[Pattern] = []
    for i, entry in enumerate(entries):
        name = entry.get("name") if isinstance(entry, dict) else None
        if not isinstance(name, str) or not re.fullmatch(r"[a-z][a-z0-9_]*", name):
            raise PatternError(f"{source}: {section}[{i}].name: expected a snake_case name")
        if any(p.name == name for p in out):
            raise PatternError(f"{source}: {section}.{name}: defined twice")
        out.append(_compile(source, f"{section}.{name}", entry, section))
    return out


def _merge(base: list[Pattern], extra: list[Pattern]) -> tuple[Pattern, ...]:
    merged = list(base)
    for pattern in extra:
        same = [i for i, p in enumerate(merged) if p.name == pattern.name]
        if same:
            merged[same[0]] = pattern
        else:
            merged.append(pattern)
    return tuple(merged)


def _build(files: Sequence[tuple[str, str]]) -> Patterns:
    layout: dict[str, Pattern] = {}
    stops: tuple[Pattern, ...] = ()
    warnings: tuple[Pattern, ...] = ()
    for source, text in files:
        data = _parse_file(source, text)
        section = data.get("layout") or {}
        if not isinstance(section, dict):
            raise PatternError(f"{source}: layout: expected a mapping of keys to entries")
        for key, entry in section.items():
            if key not in LAYOUT_KEYS:
                raise PatternError(f"{source}: layout.{key}: unknown key; known: {', '.join(LAYOUT_KEYS)}")
            layout[key] = _compile(source, f"layout.{key}", entry, "layout")
        stops = _merge(list(stops), _named_list(source, "stops", data.get("stops") or []))
        warnings = _merge(list(warnings), _named_list(source, "warnings", data.get("warnings") or []))
    missing = [k for k in LAYOUT_KEYS if k not in layout]
    if missing:
        raise PatternError(f"{files[0][0]}: layout: missing key(s) {', '.join(missing)}")
    clash = {p.name for p in stops} & {p.name for p in warnings}
    if clash:
        raise PatternError(f"{files[-1][0]}: {', '.join(sorted(clash))}: named both a stop and a warning")
    return Patterns(layout=MappingProxyType(layout), stops=stops, warnings=warnings)


# Every reader that is given no patterns falls back to the shipped ones: parse and compile them once.
@functools.cache
def _default_patterns() -> Patterns:
    return _build([_shipped_text()])


def load_patterns(override: Path | None = None) -> Patterns:
    """The shipped patterns; `override` (screen.patterns_file) replaces entries by name or adds to lists."""
    if override is None:
        return _default_patterns()
    try:
        text = override.expanduser().read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise PatternError(f"{override}: cannot read the patterns file: {exc}") from exc
    return _build([_shipped_text(), (str(override), text)])
