#!/usr/bin/env bash
# Create (or refresh) the Python virtualenv used by the end-to-end suite.
#
#   scripts/setup-python.sh            # venv at target/e2e-venv
#
# Idempotent: the venv is only (re)installed when tests/e2e/requirements.txt
# or the interpreter changed (a stamp file inside the venv records both).
# Needs python3 (3.11+) and access to PyPI; on Debian, python3-venv is
# installed with apt-get when `python3 -m venv` cannot work without it.
# Environment: PYTHON (interpreter, default python3), E2E_VENV (venv path).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON="${PYTHON:-python3}"
VENV="${E2E_VENV:-$ROOT/target/e2e-venv}"
REQS="$ROOT/tests/e2e/requirements.txt"
STAMP="$VENV/.requirements.stamp"

log() { echo "setup-python: $*" >&2; }

command -v "$PYTHON" >/dev/null 2>&1 || { log "$PYTHON not found"; exit 1; }

# Fingerprint: requirements content + interpreter version + this script.
fingerprint() {
    {
        cat "$REQS"
        "$PYTHON" -c 'import sys; print(sys.version)'
        cat "${BASH_SOURCE[0]}"
    } | sha256sum | cut -d' ' -f1
}
WANT="$(fingerprint)"

if [[ -x "$VENV/bin/python" && -f "$STAMP" && "$(cat "$STAMP")" == "$WANT" ]] \
    && "$VENV/bin/python" -c 'import sys' >/dev/null 2>&1; then
    exit 0
fi

# `python3 -m venv` needs ensurepip, which Debian ships in python3-venv.
venv_works() {
    "$PYTHON" -c 'import venv, ensurepip' >/dev/null 2>&1
}
if ! venv_works; then
    if command -v apt-get >/dev/null 2>&1; then
        pyver="$("$PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
        log "installing python${pyver}-venv with apt-get"
        SUDO=""
        [[ "$(id -u)" -ne 0 ]] && command -v sudo >/dev/null 2>&1 && SUDO="sudo"
        export DEBIAN_FRONTEND=noninteractive
        $SUDO apt-get install -y -qq "python${pyver}-venv" python3-venv >/dev/null 2>&1 || {
            $SUDO apt-get update -qq >/dev/null
            $SUDO apt-get install -y -qq "python${pyver}-venv" python3-venv >/dev/null
        }
    fi
    venv_works || { log "'$PYTHON -m venv' is unusable (install python3-venv)"; exit 1; }
fi

log "creating virtualenv at $VENV"
rm -rf "$VENV"
mkdir -p "$(dirname "$VENV")"
"$PYTHON" -m venv "$VENV"
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1
"$VENV/bin/python" -m pip install -q --no-cache-dir -r "$REQS"
"$VENV/bin/python" -m pip check >/dev/null || {
    "$VENV/bin/python" -m pip check >&2
    exit 1
}
echo "$WANT" >"$STAMP"
log "ready ($("$VENV/bin/aws" --version 2>&1 | cut -d' ' -f1))"
