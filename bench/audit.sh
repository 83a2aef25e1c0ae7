#!/usr/bin/env bash
# Encrypt throughput with the audit log on vs off, on this machine, in one run.
#
#   bench/audit.sh                       # 10 s per measurement, 32 connections, 256-byte payload
#   ROUNDS=3 DURATION=5s bench/audit.sh
#
# Starts two fresh nodes from the same release build — one with the audit log
# (the default: every request appended by group commit, durable before its
# reply, SQLite synchronous=FULL), one with `[audit] enabled = false` — and
# drives them alternately (on, off, on, off, …) with the same `keyfence bench`
# Encrypt workload, so drifting load on the shared machine falls on both.
# Prints each run and the mean ratio off/on; the JSON of every run is kept in
# target/bench-audit/. Only 127.0.0.1 is contacted; both nodes stop on exit.
#
# Environment: DURATION (10s), CONNECTIONS (32), PAYLOAD (256), WARMUP (2s),
# ROUNDS (2), PYTHON (python3), CARGO_TARGET_DIR, KF (a keyfence binary to run
# instead of building one, e.g. to compare two builds).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
DURATION="${DURATION:-10s}"
CONNECTIONS="${CONNECTIONS:-32}"
PAYLOAD="${PAYLOAD:-256}"
WARMUP="${WARMUP:-2s}"
ROUNDS="${ROUNDS:-2}"
PYTHON="${PYTHON:-python3}"
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
WORK="${WORK:-$ROOT/target/bench-audit}"

log() { echo "audit-bench: $*" >&2; }

if [[ -z "${KF:-}" ]]; then
    log "building keyfence (release)"
    cargo build --release -p keyfence --quiet
    KF="$TARGET_DIR/release/keyfence"
fi

rm -rf "$WORK"
mkdir -p "$WORK"
free_port() { "$PYTHON" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_http() { # url pid
    for _ in $(seq 1 150); do
        kill -0 "$2" 2>/dev/null || { log "process $2 exited early"; return 1; }
        if "$PYTHON" -c 'import sys,urllib.request; urllib.request.urlopen(sys.argv[1], timeout=1)' "$1" >/dev/null 2>&1; then
            return 0
        fi
        sleep 0.2
    done
    log "$1 did not come up"
    return 1
}

PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
}
trap cleanup EXIT

declare -A PORT METRICS PID
for mode in on off; do
    PORT[$mode]="$(free_port)"; METRICS[$mode]="$(free_port)"
    enabled=true; [[ $mode == off ]] && enabled=false
    printf '[audit]\nenabled = %s\n' "$enabled" >"$WORK/$mode.toml"
    "$KF" server --config "$WORK/$mode.toml" --data-dir "$WORK/data-$mode" \
        --listen "127.0.0.1:${PORT[$mode]}" --metrics-listen "127.0.0.1:${METRICS[$mode]}" \
        >>"$WORK/$mode.log" 2>&1 &
    PID[$mode]=$!
    PIDS+=("${PID[$mode]}")
    wait_http "http://127.0.0.1:${METRICS[$mode]}/metrics" "${PID[$mode]}"
done
log "audit on: pid ${PID[on]} port ${PORT[on]}; audit off: pid ${PID[off]} port ${PORT[off]}"

uptime >"$WORK/load-before.txt"
for round in $(seq 1 "$ROUNDS"); do
    for mode in on off; do
        log "round $round, audit $mode"
        "$KF" bench --workload encrypt --payload-size "$PAYLOAD" --connections "$CONNECTIONS" \
            --duration "$DURATION" --warmup "$WARMUP" \
            --endpoint "https://127.0.0.1:${PORT[$mode]}" --data-dir "$WORK/data-$mode" \
            --metrics "http://127.0.0.1:${METRICS[$mode]}" --pid "${PID[$mode]}" \
            --json >"$WORK/$mode-$round.json"
    done
done
uptime >"$WORK/load-after.txt"
RECORDS="$("$KF" audit verify --data-dir "$WORK/data-on" 2>&1 | tee "$WORK/verify.txt" | head -1)"

"$PYTHON" - "$WORK" "$ROUNDS" "$RECORDS" <<'PY'
import json, os, sys
work, rounds, records = sys.argv[1], int(sys.argv[2]), sys.argv[3]
def load(n): return json.load(open(os.path.join(work, n)))
print("load before:", open(os.path.join(work, "load-before.txt")).read().strip())
print("load after: ", open(os.path.join(work, "load-after.txt")).read().strip())
print(f"{'run':10}{'ops/s':>12}{'p50 ms':>10}{'p99 ms':>10}{'node µs/op':>12}{'errors':>8}")
tot = {"on": [], "off": []}
cpu = {"on": [], "off": []}
for r in range(1, rounds + 1):
    for m in ("on", "off"):
        j = load(f"{m}-{r}.json")
        lat = j.get("latency_us") or {}
        c = (j.get("cpu") or {}).get("node_us_per_op")
        tot[m].append(j["ops_per_s"])
        if c is not None: cpu[m].append(c)
        print(f"{m + ' ' + str(r):10}{j['ops_per_s']:>12.1f}{lat.get('p50', 0)/1000:>10.2f}{lat.get('p99', 0)/1000:>10.2f}"
              f"{(c or 0):>12.1f}{j['errors']:>8}")
on, off = sum(tot["on"]) / rounds, sum(tot["off"]) / rounds
print(f"mean throughput: audit on {on:.1f} ops/s, off {off:.1f} ops/s; on/off = {on/off:.3f} ({(1 - on/off) * 100:+.1f} % cost)")
if cpu["on"] and cpu["off"]:
    con, coff = sum(cpu["on"]) / len(cpu["on"]), sum(cpu["off"]) / len(cpu["off"])
    print(f"node CPU per request: on {con:.1f} µs, off {coff:.1f} µs; on/off = {con/coff:.3f}")
print("audit verify of the 'on' node:", records)
PY
