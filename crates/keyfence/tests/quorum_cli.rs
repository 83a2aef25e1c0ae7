//! M-of-N approvals through the binary and real nodes: operators with
//! ML-DSA-65 and Ed25519 keys registered through the admin API, rules kept in
//! the node's store, proposals signed offline and executed by the node. For
//! approving a node join and for destroying a key early: a direct command
//! refused once a rule exists, then M−1 signatures, the same operator twice,
//! a signature over a different command, an expired proposal and a replay
//! each refused, and M valid signatures executing; with no rule for
//! destroy-key-early, early destruction refused both directly and by a
//! signed proposal. Exporting the audit signing key: refused directly, then
//! carried out by 2 of 2, opened only by its recipient and matching the log's
//! public key. `keyfence domain-key rotate`: carried out directly, then refused
//! once a rule guards rotate-domain-key and run from a signed proposal. Also: an
//! earlier build's quorum.json moved into the store at start.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use keyfence_bench::connect::ConnectArgs;
use keyfence_server::tls::ClientGroups;
use serde_json::{json, Value};

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

/// A `keyfence server` process, killed on drop.
struct Server {
    child: Child,
    endpoint: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts a node with `extra` config lines over data directory `data`;
/// `addr_file`: the file it publishes its address in.
fn start(dir: &Path, name: &str, data: &Path, extra: &str, addr_file: &str) -> Server {
    let config = dir.join(format!("{name}.toml"));
    std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:0\"\nmetrics_listen = \"127.0.0.1:0\"\ndata_dir = {:?}\n{extra}",
            s(data)
        ),
    )
    .unwrap();
    let addr_file = data.join(addr_file);
    let _ = std::fs::remove_file(&addr_file);
    let mut server = Server {
        child: Command::new(env!("CARGO_BIN_EXE_keyfence"))
            .args(["server", "--config", s(&config)])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
        endpoint: String::new(),
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(text) = std::fs::read_to_string(&addr_file) {
            let v: Value = serde_json::from_str(&text).unwrap();
            if v["pid"].as_u64() == Some(u64::from(server.child.id())) {
                server.endpoint = format!("https://{}", v["api"].as_str().unwrap());
                return server;
            }
        }
        assert!(
            server.child.try_wait().unwrap().is_none(),
            "node {name} exited"
        );
        assert!(Instant::now() < deadline, "node {name} did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// One request over the wire (KMS with `TrentService.`, admin otherwise).
fn call(server: &Server, data: &Path, target: &str, body: Value) -> (u16, Value) {
    let args = ConnectArgs {
        endpoint: server.endpoint.clone(),
        data_dir: Some(data.to_path_buf()),
        ca: None,
        access_key: None,
        secret_key: None,
        region: "us-east-1".into(),
    };
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(async {
            let mut conn = args
                .context(ClientGroups::HybridOnly)
                .unwrap()
                .connect()
                .await
                .unwrap();
            let reply = conn.json(target, &body).await.unwrap();
            (reply.status, reply.json())
        })
}

/// An AccessDeniedException (HTTP 400) whose message says `why`.
fn assert_denied(status: u16, body: &Value, why: &str) {
    assert_eq!(
        (status, body["__type"].as_str()),
        (400, Some("AccessDeniedException")),
        "{body}"
    );
    assert!(
        body["message"].as_str().unwrap_or_default().contains(why),
        "{body}"
    );
}

/// Operators' key files and the CLI around one node.
struct Team<'a> {
    dir: &'a Path,
    data: &'a Path,
    server: &'a Server,
}

impl Team<'_> {
    fn key(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.key"))
    }

    fn connect<'b>(&'b self, args: &mut Vec<&'b str>) {
        args.extend([
            "--endpoint",
            &self.server.endpoint,
            "--data-dir",
            s(self.data),
        ]);
    }

    fn cli(&self, args: &[&str]) -> (bool, String, String) {
        let mut all: Vec<&str> = args.to_vec();
        self.connect(&mut all);
        keyfence(&all)
    }

    fn propose(&self, file: &str, args: &[&str]) -> PathBuf {
        let mut all = vec!["admin", "propose"];
        all.extend_from_slice(args);
        let path = self.dir.join(file);
        std::fs::write(&path, ok(&all)).unwrap();
        path
    }

    fn sign(&self, who: &str, proposal: &Path) -> PathBuf {
        let path = self.dir.join(format!(
            "{who}-{}-{}.approval",
            proposal.file_name().unwrap().to_str().unwrap(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        std::fs::write(
            &path,
            ok(&["admin", "sign", s(proposal), "--key", s(&self.key(who))]),
        )
        .unwrap();
        path
    }

    fn execute(&self, proposal: &Path, approvals: &[&Path]) -> (bool, String, String) {
        let mut args = vec!["admin", "execute", s(proposal)];
        args.extend(approvals.iter().map(|x| s(x)));
        self.cli(&args)
    }

    /// Every refusal for `proposal` (needing 2 of alice, bob, carol), then
    /// its execution by alice and carol (Ed25519), then its replay refused.
    /// `other_args`: another command of the same kind; `expiring`: the
    /// same command proposed with a 1 s expiry.
    fn refusals_then_execution(
        &self,
        proposal: &Path,
        other_args: &[&str],
        expiring: &[&str],
    ) -> String {
        let a = self.sign("alice", proposal);
        // M-1.
        let (done, _, err) = self.execute(proposal, &[&a]);
        assert!(
            !done && err.contains("1 of the 2 approvals needed"),
            "{err}"
        );
        // The same operator twice.
        let a2 = self.sign("alice", proposal);
        let (done, _, err) = self.execute(proposal, &[&a, &a2]);
        assert!(
            !done && err.contains("operator alice approved twice"),
            "{err}"
        );
        // A signature over a different command.
        let other = self.propose("other.proposal", other_args);
        let b_other = self.sign("bob", &other);
        let (done, _, err) = self.execute(proposal, &[&a, &b_other]);
        assert!(
            !done && err.contains("signature of bob is not over this proposal"),
            "{err}"
        );
        // Expired.
        let mut short_args = expiring.to_vec();
        short_args.extend(["--expires-in", "1"]);
        let short = self.propose("short.proposal", &short_args);
        let (sa, sb) = (self.sign("alice", &short), self.sign("bob", &short));
        std::thread::sleep(Duration::from_millis(1200));
        let (done, _, err) = self.execute(&short, &[&sa, &sb]);
        assert!(!done && err.contains("expired"), "{err}");
        // M distinct valid signatures (one Ed25519) execute it.
        let c = self.sign("carol", proposal);
        let (done, out, err) = self.execute(proposal, &[&a, &c]);
        assert!(done, "{out}{err}");
        assert!(out.contains("approved by alice, carol"), "{out}");
        // Replay.
        let b = self.sign("bob", proposal);
        let (done, _, err) = self.execute(proposal, &[&a, &b]);
        assert!(!done && err.contains("already executed"), "{err}");
        out
    }
}

#[test]
fn approvals_gate_node_approval_and_early_destruction_in_the_node() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let authority = start(
        dir.path(),
        "a",
        &data,
        "[node]\nname = \"a\"\nauthority = true\n",
        "node-a.addr.json",
    );
    let _joining = start(
        dir.path(),
        "b",
        &data,
        "[node]\nname = \"b\"\nattributes = { country = \"DE\" }\n",
        "node-b.addr.json",
    );
    let team = Team {
        dir: dir.path(),
        data: &data,
        server: &authority,
    };
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
            s(&team.key(name)),
            "--scheme",
            scheme,
        ]);
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(team.key("alice"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    // Bootstrap: operators and rules set directly, through the admin API.
    for name in ["alice", "bob", "carol"] {
        let public = format!("{}.pub", team.key(name).display());
        let (done, out, err) = team.cli(&["operator", "add", &public]);
        assert!(done, "{out}{err}");
    }
    // Destroying a key early is never one admin's act: with no rule for
    // destroy-key-early, the direct command is refused and so is a signed
    // proposal; the key is still there, pending deletion.
    let (status, created) = call(&authority, &data, "TrentService.CreateKey", json!({}));
    assert_eq!(status, 200, "{created}");
    let early = created["KeyMetadata"]["Arn"].as_str().unwrap().to_owned();
    let (status, body) = call(
        &authority,
        &data,
        "TrentService.ScheduleKeyDeletion",
        json!({"KeyId": early, "PendingWindowInDays": 7}),
    );
    assert_eq!(status, 200, "{body}");
    let (status, body) = call(
        &authority,
        &data,
        "KeyfenceAdmin.DestroyKey",
        json!({"KeyId": early}),
    );
    assert_denied(
        status,
        &body,
        "destroy-key-early needs a quorum rule and none is set",
    );
    let early_arg = format!("key={early}");
    let p = team.propose("early.proposal", &["destroy-key-early", &early_arg]);
    let (a, b) = (team.sign("alice", &p), team.sign("bob", &p));
    let (done, _, err) = team.execute(&p, &[&a, &b]);
    assert!(!done && err.contains("no quorum rule"), "{err}");
    let (status, body) = call(
        &authority,
        &data,
        "TrentService.DescribeKey",
        json!({"KeyId": early}),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["KeyMetadata"]["KeyState"], "PendingDeletion", "{body}");

    for kind in [
        "approve-node",
        "destroy-key-early",
        "add-operator",
        "change-quorum",
    ] {
        let (done, out, err) = team.cli(&["quorum", "set", kind, "2"]);
        assert!(
            done && out.contains(&format!("rule {kind}: 2 of 3")),
            "{out}{err}"
        );
    }
    // The state is in the store, not in a file.
    assert!(!data.join("quorum.json").exists());
    let (_, listed, _) = team.cli(&["operator", "list"]);
    assert!(
        listed.contains("operator carol (Ed25519)") && listed.contains("rule approve-node: 2 of 3"),
        "{listed}"
    );
    // Now the set-up path is closed.
    let dave_pub = format!("{}.pub", team.key("dave").display());
    let (done, _, err) = team.cli(&["operator", "add", &dave_pub]);
    assert!(
        !done && err.contains("a quorum rule guards add-operator"),
        "{err}"
    );
    let (done, _, err) = team.cli(&["quorum", "set", "approve-node", "1"]);
    assert!(
        !done && err.contains("a quorum rule guards change-quorum"),
        "{err}"
    );

    // Approving a node join: the direct command is refused.
    let (done, _, err) = team.cli(&["node", "approve", "b"]);
    assert!(
        !done && err.contains("a quorum rule guards approve-node"),
        "{err}"
    );
    let p = team.propose("approve-b.proposal", &["approve-node", "node=b"]);
    team.refusals_then_execution(
        &p,
        &["approve-node", "node=mallory"],
        &["approve-node", "node=b"],
    );
    let (_, nodes, _) = team.cli(&["node", "list"]);
    let b_line = nodes
        .lines()
        .find(|l| l.starts_with("b "))
        .unwrap_or_default();
    assert!(b_line.contains("APPROVED"), "{nodes}");

    // Destroying a key before its waiting period.
    let (status, created) = call(&authority, &data, "TrentService.CreateKey", json!({}));
    assert_eq!(status, 200, "{created}");
    let arn = created["KeyMetadata"]["Arn"].as_str().unwrap().to_owned();
    let (status, body) = call(
        &authority,
        &data,
        "TrentService.ScheduleKeyDeletion",
        json!({"KeyId": arn, "PendingWindowInDays": 7}),
    );
    assert_eq!(status, 200, "{body}");
    let (status, body) = call(
        &authority,
        &data,
        "KeyfenceAdmin.DestroyKey",
        json!({"KeyId": arn}),
    );
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["__type"], "AccessDeniedException", "{body}");
    let key_arg = format!("key={arn}");
    let other_arg = format!("key={}", arn.replace(&arn[arn.len() - 4..], "0000"));
    let p = team.propose("destroy.proposal", &["destroy-key-early", &key_arg]);
    let out = team.refusals_then_execution(
        &p,
        &["destroy-key-early", &other_arg],
        &["destroy-key-early", &key_arg],
    );
    assert!(out.contains("\"Destroyed\": true"), "{out}");
    let (status, body) = call(
        &authority,
        &data,
        "TrentService.DescribeKey",
        json!({"KeyId": arn}),
    );
    assert_eq!(
        (status, body["__type"].as_str()),
        (400, Some("NotFoundException")),
        "{body}"
    );
    // The executed proposal is in the authority's own audit log (nodes a and
    // b share the data directory; each has its own file), with its
    // approvers, its key and its outcome, durable before the reply.
    let (ok, events, err) = keyfence(&["audit", "export", "--data-dir", s(&data), "--log", "a"]);
    assert!(ok, "{err}");
    let executed: Vec<Value> = events
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|e| e["eventName"] == "ExecuteProposal:destroy-key-early")
        .collect();
    assert_eq!(executed.len(), 1, "{events}");
    let approvers = executed[0]["userIdentity"]["arn"]
        .as_str()
        .unwrap_or_default();
    let mut names: Vec<&str> = approvers.split(',').collect();
    names.sort_unstable();
    names.dedup();
    assert!(
        names.len() == 2 && names.iter().all(|n| ["alice", "bob", "carol"].contains(n)),
        "{}",
        executed[0]
    );
    assert_eq!(executed[0]["resources"][0]["ARN"], arn.as_str());
    assert!(executed[0].get("errorCode").is_none(), "{}", executed[0]);

    // Changing the operators: dave joins by a 2-of-3 proposal.
    let dave: Value = serde_json::from_str(&std::fs::read_to_string(&dave_pub).unwrap()).unwrap();
    let p = team.propose(
        "add-dave.proposal",
        &[
            "add-operator",
            "name=dave",
            "scheme=ML-DSA-65",
            &format!("public-key={}", dave["public_key"].as_str().unwrap()),
        ],
    );
    let (a, b) = (team.sign("alice", &p), team.sign("bob", &p));
    let (done, out, err) = team.execute(&p, &[&a, &b]);
    assert!(done && out.contains("executed add-operator"), "{out}{err}");
    let (_, listed, _) = team.cli(&["operator", "list"]);
    assert!(
        listed.contains("operator dave (ML-DSA-65)")
            && listed.contains("rule approve-node: 2 of 4"),
        "{listed}"
    );
    let (done, _, err) = team.execute(&p, &[&a, &b]);
    assert!(!done && err.contains("already executed"), "{err}");
}

