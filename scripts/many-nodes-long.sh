#!/usr/bin/env bash
# The long versions of the many-node failure tests (CI runs the short ones
# in `cargo test`): many more kill -9 rounds and race rounds, and the
# outage and failover tests repeated. Bounded: each kill round and each race
# round waits at most 30 s, so the whole run ends by itself.
#
#   scripts/many-nodes-long.sh            # 200 kills per store, 50 race rounds, 5 outages/failovers
#   KILLS=50 ROUNDS=10 REPEAT=2 scripts/many-nodes-long.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
scripts/setup-postgres.sh >/dev/null

KILLS="${KILLS:-200}"
ROUNDS="${ROUNDS:-50}"
REPEAT="${REPEAT:-5}"

cargo build -p keyfence --tests
KEYFENCE_KILLS="$KILLS" cargo test -p keyfence --test kill_nodes -- --nocapture --test-threads 1
KEYFENCE_RACE_ROUNDS="$ROUNDS" cargo test -p keyfence --test nodes_races -- --nocapture --test-threads 1
for i in $(seq "$REPEAT"); do
    echo "== outage and failover, run $i of $REPEAT =="
    cargo test -p keyfence --test pg_outage --test pg_failover -- --nocapture --test-threads 1
done
