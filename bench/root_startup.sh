#!/usr/bin/env bash
# Start-up of a node with each root of trust, same script run: the key file
# (baseline), an AES key in SoftHSM2 over PKCS#11, and a quorum-sealed root
# (sealed start, then 3 of 5 shares through `keyfence unseal`).
#
#   bench/root_startup.sh [RUNS]      # default 10; KEYFENCE_BIN picks the binary
#
# Each run starts `keyfence server` and times it until node.addr.json names the
# new pid (the KMS is open and serving: for the file and HSM roots the domain
# keys are unwrapped before the listeners are published). For the sealed root it
# also times the three unseal commands until the node serves. The stores are
# empty: the root is used once per domain key whatever the number of keys, and
# loading keys costs every root the same. Prints medians in milliseconds and
# each against the file root.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

RUNS="${1:-10}"
BIN="${KEYFENCE_BIN:-target/release/keyfence}"
MODULE="$(scripts/setup-softhsm.sh)"
WORK="$(mktemp -d)"
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$WORK"' EXIT

export SOFTHSM2_CONF="$WORK/softhsm2.conf"
mkdir "$WORK/tokens"
printf 'directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\n' "$WORK/tokens" >"$SOFTHSM2_CONF"
softhsm2-util --init-token --free --label kf-bench --pin 1234 --so-pin 5678 >/dev/null
export KEYFENCE_PKCS11_PIN=1234

now_ns() { date +%s%N; }

config() { # kind data_dir
    printf 'listen = "127.0.0.1:0"\nmetrics_listen = "127.0.0.1:0"\ndata_dir = "%s"\n' "$2"
    case "$1" in
        pkcs11) printf 'root = "pkcs11"\n[pkcs11]\nmodule = "%s"\ntoken_label = "kf-bench"\n' "$MODULE" ;;
        shamir) printf 'root = "shamir"\n' ;;
    esac
}

# Starts a node (config $1, data dir $2); sets PID and ENDPOINT once it published its address.
start() {
    rm -f "$2/node.addr.json"
    "$BIN" server --config "$1" >/dev/null 2>&1 &
    PID=$!
    while :; do
        if [[ -f "$2/node.addr.json" ]] && grep -q "\"pid\":$PID" "$2/node.addr.json"; then
            ENDPOINT="https://$(sed 's/.*"api":"\([^"]*\)".*/\1/' "$2/node.addr.json")"
            return
        fi
        kill -0 "$PID" 2>/dev/null || { echo "node died" >&2; exit 1; }
        sleep 0.002
    done
}
stop() { kill "$PID"; wait "$PID" 2>/dev/null || true; }

unseal_all() { # data_dir share_dir
    for i in 1 3 5; do
        "$BIN" unseal --endpoint "$ENDPOINT" --data-dir "$1" --share-file "$2/share-$i.txt" >/dev/null
    done
}

for kind in file pkcs11 shamir; do
    dir="$WORK/$kind"
    config "$kind" "$dir" >"$WORK/$kind.toml"
    case "$kind" in
        file) "$BIN" init --data-dir "$dir" >/dev/null ;;
        pkcs11) "$BIN" init --data-dir "$dir" --root pkcs11 --config "$WORK/$kind.toml" >/dev/null ;;
        shamir) "$BIN" init --data-dir "$dir" --shares 5 --threshold 3 --share-dir "$WORK/shares" >/dev/null ;;
    esac
    start "$WORK/$kind.toml" "$dir"
    [[ "$kind" == shamir ]] && unseal_all "$dir" "$WORK/shares"
    stop
done

median() { sort -n | awk '{a[NR]=$1} END {m=(NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2; printf "%.1f", m/1e6}'; }

declare -A START UNSEAL
for kind in file pkcs11 shamir; do
    : >"$WORK/$kind.start"
    : >"$WORK/$kind.unseal"
done
for ((r = 0; r < RUNS; r++)); do
    for kind in file pkcs11 shamir; do # interleaved, so drift hits all three alike
        dir="$WORK/$kind"
        t0=$(now_ns)
        start "$WORK/$kind.toml" "$dir"
        t1=$(now_ns)
        echo $((t1 - t0)) >>"$WORK/$kind.start"
        if [[ "$kind" == shamir ]]; then
            unseal_all "$dir" "$WORK/shares"
            echo $(($(now_ns) - t1)) >>"$WORK/$kind.unseal"
        fi
        stop
    done
done
for kind in file pkcs11 shamir; do
    START[$kind]=$(median <"$WORK/$kind.start")
done
UNSEAL[shamir]=$(median <"$WORK/shamir.unseal")
echo "runs=$RUNS binary=$BIN softhsm=$("softhsm2-util" --version)"
printf '%-28s %10s %8s\n' "root" "median ms" "vs file"
printf '%-28s %10s %8s\n' "file (root.key)" "${START[file]}" "1.00"
printf '%-28s %10s %8s\n' "pkcs11 (SoftHSM2)" "${START[pkcs11]}" "$(awk -v a="${START[pkcs11]}" -v b="${START[file]}" 'BEGIN{printf "%.2f", a/b}')"
printf '%-28s %10s %8s\n' "shamir: start, sealed" "${START[shamir]}" "$(awk -v a="${START[shamir]}" -v b="${START[file]}" 'BEGIN{printf "%.2f", a/b}')"
printf '%-28s %10s %8s\n' "shamir: 3 unseal commands" "${UNSEAL[shamir]}" "-"
