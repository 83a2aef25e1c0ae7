#!/usr/bin/env bash
# Coverage-guided fuzzing of one target for SECONDS, on the stable toolchain.
#
#   scripts/fuzz.sh TARGET [SECONDS]      (targets: fuzz/fuzz_targets/*.rs)
#
# libFuzzer comes from libfuzzer-sys (built from source with the system C++
# compiler); coverage comes from LLVM's SanitizerCoverage, enabled with the
# stable -C flags cargo-fuzz itself passes (-Cpasses=sancov-module and
# -Cllvm-args=...). No sanitizer (-Zsanitizer needs nightly): a panic, an
# assertion or an overflow aborts and leaves the input in fuzz/artifacts/.
# The flags apply to the target only (--target), not to build scripts.
#
# New inputs are explored in fuzz/corpus-work/TARGET (not committed); with
# MERGE=1 (default) the committed fuzz/corpus/TARGET, which `cargo test`
# replays (fuzz_replay.rs), is replaced by a greedy set cover of both: about
# the fewest inputs that keep every coverage edge reached (edges only, not
# hit counts or comparison features, so the committed corpus stays small;
# the full corpus stays in fuzz/corpus-work for the next run).
set -euo pipefail
target=${1:?usage: scripts/fuzz.sh TARGET [SECONDS]}
seconds=${2:-60}
root=$(cd "$(dirname "$0")/.." && pwd)
triple=$(rustc -vV | sed -n 's/^host: //p')
export CARGO_TARGET_DIR="$root/fuzz/target"
export RUSTFLAGS="-Cpasses=sancov-module \
 -Cllvm-args=-sanitizer-coverage-level=4 \
 -Cllvm-args=-sanitizer-coverage-inline-8bit-counters \
 -Cllvm-args=-sanitizer-coverage-pc-table \
 -Cllvm-args=-sanitizer-coverage-trace-compares \
 --cfg fuzzing -Cdebug-assertions -Coverflow-checks"
(cd "$root/fuzz" && cargo build --release --target "$triple" --bin "$target")
bin="$CARGO_TARGET_DIR/$triple/release/$target"
corpus="$root/fuzz/corpus/$target"
work="$root/fuzz/corpus-work/$target"
artifacts="$root/fuzz/artifacts/$target"
mkdir -p "$corpus" "$work" "$artifacts"
"$bin" -max_total_time="$seconds" -max_len=65536 -timeout=10 -rss_limit_mb=4096 \
  -print_final_stats=1 -artifact_prefix="$artifacts/" "$work" "$corpus"
if [ "${MERGE:-1}" = 1 ]; then
  cover=$(mktemp -d)
  "$bin" -set_cover_merge=1 -use_counters=0 -use_cmp=0 -max_len=65536 "$cover" "$corpus" "$work" 2>&1 | tail -n 2
  rm -rf "$corpus" && mv "$cover" "$corpus" && chmod 755 "$corpus"
fi
