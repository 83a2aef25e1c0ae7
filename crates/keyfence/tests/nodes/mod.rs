//! Several real `keyfence server` processes over one store (PostgreSQL or a
//! shared SQLite file), and a signed client for each: the harness of the
//! many-node tests (`nodes_*.rs`, `kill_nodes.rs`).

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use keyfence_bench::client::{ClientContext, ClientError, Reply};
use keyfence_bench::connect::ConnectArgs;
use keyfence_server::tls::ClientGroups;
use keyfence_testkit::{KeyfenceNode, NodeSpec, TempPostgres};
use serde_json::{json, Value};

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_keyfence");

/// Which store the nodes share.
pub enum Store {
    /// A PostgreSQL server started for the test.
    Postgres(TempPostgres),
    /// A SQLite file shared by the nodes (one host).
    SharedSqlite(PathBuf),
    /// Each node's own SQLite file in its data directory (the embedded default, one node).
    OwnSqlite,
}

impl Store {
    /// A fresh PostgreSQL server.
    pub fn postgres() -> Self {
        Self::Postgres(TempPostgres::new().expect("PostgreSQL starts"))
    }

    /// The `store` setting the nodes get.
    pub fn setting(&self) -> String {
        match self {
            Self::Postgres(pg) => pg.url_for("postgres"),
            Self::SharedSqlite(path) => format!("sqlite:{}", path.display()),
            Self::OwnSqlite => "sqlite".into(),
        }
    }

    /// The PostgreSQL server, if that is the store.
    pub fn pg(&mut self) -> &mut TempPostgres {
        match self {
            Self::Postgres(pg) => pg,
            _ => panic!("not a PostgreSQL store"),
        }
    }

    /// A short name for messages.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Postgres(_) => "postgres",
            Self::SharedSqlite(_) => "shared sqlite",
            Self::OwnSqlite => "sqlite (one node)",
        }
    }
}

/// Nodes over one store, each a real process, plus the runtime the client runs on.
pub struct Nodes {
    pub rt: tokio::runtime::Runtime,
    pub nodes: Vec<KeyfenceNode>,
    pub store: Store,
    // Last: removed after the nodes are killed.
    pub dir: tempfile::TempDir,
}

