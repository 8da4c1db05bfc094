#!/usr/bin/env bash
# Installs what claude-failover needs on a Debian-like machine: tmux, Python venv support, and the
# package itself (with its test extra) into ./.venv. Safe to run again; does nothing already done: pip
# runs only when pyproject.toml or the extras asked for changed since the last install, or the package
# cannot be imported.
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

if [ ! -x .venv/bin/python ]; then
    echo "install.sh: creating .venv" >&2
    python3 -m venv .venv
fi
# The stamp holds the hash of the pyproject.toml last installed from and the extras installed then. Code
# changes need no install (it is editable), nor do extras already there (the demo after the tests).
stamp=.venv/.cfo-install-stamp
hash="$(sha256sum pyproject.toml | cut -d' ' -f1)"
IFS=, read -ra wanted <<<"test${CFO_EXTRAS:+,$CFO_EXTRAS}"
had_hash="$(sed -n 1p "$stamp" 2>/dev/null || true)"
had_extras="$(sed -n 2p "$stamp" 2>/dev/null || true)"
missing=""
for extra in "${wanted[@]}"; do
    case ",$had_extras," in *",$extra,"*) ;; *) missing="$missing $extra" ;; esac
done
# -I: the check must not find the packages through the current folder.
if [ "$had_hash" = "$hash" ] && [ -z "$missing" ] && [ -x .venv/bin/cfo ] \
    && .venv/bin/python -I -c 'import cfo_tui.cli, engine.core' >/dev/null 2>&1; then
    echo "install.sh: .venv is up to date (pyproject.toml unchanged, extras: $had_extras)" >&2
    exit 0
fi
extras="$(printf '%s\n' "${wanted[@]}" ${had_extras//,/ } | sort -u | paste -sd, -)"
echo "install.sh: installing claude-failover[$extras] into .venv with pip (a few seconds)" >&2
rm -f "$stamp"
.venv/bin/python -m pip install -q --disable-pip-version-check -e ".[$extras]"
printf '%s\n%s\n' "$hash" "$extras" >"$stamp"
