#!/usr/bin/env bash
# Slow operations mixed into Encrypt, two builds side by side (issue 15: 1 % of
# RSA-4096 and ML-DSA signs and RSA-2048 data key pairs must not move the
# Encrypt p99 by more than 20 %).
#
#   bench/slowmix.sh OLD_BIN NEW_BIN
#   PAIRS=2 DURATION=8s bench/slowmix.sh OLD_BIN NEW_BIN
#
# Each node runs on CPU 0 and the load generator (one thread) on CPU 1, as in
# bench/speed.sh. First both builds' closed-loop Encrypt maximum (32
# connections); then, at one rate for both (half the lower maximum), for each
# build in ABBA order on a fresh node: `--workload encrypt-with-slow` (one of
# each slow operation per 300 requests) and plain Encrypt at the same rate right
# after. Open-loop latency counts from each request's intended send time.
# Prints one row per run: Encrypt p99 mixed / alone and its ratio, the slow
# operations' outcomes. JSON and node logs are kept in OUT (target/bench-slowmix).
# Environment: PAIRS (1), DURATION (6s), WARMUP (1s), CONNECTIONS (32), PYTHON, OUT,
# CONFIG (a configuration file for every node, e.g. `[audit] enabled = false`).
set -euo pipefail

if [[ $# -ne 2 ]]; then
    echo "usage: $0 OLD_BIN NEW_BIN" >&2
    exit 2
fi
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OLD="$(realpath "$1")"
NEW="$(realpath "$2")"
PAIRS="${PAIRS:-1}"
DURATION="${DURATION:-6s}"
WARMUP="${WARMUP:-1s}"
CONNECTIONS="${CONNECTIONS:-32}"
PYTHON="${PYTHON:-python3}"
OUT="${OUT:-$ROOT/target/bench-slowmix}"
rm -rf "$OUT"
mkdir -p "$OUT"
log() { echo "slowmix: $*" >&2; }
free_port() { "$PYTHON" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

NODE_PID=""
cleanup() { [[ -n $NODE_PID ]] && kill "$NODE_PID" 2>/dev/null && wait "$NODE_PID" 2>/dev/null || true; }
trap cleanup EXIT

# start BIN NAME: a fresh node from BIN on CPU 0; sets PORT, DATA, NODE_PID.
start() {
    local config=()
    [[ -n ${CONFIG:-} ]] && config=(--config "$(realpath "$CONFIG")")
    DATA="$OUT/data-$2"
    PORT="$(free_port)"
    local metrics
    metrics="$(free_port)"
    taskset -c 0 "$1" server "${config[@]}" --data-dir "$DATA" --listen "127.0.0.1:$PORT" \
        --metrics-listen "127.0.0.1:$metrics" >"$OUT/$2.log" 2>&1 &
    NODE_PID=$!
    for _ in $(seq 1 300); do
        "$PYTHON" -c 'import sys,urllib.request; urllib.request.urlopen(sys.argv[1], timeout=1)' \
            "http://127.0.0.1:$metrics/metrics" >/dev/null 2>&1 && return 0
        sleep 0.2
    done
    log "node $2 did not come up"
    exit 1
}
stop() {
    kill "$NODE_PID" 2>/dev/null || true
    wait "$NODE_PID" 2>/dev/null || true
    NODE_PID=""
}
# gen OUTNAME [bench flags...]: the new build's `keyfence bench` on CPU 1.
gen() {
    local out="$1"
    shift
    taskset -c 1 "$NEW" bench --threads 1 --endpoint "https://127.0.0.1:$PORT" \
        --data-dir "$DATA" --pid "$NODE_PID" --json "$@" >"$OUT/$out.json"
}
ENC=(--payload-size 256 --duration "$DURATION" --warmup "$WARMUP" --connections "$CONNECTIONS")

for side in old new; do
    bin=$OLD
    [[ $side == new ]] && bin=$NEW
    start "$bin" "closed-$side"
    log "closed loop, $side"
    gen "closed-$side" --workload encrypt "${ENC[@]}"
    stop
done
RATE="$("$PYTHON" - "$OUT" <<'PY'
import json, sys
print(round(min(json.load(open(f"{sys.argv[1]}/closed-{s}.json"))["ops_per_s"] for s in ("old", "new")) / 2))
PY
)"
log "open loop at $RATE req/s"
echo "$RATE" >"$OUT/rate.txt"

ORDER=()
for ((p = 1; p <= PAIRS; p++)); do
    if ((p % 2)); then ORDER+=("old:$p" "new:$p"); else ORDER+=("new:$p" "old:$p"); fi
done
for run in "${ORDER[@]}"; do
    side="${run%%:*}"
    bin=$OLD
    [[ $side == new ]] && bin=$NEW
    start "$bin" "$side-${run##*:}"
    log "run ${run}: mixed, then Encrypt alone"
    uptime >"$OUT/load-$side-${run##*:}.txt"
    gen "mixed-$side-${run##*:}" --workload encrypt-with-slow "${ENC[@]}" --rate "$RATE"
    gen "alone-$side-${run##*:}" --workload encrypt "${ENC[@]}" --rate "$RATE"
    stop
done

"$PYTHON" - "$OUT" "${ORDER[@]}" <<'PY'
import json, sys
out, runs = sys.argv[1], sys.argv[2:]
def load(n): return json.load(open(f"{out}/{n}.json"))
def op(j, name):
    for o in j.get("operations", []):
        if o["operation"] == name: return o
    return None
def ms(v): return "—" if v is None else f"{v / 1000:.2f}"
rate = open(f"{out}/rate.txt").read().strip()
closed = {s: load(f"closed-{s}")["ops_per_s"] for s in ("old", "new")}
print(f"closed loop Encrypt, ops/s: old {closed['old']:.0f}, new {closed['new']:.0f}; open loop at {rate}/s")
print()
print("| run | Encrypt p99 mixed / alone, ms | ratio | Encrypt p99.9 mixed / alone, ms | slow ops: p50 ms (count ok) | errors in the mix | node µs/op mixed |")
print("|---|---|---|---|---|---|---|")
for run in runs:
    side, n = run.split(":")
    m, a = load(f"mixed-{side}-{n}"), load(f"alone-{side}-{n}")
    e = op(m, "Encrypt") or {}
    pm, pa = (e.get("latency_us") or {}).get("p99"), (a.get("latency_us") or {}).get("p99")
    qm, qa = (e.get("latency_us") or {}).get("p99_9"), (a.get("latency_us") or {}).get("p99_9")
    ratio = "—" if not pm or not pa else f"{pm / pa:.2f}×"
    slow = ", ".join(
        f"{o['operation']} {ms((o.get('latency_us') or {}).get('p50'))} ({o.get('ok', '?')})"
        for o in m.get("operations", [])[1:])
    cpu = (m.get("cpu") or {}).get("node_us_per_op")
    print(f"| {side} {n} | {ms(pm)} / {ms(pa)} | {ratio} | {ms(qm)} / {ms(qa)} | {slow} | {m.get('errors_by_type')} | {'—' if cpu is None else f'{cpu:.1f}'} |")
PY
