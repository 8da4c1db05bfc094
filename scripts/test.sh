#!/usr/bin/env bash
# Installs claude-failover with its test and development tools, and the pinned Claude Code CLI for the
# real-CLI lane (tests/realcli), then runs the whole test suite (the import contracts, ruff and mypy
# included). A CLI given in CFO_REAL_CLAUDE is used as it is.
set -euo pipefail
cd "$(dirname "$0")/.."
CFO_EXTRAS="dev${CFO_EXTRAS:+,$CFO_EXTRAS}" bash scripts/install.sh
if [ -z "${CFO_REAL_CLAUDE:-}" ]; then
    # Empty when the CLI cannot be installed: the script has said so, and the lane's tests skip.
    CFO_REAL_CLAUDE="$(bash scripts/install-realcli.sh)"
fi
export CFO_REAL_CLAUDE
exec .venv/bin/python -m pytest "$@"
