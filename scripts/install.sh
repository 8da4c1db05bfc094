#!/usr/bin/env bash
# Installs what claude-failover needs on a Debian-like machine: tmux, Python venv support, and the
# package itself (with its test extra) into ./.venv. Safe to run again; does nothing already done.
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"
    elif command -v sudo >/dev/null 2>&1; then sudo "$@"
    else echo "install.sh: need root to run: $*  (run as root or install sudo)" >&2; exit 1
    fi
}

apt_packages=()
command -v tmux >/dev/null 2>&1 || apt_packages+=(tmux)
python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || apt_packages+=(python3-venv)
if [ "${#apt_packages[@]}" -gt 0 ]; then
    if ! command -v apt-get >/dev/null 2>&1; then
        echo "install.sh: please install: ${apt_packages[*]} (no apt-get here)" >&2
        exit 1
    fi
    echo "install.sh: installing ${apt_packages[*]} with apt-get" >&2
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${apt_packages[@]}" >/dev/null
fi

[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check -e ".[test${CFO_EXTRAS:+,$CFO_EXTRAS}]"
