#!/usr/bin/env bash
# Install gaitwatch into ./.venv on a Debian/Ubuntu machine with Python 3.11+.
#   bash scripts/install.sh          the daemon and its runtime dependencies
#   bash scripts/install.sh --dev    plus everything the test suite needs (pytest, ruff, mypy, mosquitto, ...)
# System packages come from apt (sudo is used when not root); Python packages from PyPI into the venv.
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
# Debian splits venv/ensurepip into python3-venv.
"$PY" -c 'import ensurepip, venv' 2>/dev/null || apt_packages+=(python3-venv)
if [ "$dev" = 1 ]; then
    # The MQTT tests run against a real mosquitto broker on a free loopback port.
    command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || apt_packages+=(mosquitto)
    # The TLS tests make a throw-away CA and certificates with openssl.
    command -v openssl >/dev/null 2>&1 || apt_packages+=(openssl)
    # The Prometheus alert rules are checked and unit-tested with promtool (Debian's prometheus package).
    command -v promtool >/dev/null 2>&1 || apt_packages+=(prometheus)
fi
if [ "${#apt_packages[@]}" -gt 0 ]; then
    SUDO=""
    [ "$(id -u)" -ne 0 ] && SUDO=sudo
    echo "installing system packages: ${apt_packages[*]}"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${apt_packages[@]}" >/dev/null
    # The broker is started by the tests themselves; the Debian service is not needed.
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