impl Nodes {
    /// `n` nodes over `store` (a fresh shared SQLite file when `store` is
    /// `None`). The first node creates its data directory;
    /// the others start from a copy of it, so that all share one root key.
    pub fn start(n: usize, store: Option<Store>, max_staleness_seconds: Option<u64>) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let store = store.unwrap_or_else(|| Store::SharedSqlite(dir.path().join("shared.db")));
        Self::start_with(n, store, None, max_staleness_seconds, dir)
    }

    /// Like [`start`](Self::start) with an explicit store setting (a multi-host string).
    pub fn start_on(
        n: usize,
        store: Store,
        setting: &str,
        max_staleness_seconds: Option<u64>,
    ) -> Self {
        let dir = tempfile::tempdir().unwrap();
        Self::start_with(n, store, Some(setting), max_staleness_seconds, dir)
    }

    fn start_with(
        n: usize,
        store: Store,
        setting: Option<&str>,
        max_staleness_seconds: Option<u64>,
        dir: tempfile::TempDir,
    ) -> Self {
        let setting = setting.map_or_else(|| store.setting(), str::to_string);
        let spec = |i: usize| NodeSpec {
            bin: PathBuf::from(BIN),
            data_dir: dir.path().join(format!("n{i}")),
            store: setting.clone(),
            max_staleness_seconds,
        };
        let first = KeyfenceNode::start(spec(0)).expect("node 0 starts");
        let mut nodes = vec![first];
        for i in 1..n {
            KeyfenceNode::copy_data_dir(nodes[0].data_dir(), &spec(i).data_dir).unwrap();
            nodes.push(KeyfenceNode::start(spec(i)).expect("node starts"));
        }
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        Self {
            rt,
            nodes,
            store,
            dir,
        }
    }

    /// A client context for node `i` (its current address).
    pub fn ctx(&self, i: usize) -> ClientContext {
        context(&self.nodes[i])
    }

    /// One signed KMS call to node `i` on a fresh connection.
    pub fn call(&self, i: usize, op: &str, body: Value) -> Result<Reply, ClientError> {
        let ctx = self.ctx(i);
        self.rt.block_on(call(ctx, op, body))
    }

    /// Like [`call`](Self::call), panicking unless the reply is a success.
    pub fn ok(&self, i: usize, op: &str, body: Value) -> Value {
        let reply = self
            .call(i, op, body)
            .unwrap_or_else(|e| panic!("{op} at node {i}: {e}"));
        assert_eq!(
            reply.status,
            200,
            "{op} at node {i}: {}",
            String::from_utf8_lossy(&reply.body)
        );
        reply.json()
    }

    /// A new symmetric key made at node `i`; its id.
    pub fn create_key(&self, i: usize) -> String {
        self.ok(i, "CreateKey", json!({}))["KeyMetadata"]["KeyId"]
            .as_str()
            .unwrap()
            .to_string()
    }

    /// Waits until `check(node)` holds at every node in `at`, returning how
    /// long it took (from the call).
    pub fn until_all(
        &self,
        at: &[usize],
        limit: Duration,
        what: &str,
        mut check: impl FnMut(&Self, usize) -> bool,
    ) -> Duration {
        let started = Instant::now();
        for &i in at {
            while !check(self, i) {
                assert!(
                    started.elapsed() < limit,
                    "{what}: node {i} not within {limit:?} ({})",
                    self.store.name()
                );
                std::thread::sleep(Duration::from_millis(2));
            }
        }
        started.elapsed()
    }

    /// The key's state as node `i` answers DescribeKey (`None`: not found there).
    pub fn key_state(&self, i: usize, key: &str) -> Option<String> {
        let r = self.call(i, "DescribeKey", json!({ "KeyId": key })).ok()?;
        (r.status == 200).then(|| r.json()["KeyMetadata"]["KeyState"].as_str().unwrap().into())
    }

    /// Where alias `name` points as node `i` lists it (`None`: no such alias there).
    pub fn alias_target(&self, i: usize, name: &str) -> Option<String> {
        let r = self.ok(i, "ListAliases", json!({ "Limit": 100 }));
        r["Aliases"].as_array().unwrap().iter().find_map(|a| {
            (a["AliasName"] == name).then(|| a["TargetKeyId"].as_str().unwrap_or("").to_string())
        })
    }

    /// How many keys node `i` lists (every page).
    pub fn key_count(&self, i: usize) -> usize {
        let mut count = 0;
        let mut marker: Option<String> = None;
        loop {
            let mut body = json!({ "Limit": 1000 });
            if let Some(m) = &marker {
                body["Marker"] = json!(m);
            }
            let page = self.ok(i, "ListKeys", body);
            count += page["Keys"].as_array().unwrap().len();
            match page["NextMarker"].as_str() {
                Some(m) if page["Truncated"] == true => marker = Some(m.to_string()),
                _ => return count,
            }
        }
    }

    /// How many rotations node `i` lists for `key`.
    pub fn rotations(&self, i: usize, key: &str) -> Option<usize> {
        let r = self
            .call(i, "ListKeyRotations", json!({ "KeyId": key }))
            .ok()?;
        (r.status == 200).then(|| r.json()["Rotations"].as_array().unwrap().len())
    }

    /// Kills every node, then the store, before the directories go.
    pub fn stop(mut self) {
        for n in &mut self.nodes {
            n.kill9().unwrap();
        }
    }

    /// Every node's log tail, for a failure message.
    pub fn logs(&self) -> String {
        self.nodes
            .iter()
            .enumerate()
            .map(|(i, n)| format!("--- node {i} ---\n{}\n", n.log_tail(20)))
            .collect()
    }
}

/// A client context for `node` at its current address, trusting its CA and
/// signing with its data directory's credential.
pub fn context(node: &KeyfenceNode) -> ClientContext {
    ConnectArgs {
        endpoint: format!("https://{}", node.api_addr()),
        data_dir: Some(node.data_dir().to_path_buf()),
        ca: None,
        access_key: None,
        secret_key: None,
        region: "us-east-1".into(),
    }
    .context(ClientGroups::Default)
    .expect("client context")
}

/// One signed KMS call on a fresh connection.
pub async fn call(ctx: ClientContext, op: &str, body: Value) -> Result<Reply, ClientError> {
    let mut conn = ctx.connect().await?;
    conn.kms(op, &body).await
}

/// The AWS error type of a reply, `None` for a success.
pub fn error_of(reply: &Reply) -> Option<String> {
    reply.error_type()
}

/// The data directory of node `i` under `root`.
pub fn data_dir(root: &Path, i: usize) -> PathBuf {
    root.join(format!("n{i}"))
}

/// Percentiles (p50, p99, max) of `samples`, sorted in place.
pub fn percentiles(samples: &mut [Duration]) -> (Duration, Duration, Duration) {
    samples.sort();
    let at = |p: usize| samples[(samples.len() * p / 100).min(samples.len() - 1)];
    (at(50), at(99), samples[samples.len() - 1])
}
