#!/usr/bin/env bash
# The whole table of issue 15 in one run: the floor of an Encrypt, node CPU per
# Encrypt, the closed-loop maximum of a node on one CPU, the open-loop tail at
# 50 % and 80 % of it, the tail with slow operations mixed in, HTTP/2 against
# HTTP/1.1, full and resumed handshakes (hybrid vs classical; on the wire, and
# the server's share of an in-memory handshake: benches/handshake_floor.rs), and resident
# memory with many idle connections and with many keys.
#
#   bench/speed.sh                       # everything, about 6 minutes plus the keys
#   LABEL=before bench/speed.sh          # keep this run's files apart
#   KEYS=0 FLOOR=0 bench/speed.sh        # skip the 100,000 keys and the criterion floor
#
# Every node runs on CPU 0 (taskset -c 0) and every load generator on CPU 1
# (taskset -c 1, one worker thread), so neither steals from the other. The
# request figures are taken twice, from a node with the audit log on (the
# default) and one with `[audit] enabled = false`, alternating on/off per
# measurement. Open-loop latency counts from each request's intended send time
# (no coordinated omission). Only 127.0.0.1 is contacted; every node stops on exit.
# The JSON of every measurement is kept in target/bench-speed/$LABEL/, the
# summary (markdown) in target/bench-speed/$LABEL/summary.md.
#
# Environment: LABEL (run), DURATION (5s), WARMUP (1s), CONNECTIONS (32),
# HANDSHAKE_CONNECTIONS (16), IDLE_CONNECTIONS (9900: a process here may open
# 20,000 files and a node admits half of them), KEYS (100000; made by CreateKey
# in rounds of 10 s, at most KEY_ROUNDS (40) of them), FLOOR (1),
# AUDIT ("on off"), KF (a keyfence binary to use instead of building one),
# ONLY_FLOOR (1: the floor only), PYTHON (python3), CARGO_TARGET_DIR.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
LABEL="${LABEL:-run}"
DURATION="${DURATION:-5s}"
WARMUP="${WARMUP:-1s}"
CONNECTIONS="${CONNECTIONS:-32}"
HANDSHAKE_CONNECTIONS="${HANDSHAKE_CONNECTIONS:-16}"
IDLE_CONNECTIONS="${IDLE_CONNECTIONS:-9900}"
KEYS="${KEYS:-100000}"
KEY_ROUNDS="${KEY_ROUNDS:-40}"
FLOOR="${FLOOR:-1}"
AUDIT="${AUDIT:-on off}"
PYTHON="${PYTHON:-python3}"
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
WORK="$ROOT/target/bench-speed/$LABEL"
NODE_CPU=0
GEN_CPU=1

log() { echo "speed: $*" >&2; }

if [[ -n ${KF:-} ]]; then
    log "using $KF (not building)"
else
    log "building keyfence (release)"
    cargo build --release -p keyfence --quiet
    KF="$TARGET_DIR/release/keyfence"
fi

rm -rf "$WORK"
mkdir -p "$WORK"
git rev-parse --short HEAD >"$WORK/commit.txt"
git status --porcelain --untracked-files=no | grep -q . && echo "(with uncommitted changes)" >>"$WORK/commit.txt"
echo "binary $KF" >>"$WORK/commit.txt"

if [[ $FLOOR == 1 ]]; then
    log "floor: cargo bench -p keyfence-bench --bench floor"
    rm -rf "$TARGET_DIR/criterion/encrypt_floor" "$TARGET_DIR/criterion/encrypt_keyfence" \
        "$TARGET_DIR/criterion/server_full" "$TARGET_DIR/criterion/server_resumed" "$TARGET_DIR/criterion/kx"
    taskset -c "$NODE_CPU" cargo bench -p keyfence-bench --bench floor --quiet -- \
        --warm-up-time 1 --measurement-time 4 >"$WORK/floor.txt" 2>&1
    log "handshake floor: cargo bench -p keyfence-bench --bench handshake_floor"
    taskset -c "$NODE_CPU" cargo bench -p keyfence-bench --bench handshake_floor --quiet -- \
        --warm-up-time 1 --measurement-time 4 >"$WORK/handshake-floor.txt" 2>&1
    "$PYTHON" - "$TARGET_DIR/criterion" >"$WORK/floor.json" <<'PY'
