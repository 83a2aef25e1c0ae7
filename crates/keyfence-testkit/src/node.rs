//! [`KeyfenceNode`]: a real `keyfence server` process, killable with SIGKILL
//! and restartable on the same data directory.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::PgError;

/// How long a node may take to publish its addresses after it was started.
const START_LIMIT: Duration = Duration::from_secs(60);

/// What a [`KeyfenceNode`] is started with.
#[derive(Debug, Clone)]
pub struct NodeSpec {
    /// The `keyfence` binary (a test's `env!("CARGO_BIN_EXE_keyfence")`).
    pub bin: PathBuf,
    /// The node's data directory (created by its first start).
    pub data_dir: PathBuf,
    /// The `store` setting: `sqlite`, `sqlite:PATH` or a PostgreSQL connection string.
    pub store: String,
    /// `max_staleness_seconds`, if not the default.
    pub max_staleness_seconds: Option<u64>,
}

/// A running (or killed) `keyfence server` process. Killed with SIGKILL when dropped.
#[derive(Debug)]
pub struct KeyfenceNode {
    spec: NodeSpec,
    child: Option<Child>,
    api: SocketAddr,
    metrics: SocketAddr,
    starts: u32,
}

impl KeyfenceNode {
    /// Starts the node and waits until it serves (its `node.addr.json` names
    /// this process). Its log (standard error) is appended to
    /// `<data_dir>.log`, beside the data directory.
    pub fn start(spec: NodeSpec) -> Result<Self, PgError> {
        let mut node = Self {
            spec,
            child: None,
            api: SocketAddr::from(([127, 0, 0, 1], 0)),
            metrics: SocketAddr::from(([127, 0, 0, 1], 0)),
            starts: 0,
        };
        node.launch()?;
        Ok(node)
    }

    /// The API address (HTTPS) of the current process.
    pub fn api_addr(&self) -> SocketAddr {
        self.api
    }

    /// The metrics address (plain HTTP) of the current process.
    pub fn metrics_addr(&self) -> SocketAddr {
        self.metrics
    }

    /// The data directory.
    pub fn data_dir(&self) -> &Path {
        &self.spec.data_dir
    }