#[test]
fn the_audit_signing_key_leaves_only_by_a_quorum_and_only_to_its_recipient() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let node = start(dir.path(), "lone", &data, "", "node.addr.json");
    let team = Team {
        dir: dir.path(),
        data: &data,
        server: &node,
    };
    for name in ["alice", "bob"] {
        ok(&[
            "operator",
            "keygen",
            "--name",
            name,
            "--out",
            s(&team.key(name)),
        ]);
        let public = format!("{}.pub", team.key(name).display());
        let (done, out, err) = team.cli(&["operator", "add", &public]);
        assert!(done, "{out}{err}");
    }
    let recipient = dir.path().join("auditor.key");
    ok(&["audit", "recipient", "--out", s(&recipient)]);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&recipient).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let recipient_pub = std::fs::read_to_string(format!("{}.pub", recipient.display())).unwrap();
    let recipient_pub = recipient_pub.trim();
    let stranger = dir.path().join("stranger.key");
    ok(&["audit", "recipient", "--out", s(&stranger)]);

    // Never one admin's act: refused directly without a rule, and with one.
    let direct = || {
        call(
            &node,
            &data,
            "KeyfenceAdmin.ExportAuditKey",
            json!({"Recipient": recipient_pub}),
        )
    };
    let (status, body) = direct();
    assert_denied(
        status,
        &body,
        "export-audit-key needs a quorum rule and none is set",
    );
    let (done, out, err) = team.cli(&["quorum", "set", "export-audit-key", "2"]);
    assert!(done, "{out}{err}");
    let (status, body) = direct();
    assert_denied(status, &body, "a quorum rule guards export-audit-key");

    let p = team.propose(
        "export.proposal",
        &["export-audit-key", &format!("recipient={recipient_pub}")],
    );
    let a = team.sign("alice", &p);
    let (done, _, err) = team.execute(&p, &[&a]);
    assert!(
        !done && err.contains("1 of the 2 approvals needed"),
        "{err}"
    );
    let b = team.sign("bob", &p);
    let export = dir.path().join("export.json");
    let (done, out, err) =
        team.cli(&["admin", "execute", s(&p), s(&a), s(&b), "--out", s(&export)]);
    assert!(
        done && out.contains("executed export-audit-key"),
        "{out}{err}"
    );
    let (done, _, err) = team.execute(&p, &[&a, &b]);
    assert!(!done && err.contains("already executed"), "{err}");

    // Only the recipient opens it, whole, and it is the log's signing key.
    let pinned = dir.path().join("log.der");
    ok(&[
        "audit",
        "public-key",
        "--data-dir",
        s(&data),
        "--der",
        s(&pinned),
    ]);
    let opened = dir.path().join("audit-signing-key.pk8");
    let (done, _, err) = keyfence(&[
        "audit",
        "open-key",
        "--key",
        s(&stranger),
        "--export",
        s(&export),
        "--out",
        s(&opened),
    ]);
    assert!(!done && err.contains("does not open"), "{err}");
    assert!(!opened.exists());
    let mut altered: Value =
        serde_json::from_str(&std::fs::read_to_string(&export).unwrap()).unwrap();
    let wrapped = altered["WrappedKey"].as_str().unwrap().to_owned();
    let flipped = if wrapped.starts_with('A') { "B" } else { "A" };
    altered["WrappedKey"] = Value::from(format!("{flipped}{}", &wrapped[1..]));
    let altered_file = dir.path().join("altered.json");
    std::fs::write(&altered_file, altered.to_string()).unwrap();
    let (done, _, err) = keyfence(&[
        "audit",
        "open-key",
        "--key",
        s(&recipient),
        "--export",
        s(&altered_file),
        "--out",
        s(&opened),
    ]);
    assert!(!done && err.contains("does not open"), "{err}");
    let out = ok(&[
        "audit",
        "open-key",
        "--key",
        s(&recipient),
        "--export",
        s(&export),
        "--public-key",
        s(&pinned),
        "--out",
        s(&opened),
    ]);
    assert!(out.contains("matches its public key"), "{out}");
    let pkcs8 = std::fs::read(&opened).unwrap();
    let key = keyfence_crypto::asym::PrivateKey::from_bytes(
        keyfence_crypto::asym::KeySpec::MlDsa65,
        &pkcs8,
    )
    .unwrap();
    assert_eq!(
        key.public_key_der().unwrap(),
        std::fs::read(&pinned).unwrap()
    );

    // The export is in the node's audit log, with its approvers.
    let (ok_, events, err) = keyfence(&["audit", "export", "--data-dir", s(&data)]);
    assert!(ok_, "{err}");
    let executed: Vec<Value> = events
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|e| e["eventName"] == "ExecuteProposal:export-audit-key")
        .collect();
    assert_eq!(executed.len(), 1, "{events}");
    assert!(executed[0].get("errorCode").is_none(), "{}", executed[0]);
}

