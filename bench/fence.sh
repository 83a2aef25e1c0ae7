#!/usr/bin/env bash
# Geo-fencing figures side by side in one run, on a `keyfence dev` cluster
# (fra, par, iad in one process on loopback; fra and par satisfy the fence,
# iad forwards):
#   1. fenced vs unfenced Encrypt at a satisfying node (closed loop, ABBA);
#   2. p99 added by forwarding: the fenced key at half its closed-loop rate,
#      open loop, at fra (served there) and at iad (every request forwarded);
#      then the forwarding capacity: the fenced key in a closed loop at iad,
#      against part 1's fenced closed loop at fra;
#   3. master rotation with 100 fences, before and after adding KEYS fenced keys,
#      and fenced CreateKey through the API before and after (issue 10: it must
#      not slow down as the store grows). The keys are added by `keyfence store
#      fill --fence` (made and wrapped as fra makes them, written 10,000 per
#      transaction into the shared store, picked up by every node through the
#      change feed), unless CREATE_OVER_API=1 (fenced CreateKeys, DUR per round).
# Usage: bench/fence.sh [KEYFENCE_BINARY]  (env: DUR=10s KEYS=100000 PORT=18443;
#   ONLY_ROTATION=1 runs part 3 alone, SKIP_ROTATION=1 parts 1 and 2, RATE=N sets
#   the open-loop rate of part 2 instead of half the fenced closed-loop rate)
# Part 2 also reports the dev process's CPU per request (all three nodes are
# in it): a forwarded request's CPU over a direct one's, at the same rate.
# Prints one JSON object per measurement and a summary; figures go to
# bench/RESULTS.md by hand, with the commit.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${1:-target/release/keyfence}
DUR=${DUR:-10s}
# Fenced keys added before the second rotation.
KEYS=${KEYS:-100000}
PORT=${PORT:-18443}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/keyfence-fence-bench.XXXXXX")
DATA=$WORK/dev
"$BIN" dev --nodes 3 --data-dir "$DATA" --base-port "$PORT" >"$WORK/dev.log" 2>&1 &
DEV=$!
trap 'kill $DEV 2>/dev/null; wait $DEV 2>/dev/null; rm -rf "$WORK"' EXIT
FRA=https://127.0.0.1:$PORT
IAD=https://127.0.0.1:$((PORT + 2))
for _ in $(seq 100); do
  grep -q "AWS_ACCESS_KEY_ID" "$WORK/dev.log" 2>/dev/null && break
  sleep 0.2
done
sleep 3 # every node has polled its grant and the fences once
POLICY='region: EU'

bench() {
  "$BIN" bench --data-dir "$DATA" --metrics none --json --warmup 2s --duration "$DUR" \
    --connections 16 --pid "$DEV" "$@"
}
field() { python3 -c "import json,sys; v=json.load(sys.stdin); print(eval(sys.argv[1]))" "$1"; }

RU=0 RF=0 RX=0 D1=null D2=null W1=null W2=null
if [ -z "${ONLY_ROTATION:-}" ]; then
echo "== 1. fenced vs unfenced Encrypt at fra (closed loop, ABBA)" >&2
U1=$(bench --endpoint "$FRA" --workload encrypt)
F1=$(bench --endpoint "$FRA" --workload encrypt --fence "$POLICY" --keep-key)
KEY=$(echo "$F1" | field 'v["key_id"]')
F2=$(bench --endpoint "$FRA" --workload encrypt --key-id "$KEY")
U2=$(bench --endpoint "$FRA" --workload encrypt)
for r in "$U1" "$F1" "$F2" "$U2"; do echo "$r"; done
RU=$(python3 -c "import json,sys; print(sum(json.loads(a)['ops_per_s'] for a in sys.argv[1:])/2)" "$U1" "$U2")
RF=$(python3 -c "import json,sys; print(sum(json.loads(a)['ops_per_s'] for a in sys.argv[1:])/2)" "$F1" "$F2")

echo "== 2. forwarding at half the fenced closed-loop rate (open loop)" >&2
HALF=${RATE:-$(python3 -c "print(round($RF / 2))")}
D1=$(bench --endpoint "$FRA" --workload encrypt --key-id "$KEY" --rate "$HALF")
W1=$(bench --endpoint "$IAD" --workload encrypt --key-id "$KEY" --rate "$HALF")
W2=$(bench --endpoint "$IAD" --workload encrypt --key-id "$KEY" --rate "$HALF")
D2=$(bench --endpoint "$FRA" --workload encrypt --key-id "$KEY" --rate "$HALF")
for r in "$D1" "$W1" "$W2" "$D2"; do echo "$r"; done
echo "== 2b. forwarding capacity: the fenced key in a closed loop at iad" >&2
X1=$(bench --endpoint "$IAD" --workload encrypt --key-id "$KEY")
X2=$(bench --endpoint "$IAD" --workload encrypt --key-id "$KEY")
for r in "$X1" "$X2"; do echo "$r"; done
RX=$(python3 -c "import json,sys; print(sum(json.loads(a)['ops_per_s'] for a in sys.argv[1:])/2)" "$X1" "$X2")
fi

