#!/usr/bin/env bash
# Install the pinned cargo-deny (crates.io, built from source with its lock file).
#
#   scripts/setup-cargo-deny.sh
#
# Idempotent: does nothing when `cargo deny --version` already reports the
# pinned version; otherwise runs `cargo install --locked` (a few minutes on
# two cores, once per machine). Environment: CARGO_DENY_VERSION overrides the pin.
set -euo pipefail

VERSION="${CARGO_DENY_VERSION:-0.20.2}"

log() { echo "setup-cargo-deny: $*" >&2; }

have="$(cargo deny --version 2>/dev/null | awk '{print $2}' || true)"
if [[ "$have" == "$VERSION" ]]; then
    exit 0
fi
log "installing cargo-deny $VERSION${have:+ (found $have)}"
cargo install --locked --quiet --version "=$VERSION" cargo-deny
log "ready ($(cargo deny --version))"