    /// The process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// How many times a process was started for this node.
    pub fn starts(&self) -> u32 {
        self.starts
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        match &mut self.child {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// SIGKILLs the process (no shutdown of any kind) and reaps it.
    pub fn kill9(&mut self) -> Result<(), PgError> {
        if let Some(mut child) = self.child.take() {
            // Already exited is not an error: it is dead either way.
            let _ = child.kill();
            child.wait().map_err(PgError::io("reap keyfence"))?;
        }
        Ok(())
    }

    /// Starts a new process on the same data directory and store (after
    /// [`kill9`](Self::kill9)); its ports are new.
    pub fn restart(&mut self) -> Result<(), PgError> {
        self.kill9()?;
        self.launch()
    }

    /// The last `lines` lines of the node's log.
    pub fn log_tail(&self, lines: usize) -> String {
        let log = std::fs::read_to_string(self.log_path()).unwrap_or_default();
        let all: Vec<&str> = log.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// Copies a node's data directory to `to`, leaving out its published
    /// addresses: every node over one store must share the root key (and
    /// may share the CA and credential) of the first.
    pub fn copy_data_dir(from: &Path, to: &Path) -> Result<(), PgError> {
        std::fs::create_dir_all(to).map_err(PgError::io(format!("create {}", to.display())))?;
        let entries =
            std::fs::read_dir(from).map_err(PgError::io(format!("read {}", from.display())))?;
        for entry in entries {
            let entry = entry.map_err(PgError::io("read a directory entry"))?;
            let target = to.join(entry.file_name());
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                Self::copy_data_dir(&entry.path(), &target)?;
            } else if !name.ends_with(".addr.json") && !name.starts_with("keyfence.db") {
                std::fs::copy(entry.path(), &target)
                    .map_err(PgError::io(format!("copy {}", entry.path().display())))?;
            }
        }
        Ok(())
    }

    fn log_path(&self) -> PathBuf {
        let mut p = self.spec.data_dir.clone().into_os_string();
        p.push(".log");
        PathBuf::from(p)
    }

    fn config_path(&self) -> PathBuf {
        let mut p = self.spec.data_dir.clone().into_os_string();
        p.push(".toml");
        PathBuf::from(p)
    }

    fn write_config(&self) -> Result<(), PgError> {
        let mut text = format!("store = {}\n", toml_string(&self.spec.store));
        if let Some(s) = self.spec.max_staleness_seconds {
            text.push_str(&format!("max_staleness_seconds = {s}\n"));
        }
        std::fs::write(self.config_path(), text).map_err(PgError::io("write the node's config"))
    }

    fn launch(&mut self) -> Result<(), PgError> {
        self.write_config()?;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .map_err(PgError::io("open the node's log"))?;
        let child = Command::new(&self.spec.bin)
            .args(["server", "--listen", "127.0.0.1:0"])
            .args(["--metrics-listen", "127.0.0.1:0"])
            .arg("--data-dir")
            .arg(&self.spec.data_dir)
            .arg("--config")
            .arg(self.config_path())
            .env("RUST_LOG", "info")
            .env_remove("KEYFENCE_STORE")
            .env_remove("KEYFENCE_CONFIG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(PgError::io(format!("start {}", self.spec.bin.display())))?;
        self.starts += 1;
        self.child = Some(child);
        self.wait_serving()
    }

    /// Waits until `node.addr.json` names the current process.
    fn wait_serving(&mut self) -> Result<(), PgError> {
        let started = Instant::now();
        let file = self.spec.data_dir.join("node.addr.json");
        loop {
            let pid = self.pid();
            if let Some((api, metrics)) = std::fs::read_to_string(&file)
                .ok()
                .and_then(|text| addrs_of(&text, pid?))
            {
                self.api = api;
                self.metrics = metrics;
                return Ok(());
            }
            if let Some(child) = &mut self.child {
                if let Ok(Some(status)) = child.try_wait() {
                    self.child = None;
                    return Err(PgError::Command {
                        what: "keyfence server".into(),
                        output: format!("exited with {status}; log:\n{}", self.log_tail(30)),
                    });
                }
            }
            if started.elapsed() > START_LIMIT {
                return Err(PgError::Timeout(format!(
                    "keyfence server did not serve within {START_LIMIT:?}; log:\n{}",
                    self.log_tail(30)
                )));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for KeyfenceNode {
    fn drop(&mut self) {
        let _ = self.kill9();
    }
}

/// The API and metrics addresses in a `node.addr.json` written by process `pid`.
fn addrs_of(text: &str, pid: u32) -> Option<(SocketAddr, SocketAddr)> {
    let v: serde_json::Value = serde_json::from_str(text).ok()?;
    if v["pid"].as_u64()? != u64::from(pid) {
        return None;
    }
    Some((
        v["api"].as_str()?.parse().ok()?,
        v["metrics"].as_str()?.parse().ok()?,
    ))
}

/// `s` as a TOML basic string.
fn toml_string(s: &str) -> String {
    serde_json::Value::String(s.to_string()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_read_only_from_the_named_process() {
        let text = r#"{"api":"127.0.0.1:4000","metrics":"127.0.0.1:4001","pid":42}"#;
        let (api, metrics) = addrs_of(text, 42).unwrap();
        assert_eq!(api.port(), 4000);
        assert_eq!(metrics.port(), 4001);
        assert!(addrs_of(text, 43).is_none(), "a previous process's file");
        assert!(addrs_of("{", 42).is_none());
    }

    #[test]
    fn store_strings_are_quoted_for_toml() {
        assert_eq!(
            toml_string("postgres://u@h:1,h:2/d?a=b"),
            "\"postgres://u@h:1,h:2/d?a=b\""
        );
        assert_eq!(toml_string("a\"b\\c"), r#""a\"b\\c""#);
    }
}
