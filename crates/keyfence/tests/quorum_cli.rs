//! M-of-N approvals through the binary: operators with ML-DSA-65 and Ed25519
//! keys, a 2-of-3 rule, proposals signed offline, and each refusal.

use std::path::Path;
use std::process::Command;

fn keyfence(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_keyfence"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn ok(args: &[&str]) -> String {
    let (ok, out, err) = keyfence(args);
    assert!(ok, "{args:?}: {out}{err}");
    out
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn two_of_three_approvals_execute_and_every_refusal_holds() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    let d = s(&data);
    let key = |n: &str| dir.path().join(format!("{n}.key"));
    for (name, scheme) in [
        ("alice", "ML-DSA-65"),
        ("bob", "ML-DSA-65"),
        ("carol", "Ed25519"),
        ("dave", "ML-DSA-65"),
    ] {
        ok(&[
            "operator",
            "keygen",
            "--name",
            name,
            "--out",
            s(&key(name)),
            "--scheme",
            scheme,
        ]);
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(key("alice"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    for name in ["alice", "bob", "carol"] {
        ok(&[
            "operator",
            "add",
            &format!("{}.pub", key(name).display()),
            "--data-dir",
            d,
        ]);
    }
    ok(&["quorum", "set", "add-operator", "2", "--data-dir", d]);
    ok(&["quorum", "set", "change-quorum", "2", "--data-dir", d]);
    // Now the set-up path is closed.
    let (done, _, err) = keyfence(&[
        "operator",
        "add",
        &format!("{}.pub", key("dave").display()),
        "--data-dir",
        d,
    ]);
    assert!(!done && err.contains("propose it"), "{err}");
    let (done, _, err) = keyfence(&["quorum", "set", "add-operator", "1", "--data-dir", d]);
    assert!(!done && err.contains("propose it"), "{err}");

    // Propose adding dave.
    let dave: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(format!("{}.pub", key("dave").display())).unwrap(),
    )
    .unwrap();
    let proposal = ok(&[
        "admin",
        "propose",
        "add-operator",
        "name=dave",
        "scheme=ML-DSA-65",
        &format!("public-key={}", dave["public_key"].as_str().unwrap()),
    ]);
    assert!(
        proposal.starts_with("keyfence-proposal v1\nnonce "),
        "{proposal}"
    );
    let p = dir.path().join("add-dave.proposal");
    std::fs::write(&p, &proposal).unwrap();
    let sign = |who: &str, proposal: &Path| {
        let path = dir.path().join(format!(
            "{who}-{}.approval",
            proposal.file_name().unwrap().to_str().unwrap()
        ));
        std::fs::write(
            &path,
            ok(&["admin", "sign", s(proposal), "--key", s(&key(who))]),
        )
        .unwrap();
        path
    };
    let (a, b, c) = (sign("alice", &p), sign("bob", &p), sign("carol", &p));
    let execute = |approvals: &[&Path], proposal: &Path| {
        let mut args = vec!["admin", "execute", s(proposal)];
        args.extend(approvals.iter().map(|x| s(x)));
        args.extend(["--data-dir", d]);
        keyfence(&args)
    };

    // M-1.
    let (done, _, err) = execute(&[&a], &p);
    assert!(
        !done && err.contains("1 of the 2 approvals needed"),
        "{err}"
    );
    // The same operator twice.
    let a2 = sign("alice", &p);
    let (done, _, err) = execute(&[&a, &a2], &p);
    assert!(
        !done && err.contains("operator alice approved twice"),
        "{err}"
    );
    // A signature over a different command.
    let other = dir.path().join("other.proposal");
    std::fs::write(
        &other,
        ok(&[
            "admin",
            "propose",
            "change-quorum",
            "kind=add-operator",
            "threshold=1",
        ]),
    )
    .unwrap();
    let b_other = sign("bob", &other);
    let (done, _, err) = execute(&[&a, &b_other], &p);
    assert!(
        !done && err.contains("signature of bob is not over this proposal"),
        "{err}"
    );
    // A tampered proposal (another operator's key substituted) no longer matches its signatures.
    let tampered = dir.path().join("tampered.proposal");
    std::fs::write(&tampered, proposal.replace("name=dave", "name=mallory")).unwrap();
    let (done, _, err) = execute(&[&a, &b], &tampered);
    assert!(!done && err.contains("is not over this proposal"), "{err}");
    // Expired.
    let short = dir.path().join("short.proposal");
    std::fs::write(
        &short,
        ok(&[
            "admin",
            "propose",
            "change-quorum",
            "kind=add-operator",
            "threshold=1",
            "--expires-in",
            "1",
        ]),
    )
    .unwrap();
    let (sa, sb) = (sign("alice", &short), sign("carol", &short));
    std::thread::sleep(std::time::Duration::from_millis(1200));
    let (done, _, err) = execute(&[&sa, &sb], &short);
    assert!(!done && err.contains("expired"), "{err}");

    // Two distinct valid approvals (one of them Ed25519) execute it once.
    let out = {
        let (done, out, err) = execute(&[&a, &c], &p);
        assert!(done, "{out}{err}");
        out
    };
    assert!(
        out.contains("executed add-operator") && out.contains("alice, carol"),
        "{out}"
    );
    assert!(ok(&["operator", "list", "--data-dir", d]).contains("operator dave (ML-DSA-65)"));
    // Replay.
    let (done, _, err) = execute(&[&a, &b], &p);
    assert!(!done && err.contains("already executed"), "{err}");
}
