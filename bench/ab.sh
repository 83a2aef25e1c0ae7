#!/usr/bin/env bash
# Two keyfence builds, A (old) and B (new), measured in one run, in interleaved pairs,
# through the same client binary.
#
#   bench/ab.sh OLD_BIN NEW_BIN                 # 5 closed-loop pairs, 2 open-loop, 2 Sign
#   PAIRS=7 DURATION=8s bench/ab.sh OLD_BIN NEW_BIN
#
# Every measurement gets a fresh node (fresh data directory, default TLS, same flags),
# started from the binary under test and stopped afterwards. Pairs run in ABBA order
# (old,new / new,old / ...) so that drifting background load hits both sides alike;
# compare the per-pair ratios, not the absolute figures.
#   1. Encrypt, closed loop (PAIRS pairs);
#   2. Encrypt, open loop at half the median closed-loop rate (OPEN_PAIRS pairs; one
#      rate for both builds), p99;
#   3. Sign with KEY_SPEC (SIGN_PAIRS pairs);
#   4. TLS handshakes X25519 vs X25519MLKEM768 (HANDSHAKE_PAIRS pairs).
# Node CPU per request comes from `keyfence bench --pid`. Every run's JSON, the node
# logs and the load average before each run are kept in OUT (target/ab-run). Not part
# of CI. Only 127.0.0.1 is contacted.
#
# Environment (a count may be 0 to skip that part): PAIRS (5), OPEN_PAIRS (2), SIGN_PAIRS (2), HANDSHAKE_PAIRS (1),
# DURATION (5s), WARMUP (2s), CONNECTIONS (32), PAYLOAD (256), KEY_SPEC (ECC_NIST_P256),
# CLIENT (the `keyfence bench` binary; default NEW_BIN), PYTHON (python3), OUT.
set -euo pipefail

