#!/usr/bin/env bash
# Installs claude-failover and runs the demo: real tmux, simulated agents, no Claude account needed.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
exec .venv/bin/cfo demo "$@"
