#!/usr/bin/env bash
# Installs the pinned Claude Code CLI for the real-CLI test lane into a cache outside the checkout
# (${CFO_REALCLI_CACHE:-~/.cache/cfo/claude-code-<version>}), once, and prints the path of its `claude` on
# stdout. Installs nodejs and npm with apt-get when npm is missing and it can; when it cannot, or the
# install fails, it says on one line that the lane will be skipped, prints nothing on stdout and exits 0.
set -euo pipefail
cd "$(dirname "$0")/.."

version="$(tr -d '[:space:]' < tests/realcli/claude-code-version)"
cache="${CFO_REALCLI_CACHE:-$HOME/.cache/cfo/claude-code-$version}"
claude="$cache/node_modules/.bin/claude"

skip() {
    echo "install-realcli.sh: REAL-CLI LANE WILL BE SKIPPED: $*" >&2
    exit 0
}

installed() {
    [ -x "$claude" ] && [[ "$("$claude" --version 2>/dev/null)" == "$version "* ]]
}

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"
    elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then sudo "$@"
    else return 1
    fi
}

if ! installed; then
    if ! command -v npm >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
        echo "install-realcli.sh: installing nodejs and npm with apt-get" >&2
        as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq \
            && as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null \
            || true
    fi
    command -v npm >/dev/null 2>&1 \
        || skip "npm is not installed and could not be (install nodejs and npm, then run $0)"
    echo "install-realcli.sh: installing @anthropic-ai/claude-code@$version into $cache" >&2
    mkdir -p "$cache"
    npm install --prefix "$cache" --save-exact --no-audit --no-fund --loglevel=error \
        "@anthropic-ai/claude-code@$version" >&2 \
        || skip "npm install of @anthropic-ai/claude-code@$version failed (see above)"
    installed || skip "$claude does not run as Claude Code $version after the install"
fi
echo "$claude"
