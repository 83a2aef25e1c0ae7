#!/usr/bin/env bash
# Domain-key rotation, same script run for both roots: the time to rotate
# (a new domain key wrapped by the root) and to re-wrap every version of KEYS
# keys until the old domain key is destroyed, with the root as a key in
# memory (the `file` root, and the `shamir` root once unsealed) and in
# SoftHSM2 over PKCS#11; and Encrypt throughput (in-process) quiet vs while
# rotations and re-wraps run back to back, paced as a node paces them.
#
#   bench/domain_keys.sh [KEYS] [THREADS] [SECONDS]   # default 100000 2 10
#
# Runs crates/keyfence-server/examples/domain_key_rotation.rs (release build).
# Run it on a quiet machine (`uptime` load < 2): the figures go to
# bench/RESULTS.md as ratios from one run.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

KEYS="${1:-100000}"
THREADS="${2:-2}"
SECONDS_EACH="${3:-10}"
MODULE="$(scripts/setup-softhsm.sh)"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

export SOFTHSM2_CONF="$WORK/softhsm2.conf"
mkdir "$WORK/tokens"
printf 'directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\n' "$WORK/tokens" >"$SOFTHSM2_CONF"
softhsm2-util --init-token --free --label kf-bench --pin 1234 --so-pin 5678 >/dev/null
export KEYFENCE_PKCS11_PIN=1234

cargo build --release -p keyfence-server --example domain_key_rotation
BIN=target/release/examples/domain_key_rotation
uptime
"$BIN" --root file --keys "$KEYS" --threads "$THREADS" --seconds "$SECONDS_EACH"
"$BIN" --root pkcs11 --module "$MODULE" --token kf-bench \
    --keys "$KEYS" --threads "$THREADS" --seconds "$SECONDS_EACH"
