#!/usr/bin/env bash
# Run the end-to-end suite against an already-built keyfence binary.
#
#   tests/e2e/run.sh [pytest args...]
#
# Builds nothing. KEYFENCE_BIN selects the binary (default target/debug/keyfence).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
export KEYFENCE_BIN="${KEYFENCE_BIN:-target/debug/keyfence}"
if [[ ! -x "$KEYFENCE_BIN" ]]; then
    echo "run.sh: $KEYFENCE_BIN not found; build it first (cargo build -p keyfence)" >&2
    exit 1
fi
scripts/setup-python.sh
exec target/e2e-venv/bin/python -m pytest tests/e2e -q -p no:cacheprovider "$@"
