//! Replays every fuzz target's committed corpus (`fuzz/corpus/TARGET/*`)
//! through the target function, so `cargo test` re-checks in seconds every
//! input the coverage-guided fuzzer (`scripts/fuzz.sh`) kept.

#[path = "../../../fuzz/src/targets.rs"]
mod targets;

use std::path::PathBuf;

fn corpus(target: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("../../fuzz/corpus/{target}"))
}

/// The stack libFuzzer runs inputs with (its main thread's 8 MiB). Deeply
/// nested ABE policies (the decoder allows 2,048 levels) need more than the
/// 2 MiB of a spawned thread in a debug build; a release build needs between
/// 512 KiB and 1 MiB for the deepest input of the corpus.
const STACK_BYTES: usize = 8 << 20;

/// Replays one target's corpus on a thread named after the target (a crash
/// names it).
fn replay(name: &'static str, target: targets::Target) -> usize {
    std::thread::Builder::new()
        .name(format!("fuzz-replay-{name}"))
        .stack_size(STACK_BYTES)
        .spawn(move || {
            let dir = corpus(name);
            let mut files = 0;
            for entry in
                std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            {
                let path = entry.unwrap().path();
                target(&std::fs::read(&path).unwrap());
                files += 1;
            }
            files
        })
        .unwrap()
        .join()
        .unwrap_or_else(|_| panic!("{name}: an input of the corpus panicked"))
}

#[test]
fn every_target_replays_its_corpus() {
    for (name, target) in targets::TARGETS {
        assert!(replay(name, *target) > 0, "{name}: the corpus is empty");
    }
}

#[test]
fn the_sigv4_corpus_holds_a_request_that_verifies() {
    let verified = std::fs::read_dir(corpus("sigv4"))
        .unwrap()
        .filter(|e| {
            let bytes = std::fs::read(e.as_ref().unwrap().path()).unwrap();
            matches!(targets::sigv4_verify(&bytes), Some(Ok(_)))
        })
        .count();
    assert!(verified > 0, "no input of fuzz/corpus/sigv4 verifies");
}
