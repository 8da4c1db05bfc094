#!/usr/bin/env bash
# Installs claude-failover and its test dependencies, then runs the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
exec .venv/bin/python -m pytest "$@"
