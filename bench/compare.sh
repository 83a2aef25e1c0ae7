#!/usr/bin/env bash
# keyfence next to a peer, on this machine, in one run, through the same client.
#
#   bench/compare.sh                      # 10 s per measurement, 32 connections, 256-byte payload
#   DURATION=5s CONNECTIONS=16 bench/compare.sh
#
# What it does (idempotent; every node it starts is stopped on exit):
#   1. a venv at target/bench-venv with moto[server] and boto3 pinned in
#      bench/requirements.txt (reinstalled only when that file changes);
#   2. cargo build --release -p keyfence;
#   3. starts a fresh keyfence node (TLS, default key exchange) and moto_server
#      (moto's AWS mock, plain HTTP), each on a free 127.0.0.1 port;
#   4. drives both with the same `keyfence bench` workload — Encrypt, closed loop —
#      over the same client path: SigV4-signed AWS JSON 1.1 requests on HTTP/1.1
#      keep-alive connections (TLS for keyfence, plain HTTP for moto);
#   5. keyfence only: open loop at half the closed-loop rate (p99), TLS handshakes
#      X25519 vs X25519MLKEM768, then the same node restarted with --post-quantum
#      (handshakes and Encrypt again);
#   6. prints a table; every run's JSON is kept in target/bench-run/.
#
# The load generator shares the CPUs with the node it measures: the figures are
# for the pair. Other work on the machine moves them; compare ratios from one run.
# Not part of CI. Only 127.0.0.1 is ever contacted.
#
# Environment: DURATION (10s), CONNECTIONS (32), PAYLOAD (256), WARMUP (2s),
# PYTHON (python3), BENCH_VENV, CARGO_TARGET_DIR.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
DURATION="${DURATION:-10s}"
CONNECTIONS="${CONNECTIONS:-32}"
PAYLOAD="${PAYLOAD:-256}"
WARMUP="${WARMUP:-2s}"
PYTHON="${PYTHON:-python3}"
VENV="${BENCH_VENV:-$ROOT/target/bench-venv}"
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
WORK="$ROOT/target/bench-run"
REQS="$ROOT/bench/requirements.txt"

log() { echo "compare: $*" >&2; }

# --- 1. Python venv with moto ------------------------------------------------
stamp="$VENV/.requirements.stamp"
want="$( { cat "$REQS"; "$PYTHON" -c 'import sys; print(sys.version)'; } | sha256sum | cut -d' ' -f1)"
if [[ ! -x "$VENV/bin/moto_server" || ! -f "$stamp" || "$(cat "$stamp")" != "$want" ]]; then
    log "creating $VENV (moto[server], boto3)"
    if ! "$PYTHON" -c 'import venv, ensurepip' >/dev/null 2>&1; then
        log "python3-venv missing; installing it with apt-get"
        apt-get install -y python3-venv >/dev/null
    fi
    rm -rf "$VENV"
    "$PYTHON" -m venv "$VENV"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check -r "$REQS"
    echo "$want" > "$stamp"
fi

# --- 2. keyfence --------------------------------------------------------------
log "building keyfence (release)"
cargo build --release -p keyfence --quiet
KF="$TARGET_DIR/release/keyfence"

# --- 3. nodes ----------------------------------------------------------------
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

KF_PORT="$(free_port)"; KF_METRICS="$(free_port)"; MOTO_PORT="$(free_port)"
KF_DATA="$WORK/keyfence-data"
start_keyfence() { # extra server flags...
    "$KF" server --data-dir "$KF_DATA" --listen "127.0.0.1:$KF_PORT" \
        --metrics-listen "127.0.0.1:$KF_METRICS" "$@" >>"$WORK/keyfence.log" 2>&1 &
    KF_PID=$!
    PIDS+=("$KF_PID")
    wait_http "http://127.0.0.1:$KF_METRICS/metrics" "$KF_PID"
}
stop_keyfence() {
    kill "$KF_PID"
    wait "$KF_PID" 2>/dev/null || true
}

log "starting keyfence on 127.0.0.1:$KF_PORT and moto_server on 127.0.0.1:$MOTO_PORT"
start_keyfence
"$VENV/bin/moto_server" -H 127.0.0.1 -p "$MOTO_PORT" >"$WORK/moto.log" 2>&1 &
MOTO_PID=$!
PIDS+=("$MOTO_PID")
wait_http "http://127.0.0.1:$MOTO_PORT/moto-api/" "$MOTO_PID"

