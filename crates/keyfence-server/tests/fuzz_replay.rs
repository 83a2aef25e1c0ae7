//! Replays every fuzz target's committed corpus (`fuzz/corpus/TARGET/*`)
//! through the target function, so `cargo test` re-checks in seconds every
//! input the coverage-guided fuzzer (`scripts/fuzz.sh`) kept.

#[path = "../../../fuzz/src/targets.rs"]
mod targets;

use std::path::PathBuf;

fn corpus(target: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("../../fuzz/corpus/{target}"))
}

#[test]
fn every_target_replays_its_corpus() {
    for (name, target) in targets::TARGETS {
        let dir = corpus(name);
        let mut files = 0;
        for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let path = entry.unwrap().path();
            let bytes = std::fs::read(&path).unwrap();
            target(&bytes);
            files += 1;
        }
        assert!(files > 0, "{name}: the corpus is empty");
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