#[test]
fn the_domain_key_rotates_from_the_cli_until_a_quorum_rule_guards_it() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    // A second user of the admin's account, who may not rotate.
    let bob = "[[credentials]]\naccess_key_id = \"AKIAEXAMPLEBOBUSER01\"\n\
               secret_access_key = \"bob-secret-bob-secret-bob-secret-bob-00\"\n\
               account_id = \"111122223333\"\nuser_name = \"bob\"\n";
    let node = start(dir.path(), "n", &data, bob, "node.addr.json");
    let team = Team {
        dir: dir.path(),
        data: &data,
        server: &node,
    };
    let (status, created) = call(&node, &data, "TrentService.CreateKey", json!({}));
    assert_eq!(status, 200, "{created}");
    let key = created["KeyMetadata"]["KeyId"].as_str().unwrap().to_owned();
    let encrypt = || {
        let (status, body) = call(
            &node,
            &data,
            "TrentService.Encrypt",
            json!({"KeyId": key, "Plaintext": "ZG9tYWlu"}),
        );
        assert_eq!(status, 200, "{body}");
        body["CiphertextBlob"].clone()
    };
    let before = encrypt();

    // Directly, by the admin user: domain key 1 is the first start's.
    for expected in ["domain key 2 is current", "domain key 3 is current"] {
        let (done, out, err) = team.cli(&["domain-key", "rotate"]);
        assert!(done && out.contains(expected), "{out}{err}");
    }
    // What was encrypted before still decrypts, and new encryptions work.
    for blob in [before, encrypt()] {
        let (status, body) = call(
            &node,
            &data,
            "TrentService.Decrypt",
            json!({"CiphertextBlob": blob}),
        );
        assert_eq!(
            (status, body["Plaintext"].as_str()),
            (200, Some("ZG9tYWlu")),
            "{body}"
        );
    }
    // Not by a caller other than the admin user.
    let (done, _, err) = keyfence(&[
        "domain-key",
        "rotate",
        "--endpoint",
        &node.endpoint,
        "--data-dir",
        s(&data),
        "--access-key",
        "AKIAEXAMPLEBOBUSER01",
        "--secret-key",
        "bob-secret-bob-secret-bob-secret-bob-00",
    ]);
    assert!(
        !done && err.contains("AccessDeniedException") && err.contains("user/bob"),
        "{err}"
    );

    // Once a rule guards it, refused directly; a signed proposal runs it.
    ok(&[
        "operator",
        "keygen",
        "--name",
        "alice",
        "--out",
        s(&team.key("alice")),
    ]);
    let public = format!("{}.pub", team.key("alice").display());
    let (done, out, err) = team.cli(&["operator", "add", &public]);
    assert!(done, "{out}{err}");
    let (done, out, err) = team.cli(&["quorum", "set", "rotate-domain-key", "1"]);
    assert!(done, "{out}{err}");
    let (done, _, err) = team.cli(&["domain-key", "rotate"]);
    assert!(
        !done && err.contains("a quorum rule guards rotate-domain-key"),
        "{err}"
    );
    let proposal = team.propose("rotate.proposal", &["rotate-domain-key"]);
    let approval = team.sign("alice", &proposal);
    let (done, out, err) = team.execute(&proposal, &[&approval]);
    assert!(done && out.contains("approved by alice"), "{out}{err}");
}