# --- 4./5. measurements --------------------------------------------------------
COMMON=(--connections "$CONNECTIONS" --duration "$DURATION" --warmup "$WARMUP")
KF_ARGS=(--endpoint "https://127.0.0.1:$KF_PORT" --data-dir "$KF_DATA"
         --metrics "http://127.0.0.1:$KF_METRICS")
bench() { # name, then bench arguments
    local name="$1"; shift
    log "$name: keyfence bench $*"
    "$KF" bench "$@" --json >"$WORK/$name.json"
}
bench_may_fail() { # a workload the node may not support (it then says so in its JSON)
    bench "$@" || log "$1: the node did not run it (see $WORK/$1.json)"
}

uptime >"$WORK/load-before.txt"
# keyfence, moto, keyfence again (A-B-A): the machine's other load drifts.
bench kf-encrypt --workload encrypt --payload-size "$PAYLOAD" "${COMMON[@]}" "${KF_ARGS[@]}" --pid "$KF_PID"
bench moto-encrypt --workload encrypt --payload-size "$PAYLOAD" "${COMMON[@]}" \
    --endpoint "http://127.0.0.1:$MOTO_PORT" --access-key testing --secret-key testing \
    --metrics none --pid "$MOTO_PID"
bench kf-encrypt-2 --workload encrypt --payload-size "$PAYLOAD" "${COMMON[@]}" "${KF_ARGS[@]}" --pid "$KF_PID"
HALF="$("$PYTHON" -c 'import json,sys; print(max(1, round(sum(json.load(open(a))["ops_per_s"] for a in sys.argv[1:]) / 4)))' "$WORK/kf-encrypt.json" "$WORK/kf-encrypt-2.json")"
bench kf-encrypt-open --workload encrypt --payload-size "$PAYLOAD" "${COMMON[@]}" "${KF_ARGS[@]}" \
    --pid "$KF_PID" --rate "$HALF"
bench kf-handshakes --workload handshakes "${COMMON[@]}" "${KF_ARGS[@]}" --pid "$KF_PID"
bench_may_fail kf-sign --workload sign --key-spec ECC_NIST_P256 --payload-size "$PAYLOAD" "${COMMON[@]}" "${KF_ARGS[@]}" --pid "$KF_PID"

log "restarting keyfence with --post-quantum"
stop_keyfence
start_keyfence --post-quantum
bench kfpq-handshakes --workload handshakes "${COMMON[@]}" "${KF_ARGS[@]}" --pid "$KF_PID"
bench kfpq-encrypt --workload encrypt --payload-size "$PAYLOAD" "${COMMON[@]}" "${KF_ARGS[@]}" \
    --pid "$KF_PID" --post-quantum
uptime >"$WORK/load-after.txt"
{
    echo "nproc: $(nproc)"
    echo "cpu: $(lscpu | sed -n 's/^Model name: *//p' | head -1)"
    echo "memory: $(free -h | awk '/^Mem:/ {print $2}')"
    echo "kernel: $(uname -r)"
} >"$WORK/machine.txt"

# --- 6. table --------------------------------------------------------------------
"$PYTHON" - "$WORK" <<'EOF'
import json, os, sys

work = sys.argv[1]
def load(n):
    try:
        return json.load(open(os.path.join(work, n)))
    except ValueError:
        return {}

r = {n[:-5]: load(n) for n in os.listdir(work) if n.endswith(".json")}

def lat(j, q):
    v = (j.get("latency_us") or {}).get(q)
    return "-" if v is None else f"{v / 1000:.2f}"

def cpu(j):
    c = j.get("cpu") or {}
    return "-" if c.get("node_us_per_op") is None else f"{c['node_us_per_op']:.1f}"

def mem(j):
    m = j.get("node_resident_memory_bytes") or {}
    if m.get("before") is None or m.get("after") is None:
        return "-"
    return f"{m['before'] / 2**20:.1f} → {m['after'] / 2**20:.1f}"

def text(name):
    return open(os.path.join(work, name)).read().strip()

print()
print(text("machine.txt"))
print("load before:", text("load-before.txt"))
print("load after: ", text("load-after.txt"))

kf, kf2, moto = r["kf-encrypt"], r["kf-encrypt-2"], r["moto-encrypt"]
print()
print(f"Encrypt, {kf['payload_size']}-byte payload, {kf['connections']} HTTP/1.1 keep-alive connections, "
      f"closed loop, {kf['duration_s']:g} s (after {kf['warmup_s']:g} s warm-up); keyfence ran before and after moto")