R0=0 R1=0 MADE=0 C0=null C1=null
if [ -z "${SKIP_ROTATION:-}" ]; then
echo "== 3. master rotation, 100 fences, then with $KEYS fenced keys" >&2
"$BIN" fence create "$POLICY" --endpoint "$FRA" --data-dir "$DATA" >/dev/null
for i in $(seq 1 99); do
  "$BIN" fence create "region: EU and not country: X$i" --endpoint "$FRA" --data-dir "$DATA" >/dev/null
done
rotate() {
  local t0 t1
  t0=$(date +%s.%N)
  "$BIN" authority rotate --endpoint "$FRA" --data-dir "$DATA" >&2
  t1=$(date +%s.%N)
  python3 -c "print(round($t1 - $t0, 3))"
}
# Waits until the nodes are idle (under 0.2 s of CPU in 2 s): they have
# applied the keys from the change feed and installed the rotated records.
settle() {
  local a b
  for _ in $(seq 600); do
    a=$(awk '{print $14 + $15}' "/proc/$DEV/stat")
    sleep 2
    b=$(awk '{print $14 + $15}' "/proc/$DEV/stat")
    [ $((b - a)) -lt 20 ] && return
  done
  echo "the nodes did not settle" >&2
}
settle
R0=$(rotate)
echo "rotation with 100 fences: ${R0}s" >&2
C0=$(bench --endpoint "$FRA" --workload create-key --fence "$POLICY")
echo "$C0"
MADE=$(echo "$C0" | field 'v["ok"]')
if [ -n "${CREATE_OVER_API:-}" ]; then
  while [ "$MADE" -lt "$KEYS" ]; do
    C=$(bench --endpoint "$FRA" --workload create-key --fence "$POLICY")
    echo "$C"
    MADE=$((MADE + $(echo "$C" | field 'v["ok"]')))
  done
else
  t0=$(date +%s.%N)
  "$BIN" store fill --data-dir "$DATA" --count "$KEYS" --fence "$POLICY" --node fra >&2
  MADE=$((MADE + KEYS))
  settle
  t1=$(date +%s.%N)
  echo "filled $KEYS fenced keys, applied by every node, in $(python3 -c "print(round($t1 - $t0, 1))")s" >&2
fi
C1=$(bench --endpoint "$FRA" --workload create-key --fence "$POLICY")
echo "$C1"
MADE=$((MADE + $(echo "$C1" | field 'v["ok"]')))
# Back to one live generation, as before the first rotation, so that the two
# rotations differ only in the keys in the store.
"$BIN" authority retire 1 --endpoint "$FRA" --data-dir "$DATA" >&2
settle
R1=$(rotate)
echo "rotation with 100 fences and $MADE fenced keys: ${R1}s" >&2
fi

python3 - "$RU" "$RF" "$D1" "$D2" "$W1" "$W2" "$R0" "$R1" "$MADE" "$C0" "$C1" "$RX" <<'PY'
import json, sys
ru, rf, rx = float(sys.argv[1]), float(sys.argv[2]), float(sys.argv[12])
p99 = lambda a: (json.loads(a) or {}).get("latency_us", {}).get("p99", 0)
cpu = lambda a: ((json.loads(a) or {}).get("cpu") or {}).get("node_us_per_op") or 0
d = [p99(a) for a in sys.argv[3:5]]
w = [p99(a) for a in sys.argv[5:7]]
dc = [cpu(a) for a in sys.argv[3:5]]
wc = [cpu(a) for a in sys.argv[5:7]]
r0, r1, made = float(sys.argv[7]), float(sys.argv[8]), int(sys.argv[9])
rate = lambda a: round((json.loads(a) or {}).get("ops_per_s", 0))
c0, c1 = rate(sys.argv[10]), rate(sys.argv[11])
print(json.dumps({
    "unfenced_encrypt_per_s": round(ru), "fenced_encrypt_per_s": round(rf),
    "fenced_over_unfenced": round(rf / ru, 3) if ru else None,
    "p99_direct_us": d, "p99_forwarded_us": w,
    "p99_added_by_forwarding_us": round(sum(w) / 2 - sum(d) / 2),
    "node_cpu_us_per_request_direct": dc, "node_cpu_us_per_request_forwarded": wc,
    "forwarded_over_direct_cpu": round(sum(wc) / sum(dc), 3) if sum(dc) else None,
    "forwarded_closed_loop_per_s": round(rx),
    "forwarded_over_direct_closed_loop": round(rx / rf, 3) if rf else None,
    "master_rotation_s_100_fences": r0,
    "master_rotation_s_100_fences_and_keys": r1, "fenced_keys": made,
    "fenced_create_key_per_s_before_and_after": [c0, c1],
    "create_key_after_over_before": round(c1 / c0, 3) if c0 else None,
}, indent=1))
PY
