#!/usr/bin/env bash
# The long soak: the release node as its own process, a legitimate client and
# attackers without credentials against it for SECONDS (default 600).
#
#   scripts/soak.sh [SECONDS]
#
# The driver is the soak test (crates/keyfence-server/tests/soak.rs), built in
# release and pointed at the node through KEYFENCE_SOAK_DATA_DIR; it records
# per interval (SECONDS/60) the legitimate client's p99 and errors and the
# node's resident memory and open descriptors (from /proc/PID), and fails on
# any legitimate error, an interval without service, a p99 over 2 s, RSS
# creeping more than 10 % in the second half, or descriptors beyond what the
# attackers hold. The node runs with the limits below (the CI soak's: short
# timeouts and an 8 MiB request budget, so the attacks press on every limit).
# Output (the table and the summary line) goes to stdout and to OUT
# (target/soak.txt). Only 127.0.0.1 is contacted. Not part of CI (the test's
# 30-second version is).
set -euo pipefail
seconds=${1:-600}
root=$(cd "$(dirname "$0")/.." && pwd)
out=${OUT:-$root/target/soak.txt}
cd "$root"
cargo build --release -p keyfence
test_bin=$(cargo test --release -p keyfence-server --test soak --no-run --message-format=json 2>/dev/null |
    python3 -c 'import json,sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["name"] == "soak":
        print(m["executable"])')
work=$(mktemp -d)
node_pid=""
cleanup() {
    if [[ -n "$node_pid" ]]; then kill "$node_pid" 2>/dev/null || true; wait "$node_pid" 2>/dev/null || true; fi
    rm -rf "$work"
}
trap cleanup EXIT
cat >"$work/soak.toml" <<'EOF'
[limits]
header_read_timeout_secs = 2
body_read_timeout_secs = 2
idle_timeout_secs = 3
request_bytes_budget = 8388608
budget_wait_ms = 500
EOF
target/release/keyfence server --config "$work/soak.toml" --data-dir "$work/data" \
    --listen 127.0.0.1:0 --metrics-listen 127.0.0.1:0 >"$work/node.log" 2>&1 &
node_pid=$!
for _ in $(seq 1 150); do
    if [[ -f "$work/data/node.addr.json" ]] && grep -q "\"pid\":$node_pid" "$work/data/node.addr.json"; then
        break
    fi
    kill -0 "$node_pid" || { cat "$work/node.log"; exit 1; }
    sleep 0.2
done
echo "soak: node pid $node_pid, $seconds s, $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)" | tee "$out"
KEYFENCE_SOAK_DATA_DIR="$work/data" KEYFENCE_SOAK_SECS="$seconds" \
    "$test_bin" --nocapture --test-threads 1 2>&1 | tee -a "$out"