print(f"{'':32}{'keyfence (TLS)':>16}{'keyfence again':>16}{'moto (plain HTTP)':>20}{'keyfence/moto':>15}")
mean = (kf["ops_per_s"] + kf2["ops_per_s"]) / 2
ratio = mean / moto["ops_per_s"] if moto["ops_per_s"] else float("inf")
print(f"{'throughput, ops/s':32}{kf['ops_per_s']:>16.1f}{kf2['ops_per_s']:>16.1f}{moto['ops_per_s']:>20.1f}{ratio:>14.1f}x")
for q, name in (("p50", "p50"), ("p99", "p99"), ("p99_9", "p99.9"), ("max", "max")):
    print(f"{'latency ' + name + ', ms':32}{lat(kf, q):>16}{lat(kf2, q):>16}{lat(moto, q):>20}")
print(f"{'errors':32}{kf['errors']:>16}{kf2['errors']:>16}{moto['errors']:>20}")
print(f"{'connections reopened':32}{kf['reconnects']:>16}{kf2['reconnects']:>16}{moto['reconnects']:>20}")
cr = ""
try:
    cr = f"{moto['cpu']['node_us_per_op'] / ((kf['cpu']['node_us_per_op'] + kf2['cpu']['node_us_per_op']) / 2):>14.1f}x"
except (KeyError, TypeError, ZeroDivisionError):
    pass
print(f"{'server CPU, µs per request':32}{cpu(kf):>16}{cpu(kf2):>16}{cpu(moto):>20}{cr}")
print(f"{'server RSS before → after, MiB':32}{mem(kf):>16}{mem(kf2):>16}{mem(moto):>20}")

o = r["kf-encrypt-open"]
print()
print(f"keyfence Encrypt, open loop at {o['rate']:g} req/s (half the closed-loop rate): "
      f"p50 {lat(o, 'p50')} ms, p99 {lat(o, 'p99')} ms, p99.9 {lat(o, 'p99_9')} ms, max {lat(o, 'max')} ms; "
      f"{o['ok']} ok, {o['errors']} errors, {o.get('missed', 0)} missed")

print()
print("TLS handshakes (full, no resumption), per group offered alone")
print(f"{'node':22}{'group':>16}{'handshakes/s':>14}{'p50 ms':>9}{'ClientHello':>13}{'node CPU µs':>13}  errors   (node CPU per attempt)")
for key, node in (("kf-handshakes", "default"), ("kfpq-handshakes", "--post-quantum")):
    for g in r[key]["groups"]:
        errs = ", ".join(f"{k} {v}" for k, v in g["errors_by_type"].items()) or "none"
        p50 = lat(g, "p50")
        ncpu = g.get("node_cpu_us_per_attempt")
        ncpu = "-" if ncpu is None else f"{ncpu:.0f}"
        print(f"{node:22}{g['group']:>16}{g['handshakes_per_s']:>14.1f}{p50:>9}{g['client_hello_bytes']:>11} B{ncpu:>13}  {errs}")
h = r["kf-handshakes"]["hybrid_over_classical"]
g = r["kf-handshakes"]["groups"]
try:
    cpu_ratio = f", node CPU per handshake classical/hybrid {g[0]['node_cpu_us_per_attempt'] / g[1]['node_cpu_us_per_attempt']:.3f}"
except (KeyError, TypeError, ZeroDivisionError):
    cpu_ratio = ""
print(f"hybrid/classical on the default node: rate {h['rate']}, ClientHello {h['client_hello_bytes']}x{cpu_ratio}")

sg = r["kf-sign"]
print()
if sg.get("status") == "ok":
    print(f"keyfence Sign ({sg['key_spec']}, {sg['signing_algorithm']}, {sg['payload_size']}-byte RAW message): "
          f"{sg['ops_per_s']:.1f} ops/s, p50 {lat(sg, 'p50')} ms, p99 {lat(sg, 'p99')} ms, {sg['errors']} errors, "
          f"node CPU {cpu(sg)} µs/op")
else:
    print(f"keyfence Sign: {sg.get('status')}: {sg.get('unsupported')}")

p = r["kfpq-encrypt"]
print()
print(f"keyfence --post-quantum node, Encrypt with a hybrid-only client: {p['ops_per_s']:.1f} ops/s "
      f"(default node above: {kf['ops_per_s']:.1f}), p99 {lat(p, 'p99')} ms, {p['errors']} errors")
print()
print(f"JSON of every run: {work}/*.json")
EOF