#[test]
fn an_earlier_quorum_json_moves_into_the_store_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    ok(&["init", "--data-dir", s(&data)]);
    let key = dir.path().join("erin.key");
    ok(&[
        "operator",
        "keygen",
        "--name",
        "erin",
        "--out",
        s(&key),
        "--scheme",
        "Ed25519",
    ]);
    let public: Value =
        serde_json::from_str(&std::fs::read_to_string(format!("{}.pub", key.display())).unwrap())
            .unwrap();
    std::fs::write(
        data.join("quorum.json"),
        serde_json::to_string(&json!({
            "operators": [public],
            "rules": {"remove-node": 1},
            "executed": [hex_id()],
        }))
        .unwrap(),
    )
    .unwrap();
    let server = start(dir.path(), "n", &data, "", "node.addr.json");
    let (status, v) = call(&server, &data, "KeyfenceAdmin.ListQuorum", json!({}));
    assert_eq!(status, 200, "{v}");
    assert_eq!(
        v["Operators"],
        json!([{"Name": "erin", "Scheme": "Ed25519"}])
    );
    assert_eq!(
        v["Rules"],
        json!([{"Kind": "remove-node", "Threshold": 1, "Of": 1}])
    );
    assert!(!data.join("quorum.json").exists());
    assert!(data.join("quorum.json.migrated").exists());
}

fn hex_id() -> String {
    "ab".repeat(32)
}