if [[ $# -ne 2 ]]; then
    echo "usage: $0 OLD_BIN NEW_BIN" >&2
    exit 2
fi
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OLD="$(realpath "$1")"
NEW="$(realpath "$2")"
CLIENT="$(realpath "${CLIENT:-$NEW}")"
PAIRS="${PAIRS:-5}"
OPEN_PAIRS="${OPEN_PAIRS:-2}"
SIGN_PAIRS="${SIGN_PAIRS:-2}"
HANDSHAKE_PAIRS="${HANDSHAKE_PAIRS:-1}"
DURATION="${DURATION:-5s}"
WARMUP="${WARMUP:-2s}"
CONNECTIONS="${CONNECTIONS:-32}"
PAYLOAD="${PAYLOAD:-256}"
KEY_SPEC="${KEY_SPEC:-ECC_NIST_P256}"
PYTHON="${PYTHON:-python3}"
OUT="${OUT:-$ROOT/target/ab-run}"

log() { echo "ab: $*" >&2; }

rm -rf "$OUT"
mkdir -p "$OUT"
{
    echo "old: $OLD ($(sha256sum "$OLD" | cut -c1-16))"
    echo "new: $NEW ($(sha256sum "$NEW" | cut -c1-16))"
    echo "client: $CLIENT"
    echo "nproc: $(nproc)"
    echo "cpu: $(lscpu | sed -n 's/^Model name: *//p' | head -1)"
    echo "kernel: $(uname -r)"
    echo "PAIRS=$PAIRS OPEN_PAIRS=$OPEN_PAIRS SIGN_PAIRS=$SIGN_PAIRS HANDSHAKE_PAIRS=$HANDSHAKE_PAIRS"
    echo "DURATION=$DURATION WARMUP=$WARMUP CONNECTIONS=$CONNECTIONS PAYLOAD=$PAYLOAD KEY_SPEC=$KEY_SPEC"
} >"$OUT/machine.txt"

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

NODE_PID=""
cleanup() {
    if [[ -n "$NODE_PID" ]]; then
        kill "$NODE_PID" 2>/dev/null || true
        wait "$NODE_PID" 2>/dev/null || true
    fi
}
trap cleanup EXIT

# run NAME SIDE(old|new) bench-arguments...: fresh node from SIDE's binary, one bench run.
run() {
    local name="$1" side="$2"; shift 2
    local bin="$OLD"
    [[ "$side" == new ]] && bin="$NEW"
    local data="$OUT/data-$name" port mport
    port="$(free_port)"; mport="$(free_port)"
    "$bin" server --data-dir "$data" --listen "127.0.0.1:$port" \
        --metrics-listen "127.0.0.1:$mport" >"$OUT/$name.node.log" 2>&1 &
    NODE_PID=$!
    wait_http "http://127.0.0.1:$mport/metrics" "$NODE_PID"
    echo "$name $(uptime)" >>"$OUT/load.txt"
    log "$name ($side): keyfence bench $*"
    "$CLIENT" bench "$@" --connections "$CONNECTIONS" --duration "$DURATION" --warmup "$WARMUP" \
        --endpoint "https://127.0.0.1:$port" --data-dir "$data" \
        --metrics "http://127.0.0.1:$mport" --pid "$NODE_PID" --json >"$OUT/$name.json"
    kill "$NODE_PID"
    wait "$NODE_PID" 2>/dev/null || true
    NODE_PID=""
    rm -rf "$data"
}

# pairs KIND COUNT bench-arguments...: COUNT pairs in ABBA order.
pairs() {
    local kind="$1" count="$2"; shift 2
    local i
    for i in $(seq 1 "$count"); do
        if (( i % 2 == 1 )); then
            run "$kind-$i-old" old "$@"; run "$kind-$i-new" new "$@"
        else
            run "$kind-$i-new" new "$@"; run "$kind-$i-old" old "$@"
        fi
    done
}

uptime >"$OUT/load-before.txt"
pairs encrypt "$PAIRS" --workload encrypt --payload-size "$PAYLOAD"
if (( OPEN_PAIRS > 0 )); then
    (( PAIRS > 0 )) || { log "OPEN_PAIRS needs PAIRS > 0 (its rate is half the closed-loop rate)"; exit 2; }
    HALF="$("$PYTHON" -c '
import json, statistics, sys
print(max(1, round(statistics.median(json.load(open(a))["ops_per_s"] for a in sys.argv[1:]) / 2)))
' "$OUT"/encrypt-*.json)"
    log "open loop at $HALF req/s (half the median closed-loop rate of both builds)"
    pairs open "$OPEN_PAIRS" --workload encrypt --payload-size "$PAYLOAD" --rate "$HALF"
fi
pairs sign "$SIGN_PAIRS" --workload sign --key-spec "$KEY_SPEC" --payload-size "$PAYLOAD"
pairs handshakes "$HANDSHAKE_PAIRS" --workload handshakes
uptime >"$OUT/load-after.txt"

"$PYTHON" - "$OUT" <<'EOF'
import json, os, statistics, sys

out = sys.argv[1]
runs = {n[:-5]: json.load(open(os.path.join(out, n))) for n in os.listdir(out) if n.endswith(".json")}

def series(kind, get):
    """(old values, new values, new/old ratio per pair), pairs in order."""
    n = 1
    old, new, ratio = [], [], []
    while f"{kind}-{n}-old" in runs:
        o, w = get(runs[f"{kind}-{n}-old"]), get(runs[f"{kind}-{n}-new"])
        old.append(o); new.append(w)
        ratio.append(w / o if o and w is not None else float("nan"))
        n += 1
    return old, new, ratio

def node_cpu(j):
    return (j.get("cpu") or {}).get("node_us_per_op")

def client_cpu(j):
    return (j.get("cpu") or {}).get("client_us_per_op")

def lat_ms(q):
    return lambda j: (j.get("latency_us") or {}).get(q, 0) / 1000

def group(name, field):
    def get(j):
        for g in j.get("groups", []):
            if g["group"] == name:
                return g.get(field)
    return get

def hs_ratio(j):
    return (j.get("hybrid_over_classical") or {}).get("rate")

def fmt(v):
    return f"{v:,.2f}" if abs(v) < 100 else f"{v:,.0f}"

rows = [
    ("Encrypt closed loop, ops/s", "encrypt", lambda j: j["ops_per_s"]),
    ("Encrypt closed loop, p99 ms", "encrypt", lat_ms("p99")),
    ("Encrypt closed loop, node CPU µs/req", "encrypt", node_cpu),
    ("Encrypt closed loop, client CPU µs/req", "encrypt", client_cpu),
    ("Encrypt open loop (half rate), p50 ms", "open", lat_ms("p50")),
    ("Encrypt open loop (half rate), p99 ms", "open", lat_ms("p99")),
    ("Encrypt open loop (half rate), node CPU µs/req", "open", node_cpu),
    ("Sign, ops/s", "sign", lambda j: j.get("ops_per_s")),
    ("Sign, node CPU µs/req", "sign", node_cpu),
    ("Handshakes X25519, /s", "handshakes", group("X25519", "handshakes_per_s")),
    ("Handshakes X25519MLKEM768, /s", "handshakes", group("X25519MLKEM768", "handshakes_per_s")),
    ("Handshakes hybrid/classical rate", "handshakes", hs_ratio),
    ("Handshake X25519, node CPU µs", "handshakes", group("X25519", "node_cpu_us_per_attempt")),
    ("Handshake X25519MLKEM768, node CPU µs", "handshakes", group("X25519MLKEM768", "node_cpu_us_per_attempt")),
]

print(open(os.path.join(out, "machine.txt")).read().strip())
print("load before:", open(os.path.join(out, "load-before.txt")).read().strip())
print("load after: ", open(os.path.join(out, "load-after.txt")).read().strip())
open_runs = [j for k, j in runs.items() if k.startswith("open-")]
if open_runs:
    print(f"open-loop rate: {open_runs[0].get('rate')} req/s")
errors = {k: j.get("errors") for k, j in runs.items() if j.get("errors")}
print("errors:", errors or "none")
statuses = {k: j.get("status") for k, j in runs.items() if j.get("status") not in (None, "ok")}
if statuses:
    print("not ok:", statuses)
print()
print(f"| measure | pairs | old (median) | new (median) | new/old, median | new/old, min – max |")
print(f"|---|---|---|---|---|---|")
for label, kind, get in rows:
    try:
        old, new, ratio = series(kind, get)
    except (KeyError, TypeError):
        continue
    if not ratio or any(v is None for v in old + new):
        continue
    print(f"| {label} | {len(ratio)} | {fmt(statistics.median(old))} | {fmt(statistics.median(new))} "
          f"| {statistics.median(ratio):.3f} | {min(ratio):.3f} – {max(ratio):.3f} |")
print()
print("per pair (old → new):")
for label, kind, get in rows[:3] + rows[5:6] + rows[7:9]:
    old, new, ratio = series(kind, get)
    if not ratio:
        continue
    print(f"  {label}: " + "; ".join(f"{fmt(o)} → {fmt(w)} ({r:.3f})" for o, w, r in zip(old, new, ratio)))
print()
print(f"JSON of every run: {out}/*.json; load average before each run: {out}/load.txt")
EOF
