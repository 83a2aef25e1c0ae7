#!/usr/bin/env bash
# Make sure SoftHSM2 (Debian's `softhsm2`: the PKCS#11 module and
# softhsm2-util) is installed, for the tests of the PKCS#11 root of trust, and
# print the module's path.
#
#   scripts/setup-softhsm.sh        # prints e.g. /usr/lib/softhsm/libsofthsm2.so
#
# Idempotent: does nothing when the module and softhsm2-util are there.
# Otherwise installs `softhsm2` with apt-get (running `apt-get update` first
# when the install fails on a stale or missing package list). The tests find
# the module themselves (KEYFENCE_PKCS11_MODULE overrides both) and make a
# fresh token in a temporary directory per run (SOFTHSM2_CONF).
set -euo pipefail

log() { echo "setup-softhsm: $*" >&2; }

find_module() {
    local m
    for m in "${KEYFENCE_PKCS11_MODULE:-}" /usr/lib/softhsm/libsofthsm2.so \
        /usr/lib/*/softhsm/libsofthsm2.so; do
        if [[ -n "$m" && -f "$m" ]]; then
            echo "$m"
            return 0
        fi
    done
}

module="$(find_module || true)"
if [[ -z "$module" ]] || ! command -v softhsm2-util >/dev/null 2>&1; then
    log "installing softhsm2"
    export DEBIAN_FRONTEND=noninteractive
    if ! apt-get install -y -q softhsm2 >/dev/null 2>&1; then
        apt-get update -q >/dev/null
        apt-get install -y -q softhsm2 >/dev/null
    fi
    module="$(find_module || true)"
    if [[ -z "$module" ]]; then
        log "softhsm2 is installed but libsofthsm2.so was not found"
        exit 1
    fi
    log "ready ($(softhsm2-util --version))"
fi
echo "$module"
