//! The first start's banner, as a log file sees it: pasteable lines, no secret, and
//! a `keyfence credentials --export` line that exports the credential.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

const KEYFENCE: &str = env!("CARGO_BIN_EXE_keyfence");

#[test]
fn banner_without_a_terminal_points_at_the_credential_instead_of_printing_it() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut child = Command::new(KEYFENCE)
        .args([
            "server",
            "--listen",
            "127.0.0.1:0",
            "--metrics-listen",
            "127.0.0.1:0",
        ])
        .arg("--data-dir")
        .arg(&data)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut banner = Vec::new();
    for line in BufReader::new(child.stdout.take().unwrap()).lines() {
        let line = line.unwrap();
        let done = line.contains("new development credential");
        banner.push(line);
        if done {
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    let banner = banner.join("\n");

    let secret = std::fs::read_to_string(data.join("credentials.toml")).unwrap();
    let secret = secret
        .lines()
        .find_map(|l| l.strip_prefix("secret_access_key = "))
        .expect("secret in credentials.toml")
        .trim_matches('"');
    assert!(
        !banner.contains(secret),
        "secret printed to a non-terminal:\n{banner}"
    );
    let data = std::fs::canonicalize(&data).unwrap();
    let ca = data.join("ca.pem");
    assert!(
        banner.contains(&format!("AWS_CA_BUNDLE={}", ca.display())),
        "{banner}"
    );
    assert!(banner.contains("export AWS_ENDPOINT_URL=https://127.0.0.1:"));
    let eval = format!(
        "eval \"$(keyfence credentials --export --data-dir {} --region us-east-1)\"",
        data.display()
    );
    assert!(banner.contains(&eval), "{banner}");

    // The command it names prints a pasteable export line with the secret.
    let out = Command::new(KEYFENCE)
        .args(["credentials", "--export", "--data-dir"])
        .arg(&data)
        .output()
        .unwrap();
    assert!(out.status.success());
    let line = String::from_utf8(out.stdout).unwrap();
    assert!(line.starts_with("export AWS_ACCESS_KEY_ID=AKIA"), "{line}");
    assert!(
        line.trim_end().ends_with(&format!(
            "AWS_SECRET_ACCESS_KEY={secret} AWS_DEFAULT_REGION=us-east-1"
        )),
        "{line}"
    );
}
