#!/usr/bin/env bash
# Installs claude-failover with its test and development tools, then runs the whole test suite (the
# import contracts, ruff and mypy included).
set -euo pipefail
cd "$(dirname "$0")/.."
CFO_EXTRAS="dev${CFO_EXTRAS:+,$CFO_EXTRAS}" bash scripts/install.sh
exec .venv/bin/python -m pytest "$@"