import json, os, sys
base = sys.argv[1]
out = {}
for group in ("encrypt_floor", "encrypt_keyfence", "server_full", "server_resumed", "kx"):
    d = os.path.join(base, group)
    if not os.path.isdir(d):
        continue
    for name in sorted(os.listdir(d)):
        est = os.path.join(d, name, "new", "estimates.json")
        if os.path.exists(est):
            e = json.load(open(est))
            # The handshake groups' members share names (classical, hybrid).
            key = name if group.startswith("encrypt_") else f"handshake {group}/{name}"
            out[key] = {"mean_ns": e["mean"]["point_estimate"], "median_ns": e["median"]["point_estimate"]}
print(json.dumps(out))
PY
fi

if [[ ${ONLY_FLOOR:-0} == 1 ]]; then
    cat "$WORK/floor.json"
    exit 0
fi

free_port() { "$PYTHON" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_http() { # url pid
    for _ in $(seq 1 300); do
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

declare -A PORT METRICS PID DATA
# start_node NAME [server flags...]: a node on CPU 0 with its own data directory
# (kept if it exists) and configuration $WORK/NAME.toml (if present).
start_node() {
    local name="$1"
    shift
    PORT[$name]="$(free_port)"
    METRICS[$name]="$(free_port)"
    DATA[$name]="$WORK/data-$name"
    local config=()
    [[ -f "$WORK/$name.toml" ]] && config=(--config "$WORK/$name.toml")
    taskset -c "$NODE_CPU" "$KF" server "${config[@]}" --data-dir "${DATA[$name]}" \
        --listen "127.0.0.1:${PORT[$name]}" --metrics-listen "127.0.0.1:${METRICS[$name]}" "$@" \
        >>"$WORK/$name.log" 2>&1 &
    PID[$name]=$!
    PIDS+=("${PID[$name]}")
    wait_http "http://127.0.0.1:${METRICS[$name]}/metrics" "${PID[$name]}"
    log "node $name: pid ${PID[$name]}, port ${PORT[$name]}"
}
stop_node() {
    kill "${PID[$1]}" 2>/dev/null || true
    wait "${PID[$1]}" 2>/dev/null || true
}
# gen NAME OUT [bench flags...]: keyfence bench on CPU 1, one thread, against node NAME.
gen() {
    local name="$1" out="$2"
    shift 2
    taskset -c "$GEN_CPU" "$KF" bench --threads 1 \
        --endpoint "https://127.0.0.1:${PORT[$name]}" --data-dir "${DATA[$name]}" \
        --pid "${PID[$name]}" --json "$@" >"$WORK/$out.json"
}
ops_per_s() { "$PYTHON" -c 'import json,sys; print(json.load(open(sys.argv[1]))["ops_per_s"])' "$1"; }

uptime >"$WORK/load-before.txt"
printf '[audit]\nenabled = false\n' >"$WORK/audit-off.toml"
for audit in $AUDIT; do start_node "audit-$audit"; done

ENC=(--workload encrypt --payload-size 256 --duration "$DURATION" --warmup "$WARMUP")
# Closed loop on one core; its maximum sets the open-loop rates.
for audit in $AUDIT; do
    log "closed loop, audit $audit"
    gen "audit-$audit" "closed-$audit" "${ENC[@]}" --connections "$CONNECTIONS"
done
for audit in $AUDIT; do
    max="$(ops_per_s "$WORK/closed-$audit.json")"
    for pct in 50 80; do
        rate="$("$PYTHON" -c "print(round($max * $pct / 100))")"
        log "open loop at $pct % ($rate req/s), audit $audit"
        gen "audit-$audit" "open$pct-$audit" "${ENC[@]}" --connections "$CONNECTIONS" --rate "$rate"
    done
    rate="$("$PYTHON" -c "print(round($max * 50 / 100))")"
    log "slow operations mixed in at 1 %, at $rate req/s, audit $audit (and Encrypt alone again)"
    gen "audit-$audit" "slowmix-$audit" --workload encrypt-with-slow --payload-size 256 \
        --duration "$DURATION" --warmup "$WARMUP" --connections "$CONNECTIONS" --rate "$rate"
    gen "audit-$audit" "open50b-$audit" "${ENC[@]}" --connections "$CONNECTIONS" --rate "$rate"
    log "HTTP/2 closed loop (8 connections x 4 streams), audit $audit"
    gen "audit-$audit" "http2-$audit" "${ENC[@]}" --http2 --connections 8 --streams 4
done
first_audit="${AUDIT%% *}"
log "handshakes, full and resumed (node audit-$first_audit)"
gen "audit-$first_audit" handshakes-full --workload handshakes --connections "$HANDSHAKE_CONNECTIONS" --duration "$DURATION"
gen "audit-$first_audit" handshakes-resumed --workload handshakes --resume --connections "$HANDSHAKE_CONNECTIONS" --duration "$DURATION"
for audit in $AUDIT; do stop_node "audit-$audit"; done

log "strict (--post-quantum) node: resumed handshakes with a hybrid-only client"
start_node strict --post-quantum
gen strict handshakes-strict-resumed --workload handshakes --resume --post-quantum \
    --connections "$HANDSHAKE_CONNECTIONS" --duration "$DURATION" || true
stop_node strict

log "memory: $IDLE_CONNECTIONS idle keep-alive connections (fresh node)"
printf '[limits]\nmax_connections = %s\n' "$((IDLE_CONNECTIONS + 16))" >"$WORK/idle.toml"
start_node idle
gen idle idle --workload idle-connections --connections "$IDLE_CONNECTIONS" --duration 3s --metrics none
stop_node idle

if [[ $KEYS -gt 0 ]]; then
    log "memory: $KEYS keys"
    start_node keys
    made=0
    round=0
    while [[ $made -lt $KEYS && $round -lt $KEY_ROUNDS ]]; do
        round=$((round + 1))
        gen keys "create-$round" --workload create-key --connections 32 --duration 10s --warmup 0s --metrics none
        made=$((made + $("$PYTHON" -c 'import json,sys; print(json.load(open(sys.argv[1]))["ok"])' "$WORK/create-$round.json")))
        log "  $made keys"
    done
    echo "$made" >"$WORK/keys-made.txt"
    stop_node keys
    # A node starting over them loads every key into its cache.
    start_node keys
    gen keys keys-encrypt "${ENC[@]}" --connections "$CONNECTIONS" --metrics none
    stop_node keys
fi
uptime >"$WORK/load-after.txt"

"$PYTHON" - "$WORK" "$AUDIT" <<'PY' | tee "$WORK/summary.md"
import json, os, sys
work, audits = sys.argv[1], sys.argv[2].split()
def load(n):
    p = os.path.join(work, n + ".json")
    return json.load(open(p)) if os.path.exists(p) and os.path.getsize(p) else None
def lat(j, q, kind=None):
    if j is None: return None
    src = j.get("latency_us") or {}
    if kind is not None:
        for o in j.get("operations", []):
            if o["operation"] == kind: src = o.get("latency_us") or {}
    v = src.get(q)
    return None if v is None else v / 1000.0
def node_us(j):
    return None if j is None else (j.get("cpu") or {}).get("node_us_per_op")
def f(v, fmt="{:.2f}"):
    return "—" if v is None else fmt.format(v)
def mib(b):
    return "—" if b is None else f"{b / 1048576:.1f} MiB"
print(f"commit {open(os.path.join(work, 'commit.txt')).read().strip()}")
print(f"load before: {open(os.path.join(work, 'load-before.txt')).read().strip()}")
print(f"load after:  {open(os.path.join(work, 'load-after.txt')).read().strip()}")
print()
floor = load("floor")
if floor:
    print("| floor step (criterion, one thread, no I/O) | mean |")
    print("|---|---|")
    for k, v in floor.items():
        print(f"| {k} | {v['mean_ns'] / 1000:.2f} µs |")
    print()
cols = " | ".join(f"audit {a}" for a in audits)
print(f"| figure (node on CPU 0, generator on CPU 1) | {cols} |")
print("|---|" + "---|" * len(audits))
def row(name, fn):
    print(f"| {name} | " + " | ".join(fn(a) for a in audits) + " |")
row("closed loop max, 32 conns, ops/s", lambda a: f(load(f"closed-{a}") and load(f"closed-{a}")["ops_per_s"], "{:.0f}"))
row("node CPU per Encrypt, closed loop, µs", lambda a: f(node_us(load(f"closed-{a}")), "{:.1f}"))
if floor and "floor" in floor:
    fl = floor["floor"]["mean_ns"] / 1000
    row("node CPU per Encrypt ÷ floor", lambda a: f(node_us(load(f"closed-{a}")) and node_us(load(f"closed-{a}")) / fl, "{:.2f}×"))
row("closed loop p50 / p99, ms", lambda a: f"{f(lat(load(f'closed-{a}'), 'p50'))} / {f(lat(load(f'closed-{a}'), 'p99'))}")
for pct in (50, 80):
    row(f"open loop {pct} %: rate", lambda a, p=pct: f(load(f"open{p}-{a}") and load(f"open{p}-{a}")["rate"], "{:.0f}/s"))
    row(f"open loop {pct} %: p50 / p99 / p99.9, ms", lambda a, p=pct: " / ".join(f(lat(load(f"open{p}-{a}"), q)) for q in ("p50", "p99", "p99_9")))
    row(f"open loop {pct} %: node CPU per Encrypt, µs", lambda a, p=pct: f(node_us(load(f"open{p}-{a}")), "{:.1f}"))
def slow(a):
    m, b = load(f"slowmix-{a}"), load(f"open50b-{a}")
    pm, pb = lat(m, "p99", "Encrypt"), lat(b, "p99")
    if pm is None or pb is None: return "—"
    return f"{pm:.2f} vs {pb:.2f} ms: {pm / pb:.2f}×"
row("Encrypt p99 at 50 %, 1 % slow ops mixed in vs alone", slow)
def slow_ops(a):
    m = load(f"slowmix-{a}")
    if not m: return "—"
    return ", ".join(f"{o['operation']} p50 {f(lat(m, 'p50', o['operation']))} ms" for o in m["operations"][1:])
row("slow operations' own p50", slow_ops)
row("errors in the slow mix", lambda a: str(load(f"slowmix-{a}") and load(f"slowmix-{a}")["errors_by_type"]))
row("HTTP/2 (8×4 streams) node CPU per Encrypt vs HTTP/1.1, µs", lambda a: f"{f(node_us(load(f'http2-{a}')), '{:.1f}')} vs {f(node_us(load(f'closed-{a}')), '{:.1f}')}")
print()
print("| handshakes (node on CPU 0) | X25519 /s | X25519MLKEM768 /s | hybrid ÷ classical | node µs per handshake (classical / hybrid) | errors |")
print("|---|---|---|---|---|---|")
for name in ("handshakes-full", "handshakes-resumed", "handshakes-strict-resumed"):
    j = load(name)
    if not j or "groups" not in j: continue
    g = {x["group"]: x for x in j["groups"]}
    c, h = g.get("X25519"), g.get("X25519MLKEM768")
    ratio = (j.get("hybrid_over_classical") or {}).get("rate")
    errs = "; ".join(f"{x['group']}: {x['errors_by_type']}" for x in j["groups"] if x["errors_by_type"])
    print(f"| {name[len('handshakes-'):]} | {c['handshakes_per_s']:.0f} | {h['handshakes_per_s']:.0f} | {f(ratio, '{:.3f}')} | {f(c['node_cpu_us_per_attempt'], '{:.0f}')} / {f(h['node_cpu_us_per_attempt'], '{:.0f}')} | {errs or 'none'} |")
print()
idle = load("idle")
if idle:
    m = idle.get("node_resident_memory_bytes") or {}
    print(f"idle connections: {idle['open_connections']} open, errors {idle['errors_by_type']}; node RSS {mib(m.get('before'))} before → {mib(m.get('after'))} with them"
          + (f" ({(m['after'] - m['before']) / max(1, idle['open_connections']) / 1024:.1f} KiB per connection)" if m.get('before') and m.get('after') else ""))
keys = load("keys-encrypt")
if keys:
    made = open(os.path.join(work, "keys-made.txt")).read().strip()
    m = keys.get("node_resident_memory_bytes") or {}
    print(f"keys: {made} keys; a node started over them: RSS {mib(m.get('before'))}, after {keys['ops_per_s']:.0f} Encrypt/s for the run: {mib(m.get('after'))}")
PY
