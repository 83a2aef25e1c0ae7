#!/usr/bin/env bash
# The whole test suite, as CI runs it: format, lints, dependency policy
# (cargo deny), Rust tests, then the end-to-end suite (real AWS CLI, boto3 and
# AWS Encryption SDK against a real node).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# A clean checkout gains nothing from incremental artefacts, which would only
# take disk; set CARGO_INCREMENTAL=1 to keep them between local runs.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"

step() { printf '\n== %s ==\n' "$*"; }
scripts/setup-postgres.sh >/dev/null # the Rust tests start their own PostgreSQL (crates/keyfence-testkit)
scripts/setup-softhsm.sh >/dev/null # the PKCS#11 root tests use a SoftHSM2 token of their own

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy"
cargo clippy --workspace --all-targets -- -D warnings

step "cargo deny (bans, licenses, sources)"
# Advisories need the RustSec database from GitHub, which CI cannot reach;
# run `cargo deny check advisories` where the network allows (CONTRIBUTING.md).
scripts/setup-cargo-deny.sh
cargo deny --locked check bans licenses sources

step "cargo test"
cargo test --workspace --no-fail-fast

step "end-to-end (AWS CLI, boto3, AWS Encryption SDK, headless Chromium)"
# The status-page test opens the node in headless Chromium; it is skipped only
# when this script cannot install it.
scripts/setup-chromium.sh >/dev/null || echo "test.sh: no Chromium; the browser test will be skipped" >&2
cargo build -p keyfence
KEYFENCE_BIN=target/debug/keyfence tests/e2e/run.sh

step "end-to-end against a node on PostgreSQL"
# Same suite, every node on its own database of one throw-away PostgreSQL server
# (target/debug/temp-postgres, from keyfence-testkit). About 2.5 minutes.
cargo build -p keyfence-testkit --bin temp-postgres
KEYFENCE_E2E_STORE=postgres KEYFENCE_BIN=target/debug/keyfence tests/e2e/run.sh
