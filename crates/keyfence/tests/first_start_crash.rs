//! A `keyfence server` killed (SIGKILL) at any moment of its very first start
//! leaves a data directory every later start opens: the directory appears
//! whole (staged, then renamed) or not at all.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const TRIES: u32 = 20;

fn spawn(dir: &Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_keyfence"))
        .args(["server", "--listen", "127.0.0.1:0", "--metrics-listen"])
        .arg("127.0.0.1:0")
        .arg("--data-dir")
        .arg(dir)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("keyfence runs")
}

/// Waits until the node started by `child` publishes its addresses; `None` if
/// it exits or takes longer than `limit`.
fn serving(child: &mut Child, dir: &Path, limit: Duration) -> Option<Duration> {
    let start = Instant::now();
    let addr_file = dir.join("node.addr.json");
    while start.elapsed() < limit {
        if let Ok(text) = std::fs::read_to_string(&addr_file) {
            let v: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
            if v["pid"].as_u64() == Some(u64::from(child.id())) {
                return Some(start.elapsed());
            }
        }
        if child.try_wait().unwrap().is_some() {
            return None;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    None
}

#[test]
fn a_first_start_killed_at_any_moment_leaves_a_directory_that_opens() {
    let tmp = tempfile::tempdir().unwrap();
    // How long an undisturbed first start takes, to spread the kills over it:
    // the fastest of three (the first one runs with cold caches, and a slow
    // probe on a loaded machine would put most kills after the start ended).
    let mut full = Duration::MAX;
    for p in 0..3 {
        let probe = tmp.path().join(format!("probe{p}"));
        let mut child = spawn(&probe);
        let took = serving(&mut child, &probe, Duration::from_secs(60)).expect("first start");
        child.kill().unwrap();
        child.wait().unwrap();
        full = full.min(took);
    }

    let mut partial = 0;
    for i in 0..TRIES {
        let dir = tmp.path().join(format!("d{i}"));
        let mut child = spawn(&dir);
        std::thread::sleep(full * i / TRIES);
        child.kill().unwrap();
        child.wait().unwrap();
        if !dir.join("node.addr.json").exists() {
            partial += 1;
        }

        let mut again = spawn(&dir);
        let opened = serving(&mut again, &dir, Duration::from_secs(60));
        again.kill().unwrap();
        again.wait().unwrap();
        assert!(
            opened.is_some(),
            "try {i}: killed after {:?} of a {full:?} first start, the next start failed",
            full * i / TRIES
        );
        let leftovers: Vec<_> = std::fs::read_dir(tmp.path())
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.contains(".init-"))
            .collect();
        assert!(leftovers.is_empty(), "staging left behind: {leftovers:?}");
    }
    assert!(
        partial > TRIES / 2,
        "most kills landed before the start finished ({partial})"
    );
}
