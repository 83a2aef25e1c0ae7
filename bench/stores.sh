#!/usr/bin/env bash
# A node on SQLite and a node on PostgreSQL measured side by side, in one run.
#
#   cargo build --release -p keyfence -p keyfence-testkit
#   bench/stores.sh                          # everything, scales 10,000 and 1,000,000 keys
#   SCALES= PAIRS=1 bench/stores.sh          # quicker: no scale runs (SCALES=10000: only 10,000 keys)
#
# PostgreSQL is a throw-away server started by the testkit's `temp-postgres` (initdb +
# pg_ctl on a temporary directory and a free port), removed at the end. Only 127.0.0.1
# is contacted. Not part of CI. What it measures, with `keyfence bench` and the hidden
# measurement tools `keyfence store fill` / `keyfence store propagation`:
#   1. Encrypt throughput (closed loop) on a SQLite node and a PostgreSQL node, in
#      PAIRS pairs in ABBA order (SQLite, PostgreSQL / PostgreSQL, SQLite / ...);
#   2. CreateKey per second on each (`--workload create-key`), likewise;
#   3. propagation from CreateKey acknowledged at one node to DescribeKey answering at
#      another: two nodes on PostgreSQL (LISTEN/NOTIFY), and for comparison two nodes on
#      one shared SQLite file (polled every 100 ms);
#   4. for each scale in SCALES: a store filled with that many keys, then a node's
#      start-up time (spawn to metrics endpoint answering: the replica is loaded) and
#      its resident memory (VmRSS) and peak (VmHWM) after start, on each store.
# With BASELINE=path/to/older/keyfence (a build at schema version 2, before the feed
# horizon, e.g. commit d6d7d76), step 4 also starts that build on the same filled
# store (after taking the schema back to version 2: the change is one empty table) and
# reports its start-up time and memory beside this build's.
# Every bench run's JSON, node logs and the load average are kept in OUT; a summary is
# printed at the end (and written to OUT/summary.md). Large databases are deleted as
# soon as they have been measured.
#
# Environment: BIN (target/release/keyfence), TEMP_PG (target/release/temp-postgres),
# SCALES ("10000 1000000"), PAIRS (2), DURATION (8s), WARMUP (2s), CONNECTIONS (32),
# PAYLOAD (256), CREATE_CONNECTIONS (8), PROPAGATION_KEYS (200), BASELINE (none),
# PSQL (Debian's psql, for BASELINE), PYTHON (python3), OUT.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN="$(realpath "${BIN:-$ROOT/target/release/keyfence}")"
TEMP_PG="$(realpath "${TEMP_PG:-$ROOT/target/release/temp-postgres}")"
SCALES="${SCALES-10000 1000000}"
PAIRS="${PAIRS:-2}"
DURATION="${DURATION:-8s}"
WARMUP="${WARMUP:-2s}"
CONNECTIONS="${CONNECTIONS:-32}"
PAYLOAD="${PAYLOAD:-256}"
CREATE_CONNECTIONS="${CREATE_CONNECTIONS:-8}"
PROPAGATION_KEYS="${PROPAGATION_KEYS:-200}"
PYTHON="${PYTHON:-python3}"
BASELINE="${BASELINE:+$(realpath "$BASELINE")}"
PSQL="${PSQL:-$(ls /usr/lib/postgresql/*/bin/psql 2>/dev/null | tail -1)}"
OUT="${OUT:-$ROOT/target/stores-run}"

log() { echo "stores: $*" >&2; }

rm -rf "$OUT"
mkdir -p "$OUT"
{
    echo "bin: $BIN ($(sha256sum "$BIN" | cut -c1-16))"
    echo "commit: $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)"
    echo "nproc: $(nproc)"
    echo "cpu: $(lscpu | sed -n 's/^Model name: *//p' | head -1)"
    echo "kernel: $(uname -r)"
    echo "SCALES=$SCALES PAIRS=$PAIRS DURATION=$DURATION WARMUP=$WARMUP CONNECTIONS=$CONNECTIONS PAYLOAD=$PAYLOAD CREATE_CONNECTIONS=$CREATE_CONNECTIONS PROPAGATION_KEYS=$PROPAGATION_KEYS"
} >"$OUT/machine.txt"

