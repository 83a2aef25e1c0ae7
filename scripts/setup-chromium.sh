#!/usr/bin/env bash
# Make sure a headless-capable Chromium is installed, for the end-to-end test
# that opens the node's status page in a browser (tests/e2e/test_status_page.py),
# and print its path.
#
#   scripts/setup-chromium.sh         # prints e.g. /usr/bin/chromium
#
# Idempotent: does nothing when `chromium` (or $KEYFENCE_CHROMIUM) is already
# there. Otherwise installs Debian's `chromium` package with apt-get (running
# `apt-get update` first when the package lists have never been fetched, or
# when the first install attempt fails on a stale list). Exits non-zero when it
# cannot; the browser test is then skipped, and says why.
set -euo pipefail

log() { echo "setup-chromium: $*" >&2; }

find_chromium() {
    if [[ -n "${KEYFENCE_CHROMIUM:-}" ]]; then
        [[ -x "$KEYFENCE_CHROMIUM" ]] && echo "$KEYFENCE_CHROMIUM"
        return 0
    fi
    local name
    for name in chromium chromium-browser; do
        if command -v "$name" >/dev/null 2>&1; then
            command -v "$name"
            return 0
        fi
    done
}

bin="$(find_chromium)"
if [[ -z "$bin" ]]; then
    if [[ -n "${KEYFENCE_CHROMIUM:-}" ]]; then
        log "KEYFENCE_CHROMIUM=$KEYFENCE_CHROMIUM is not an executable"
        exit 1
    fi
    command -v apt-get >/dev/null 2>&1 || { log "no chromium and no apt-get: install Chromium by hand"; exit 1; }
    SUDO=""
    if [[ "$(id -u)" != 0 ]]; then
        command -v sudo >/dev/null 2>&1 || { log "installing chromium needs root (or sudo)"; exit 1; }
        SUDO="sudo"
    fi
    export DEBIAN_FRONTEND=noninteractive
    if ! compgen -G '/var/lib/apt/lists/*_Packages*' >/dev/null; then
        log "apt-get update"
        $SUDO apt-get update -q >&2
    fi
    log "apt-get install chromium"
    if ! $SUDO apt-get install -y -q --no-install-recommends chromium >&2; then
        log "install failed; refreshing the package lists once and retrying"
        $SUDO apt-get update -q >&2
        $SUDO apt-get install -y -q --no-install-recommends chromium >&2
    fi
    bin="$(find_chromium)"
    [[ -n "$bin" ]] || { log "chromium installed but not found on PATH"; exit 1; }
fi
echo "$bin"
