#!/usr/bin/env bash
# Install gaitwatch into ./.venv on a Debian/Ubuntu machine with Python 3.11+.
#   bash scripts/install.sh          the daemon, its runtime dependencies and the mosquitto broker the demo starts
#   bash scripts/install.sh --dev    plus everything the test suite needs (pytest, ruff, mypy, openssl, ...)
# System packages come from apt (sudo is used when not root); Python packages from PyPI into the venv.
# Both install the mosquitto broker: the demo and the tests start their own on a free 127.0.0.1 port (MQTT 5).
# Exit codes: 1 Python too old; 3 mosquitto is missing and could not be installed (no root/sudo, no apt-get, or
# apt-get failed); 4 another system package could not be installed; otherwise the failing command's own.
set -euo pipefail
cd "$(dirname "$0")/.."

dev=0
[ "${1:-}" = "--dev" ] && dev=1

PY=${PYTHON:-python3}
if ! "$PY" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' 2>/dev/null; then
    echo "gaitwatch needs Python 3.11 or newer as '$PY' (set PYTHON=/path/to/python3.11)" >&2
    exit 1
fi

apt_packages=()
# mosquitto as Debian installs it (/usr/sbin, not on a normal user's PATH) or anywhere on PATH.
have_mosquitto() { [ -x "$(command -v mosquitto)" ] || [ -x /usr/sbin/mosquitto ] || [ -x /usr/local/sbin/mosquitto ]; }
# The demo and the tests run against a real mosquitto broker; gaitwatch has no built-in one.
have_mosquitto || apt_packages+=(mosquitto)
# Debian splits venv/ensurepip into python3-venv.
"$PY" -c 'import ensurepip, venv' 2>/dev/null || apt_packages+=(python3-venv)
if [ "$dev" = 1 ]; then
    # The TLS tests make a throw-away CA and certificates with openssl.
    command -v openssl >/dev/null 2>&1 || apt_packages+=(openssl)
    # The Prometheus alert rules are checked and unit-tested with promtool (Debian's prometheus package).
    command -v promtool >/dev/null 2>&1 || apt_packages+=(prometheus)
    # `gaitwatch review` is tested in a real headless browser (Playwright). Playwright's own browser download is
    # not reachable from the project's machines, so the tests drive Debian's chromium (tests/browser.py finds it;
    # GAITWATCH_CHROMIUM=/path overrides, and a `python -m playwright install chromium` build is used if present).
    command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || apt_packages+=(chromium)
fi
if [ "${#apt_packages[@]}" -gt 0 ]; then
    SUDO=""
    [ "$(id -u)" -ne 0 ] && SUDO=sudo
    apt_failed=""
    if [ -n "$SUDO" ] && ! command -v sudo >/dev/null 2>&1; then
        apt_failed="not running as root and sudo is not installed"
    elif ! [ -x "$(command -v apt-get)" ]; then
        apt_failed="apt-get is not available (not a Debian/Ubuntu system?)"
    else
        echo "installing system packages: ${apt_packages[*]}"
        { $SUDO apt-get update -qq &&
            DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${apt_packages[@]}" >/dev/null; } ||
            apt_failed="apt-get failed (its error is above)"
    fi
    if ! have_mosquitto; then
        echo "install.sh: the mosquitto MQTT broker is not installed and could not be installed: ${apt_failed:-apt-get installed no mosquitto binary}." >&2
        echo "  The demo and the tests start their own mosquitto on a free 127.0.0.1 port; gaitwatch has no built-in broker." >&2
        echo "  Install it as root (sudo apt-get install mosquitto, or your system's mosquitto package with the binary on" >&2
        echo "  PATH or in /usr/sbin), then run this script again." >&2
        exit 3
    fi
    if [ -n "$apt_failed" ]; then
        echo "install.sh: could not install the system packages ${apt_packages[*]}: $apt_failed." >&2
        echo "  Install them as root (sudo apt-get install ${apt_packages[*]}), then run this script again." >&2
        exit 4
    fi
    # The demo and the tests start their own broker; the Debian service is not needed.
    for service in mosquitto prometheus; do
        if [[ " ${apt_packages[*]} " == *" $service "* ]] && command -v systemctl >/dev/null 2>&1; then
            $SUDO systemctl disable --now "$service" >/dev/null 2>&1 || true
        fi
    done
fi

[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
if [ "$dev" = 1 ]; then
    # strict editable mode: mypy sees the package through the gaitwatch.* package-dir mapping.
    .venv/bin/python -m pip install -q -e ".[dev]" --config-settings editable_mode=strict
    # bench/tracker_peers.py runs roboflow `trackers` (Apache-2.0) as peers. It and supervision require
    # opencv-python (and PyAV), which would shadow the project's OpenCV build, so they are installed without
    # their dependencies, plus the small pure-python modules they import.
    .venv/bin/python -m pip install -q --no-deps trackers==2.6.1 supervision==0.31.2 "pydeprecate>=0.9,<0.14"
    .venv/bin/python -m pip install -q requests rich pyyaml defusedxml
else
    .venv/bin/python -m pip install -q .
fi
echo "gaitwatch installed in $(pwd)/.venv ($(.venv/bin/gaitwatch --version))"