# The throw-away PostgreSQL: `ready`, then one URL per database name written to it.
coproc PG { "$TEMP_PG" 2>"$OUT/temp-postgres.log"; }
PG_IN="${PG[1]}"
PG_OUT="${PG[0]}"
read -r ready <&"$PG_OUT"
[[ "$ready" == ready ]] || { log "temp-postgres: $ready"; exit 1; }
PG_URL=""
pg_db() { # NAME -> PG_URL
    echo "$1" >&"$PG_IN"
    read -r PG_URL <&"$PG_OUT"
    [[ "$PG_URL" == postgres://* ]] || { log "temp-postgres: $PG_URL"; exit 1; }
}

free_port() { "$PYTHON" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

declare -A PIDS PORTS MPORTS DIRS
cleanup() {
    local n
    for n in "${!PIDS[@]}"; do
        kill "${PIDS[$n]}" 2>/dev/null || true
        wait "${PIDS[$n]}" 2>/dev/null || true
    done
    exec {PG_IN}>&- 2>/dev/null || true
    wait 2>/dev/null || true
}
trap cleanup EXIT

# start NAME DATA_DIR STORE: starts a node, waits until its metrics answer (the replica
# is loaded by then) and records start-up seconds and memory in OUT/NAME.start.json.
start() {
    local name="$1" data="$2" store="$3" port mport t0
    port="$(free_port)"; mport="$(free_port)"
    t0="$(date +%s.%N)"
    "${NODE_BIN:-$BIN}" server --data-dir "$data" --store "$store" --listen "127.0.0.1:$port" \
        --metrics-listen "127.0.0.1:$mport" >"$OUT/$name.node.log" 2>&1 &
    local pid=$!
    PIDS[$name]=$pid; PORTS[$name]=$port; MPORTS[$name]=$mport; DIRS[$name]=$data
    "$PYTHON" - "$pid" "$mport" "$t0" "$name" >"$OUT/$name.start.json" <<'EOF'
import json, os, sys, time, urllib.request
pid, mport, t0, name = int(sys.argv[1]), sys.argv[2], float(sys.argv[3]), sys.argv[4]
while True:
    try:
        os.kill(pid, 0)
    except OSError:
        sys.exit(f"node {name} exited early")
    try:
        urllib.request.urlopen(f"http://127.0.0.1:{mport}/metrics", timeout=1).read()
        break
    except OSError:
        time.sleep(0.02)
    if time.time() - t0 > 1800:
        sys.exit(f"node {name} did not come up")
up = time.time() - t0
status = dict(l.split(":", 1) for l in open(f"/proc/{pid}/status") if ":" in l)
kib = lambda k: int(status[k].split()[0])
print(json.dumps({"name": name, "startup_s": round(up, 3),
                  "rss_mib": round(kib("VmRSS") / 1024, 1), "hwm_mib": round(kib("VmHWM") / 1024, 1)}))
EOF
}

stop() { # NAME
    local name="$1"
    kill "${PIDS[$name]}" 2>/dev/null || true
    wait "${PIDS[$name]}" 2>/dev/null || true
    unset "PIDS[$name]"
}

bench() { # NAME NODE bench-arguments...
    local name="$1" node="$2"; shift 2
    echo "$name $(uptime)" >>"$OUT/load.txt"
    log "$name: keyfence bench $*"
    "$BIN" bench "$@" --duration "$DURATION" --warmup "$WARMUP" \
        --endpoint "https://127.0.0.1:${PORTS[$node]}" --data-dir "${DIRS[$node]}" \
        --metrics "http://127.0.0.1:${MPORTS[$node]}" --pid "${PIDS[$node]}" --json >"$OUT/$name.json"
}

# Copies a node's data directory (root key, credentials, CA) for a second node of the same store.
clone_dir() { mkdir -p "$2"; cp -r "$1"/. "$2"/; rm -f "$2/node.addr.json"; }

# 1-2. Throughput and CreateKey, both nodes running, ABBA.
pg_db throughput
start sqlite "$OUT/data-sqlite" sqlite
start postgres "$OUT/data-postgres" "$PG_URL"
for i in $(seq 1 "$PAIRS"); do
    order="sqlite postgres"
    (( i % 2 == 0 )) && order="postgres sqlite"
    for node in $order; do
        bench "encrypt-$node-$i" "$node" --workload encrypt --payload-size "$PAYLOAD" --connections "$CONNECTIONS"
    done
done
for i in $(seq 1 "$PAIRS"); do
    order="sqlite postgres"
    (( i % 2 == 0 )) && order="postgres sqlite"
    for node in $order; do
        bench "createkey-$node-$i" "$node" --workload create-key --connections "$CREATE_CONNECTIONS"
    done
done

# 3. Propagation: a second node on the same PostgreSQL database; two nodes on one SQLite file.
clone_dir "$OUT/data-postgres" "$OUT/data-postgres-2"
start postgres-2 "$OUT/data-postgres-2" "$PG_URL"
log "propagation on PostgreSQL ($PROPAGATION_KEYS keys)"
"$BIN" store propagation --endpoint "https://127.0.0.1:${PORTS[postgres]}" --data-dir "$OUT/data-postgres" \
    --peer "https://127.0.0.1:${PORTS[postgres-2]}" --count "$PROPAGATION_KEYS" >"$OUT/propagation-postgres.json"
stop postgres-2; stop postgres; stop sqlite
shared="$OUT/shared.db"
start shared-1 "$OUT/data-shared-1" "sqlite:$shared"
stop shared-1
clone_dir "$OUT/data-shared-1" "$OUT/data-shared-2"
start shared-1 "$OUT/data-shared-1" "sqlite:$shared"
start shared-2 "$OUT/data-shared-2" "sqlite:$shared"
log "propagation on a shared SQLite file ($PROPAGATION_KEYS keys)"
"$BIN" store propagation --endpoint "https://127.0.0.1:${PORTS[shared-1]}" --data-dir "$OUT/data-shared-1" \
    --peer "https://127.0.0.1:${PORTS[shared-2]}" --count "$PROPAGATION_KEYS" >"$OUT/propagation-shared-sqlite.json"
stop shared-2; stop shared-1
rm -rf "$OUT"/data-sqlite "$OUT"/data-shared-* "$shared"*

# 4. Start-up and memory at each scale.
for n in $SCALES; do
    for store in sqlite postgres; do
        data="$OUT/data-$store-$n"
        location=sqlite
        if [[ "$store" == postgres ]]; then
            pg_db "scale_$n"
            location="$PG_URL"
        fi
        log "filling a $store store with $n keys"
        /usr/bin/time -f '{"fill_s": %e, "fill_max_rss_kib": %M}' -o "$OUT/fill-$store-$n.json" \
            "$BIN" store fill --data-dir "$data" --store "$location" --count "$n" >"$OUT/fill-$store-$n.log" 2>&1
        echo "scale-$store-$n $(uptime)" >>"$OUT/load.txt"
        start "scale-$store-$n" "$data" "$location"
        bench "scale-encrypt-$store-$n" "scale-$store-$n" --workload encrypt --payload-size "$PAYLOAD" --connections "$CONNECTIONS"
        stop "scale-$store-$n"
        if [[ -n "$BASELINE" ]]; then
            if [[ "$store" == sqlite ]]; then
                "$PYTHON" -c 'import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); c.executescript("DROP TABLE feed_horizon; UPDATE schema_version SET version = 2;"); c.close()' "$data/keyfence.db"
            else
                "$PSQL" -X -q -v ON_ERROR_STOP=1 "$location" -c "DROP TABLE feed_horizon; DELETE FROM schema_migrations WHERE version = 3"
            fi
            if NODE_BIN="$BASELINE" start "baseline-$store-$n" "$data" "$location"; then
                stop "baseline-$store-$n"
            else
                stop "baseline-$store-$n"
                "$PYTHON" -c 'import json,sys; print(json.dumps({"failed": sys.argv[1]}))' \
                    "$(tail -1 "$OUT/baseline-$store-$n.node.log")" >"$OUT/baseline-$store-$n.start.json"
            fi
        fi
        rm -rf "$data"
    done
done

"$PYTHON" - "$OUT" "$SCALES" "$PAIRS" <<'EOF' | tee "$OUT/summary.md"
import json, os, statistics, sys
out, scales, pairs = sys.argv[1], sys.argv[2].split(), int(sys.argv[3])
def load(name):
    with open(os.path.join(out, name)) as f:
        return json.loads(f.read())
def ops(name):
    r = load(name + ".json")
    if r.get("errors"):
        print(f"<!-- {name}: {r['errors']} errors: {r.get('errors_by_type')} -->")
    return r["ops_per_s"]
print("| measurement | SQLite | PostgreSQL | PostgreSQL / SQLite |")
print("|---|---|---|---|")
for kind, label in (("encrypt", "Encrypt, ops/s"), ("createkey", "CreateKey, ops/s")):
    for i in range(1, pairs + 1):
        s, p = ops(f"{kind}-sqlite-{i}"), ops(f"{kind}-postgres-{i}")
        print(f"| {label}, pair {i} | {s:,.0f} | {p:,.0f} | {p / s:.3f} |")
pp = load("propagation-postgres.json")["propagation_ms"]
ps = load("propagation-shared-sqlite.json")["propagation_ms"]
print(f"| propagation p50 / p99 / max, ms | {ps['p50']:.1f} / {ps['p99']:.1f} / {ps['max']:.1f} (shared file, polled) | {pp['p50']:.1f} / {pp['p99']:.1f} / {pp['max']:.1f} (LISTEN/NOTIFY) | |")
for n in scales:
    s, p = load(f"scale-sqlite-{n}.start.json"), load(f"scale-postgres-{n}.start.json")
    fs, fp = load(f"fill-sqlite-{n}.json"), load(f"fill-postgres-{n}.json")
    print(f"| {int(n):,} keys: start-up, s | {s['startup_s']} | {p['startup_s']} | {p['startup_s'] / s['startup_s']:.2f} |")
    print(f"| {int(n):,} keys: RSS after start (peak), MiB | {s['rss_mib']} ({s['hwm_mib']}) | {p['rss_mib']} ({p['hwm_mib']}) | {p['rss_mib'] / s['rss_mib']:.2f} |")
    es, ep = ops(f"scale-encrypt-sqlite-{n}"), ops(f"scale-encrypt-postgres-{n}")
    print(f"| {int(n):,} keys: Encrypt, ops/s | {es:,.0f} | {ep:,.0f} | {ep / es:.3f} |")
    print(f"| {int(n):,} keys: fill time, s | {fs['fill_s']} | {fp['fill_s']} | |")
    if os.path.exists(os.path.join(out, f"baseline-sqlite-{n}.start.json")):
        b = [load(f"baseline-{st}-{n}.start.json") for st in ("sqlite", "postgres")]
        up = [x.get("failed", "did not start") if "startup_s" not in x else x["startup_s"] for x in b]
        mem = [f"{x['rss_mib']} ({x['hwm_mib']})" if "rss_mib" in x else "—" for x in b]
        print(f"| {int(n):,} keys, BASELINE build: start-up, s | {up[0]} | {up[1]} | |")
        print(f"| {int(n):,} keys, BASELINE build: RSS after start (peak), MiB | {mem[0]} | {mem[1]} | |")
EOF
