//! [`TempPostgres`]: one throw-away PostgreSQL server.

use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::bin::PgBin;
use crate::process::{kill9_all, postmaster_pid, run, signal_all};
use crate::PgError;

/// Settings every test server gets (standbys inherit them through the base backup).
const CONF: &str = "
# keyfence-testkit
listen_addresses = '127.0.0.1'
unix_socket_directories = ''
fsync = on
synchronous_commit = on
full_page_writes = on
wal_level = replica
max_wal_senders = 8
hot_standby = on
max_connections = 60
shared_buffers = 32MB
";

/// How many times a start is retried on another port when the chosen one was taken.
const PORT_ATTEMPTS: usize = 8;

static INSTANCES: AtomicU32 = AtomicU32::new(0);

/// A PostgreSQL server on a temporary data directory, listening on
/// `127.0.0.1` at a free port, with trust authentication for the `postgres`
/// superuser. Stopped (immediately) and removed when dropped.
pub struct TempPostgres {
    bin: PgBin,
    dir: TempDir,
    port: u16,
    name: String,
    running: bool,
    frozen: bool,
    ca_cert: Option<PathBuf>,
}

impl std::fmt::Debug for TempPostgres {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TempPostgres")
            .field("data", &self.data_dir())
            .field("port", &self.port)
            .field("running", &self.running)
            .finish()
    }
}

impl TempPostgres {
    /// Creates a cluster with `initdb` and starts it.
    pub fn new() -> Result<Self, PgError> {
        let mut pg = Self::empty()?;
        pg.initdb()?;
        pg.append_conf(CONF)?;
        pg.launch(true)?;
        Ok(pg)
    }

    fn initdb(&self) -> Result<(), PgError> {
        run(
            "initdb",
            self.bin
                .server_command("initdb")
                .current_dir(self.dir.path())
                .arg("-D")
                .arg(self.data_dir())
                .args([
                    "-U",
                    "postgres",
                    "--auth=trust",
                    "--encoding=UTF8",
                    "--locale=C",
                    // Only initdb's own final sync is skipped (it is a fresh
                    // throw-away cluster); the server runs with fsync on.
                    "--no-sync",
                ]),
        )
        .map(drop)
    }

    /// Writes `text` to `path` with `mode`, owned by the user the server runs as.
    fn write_owned(&self, path: &std::path::Path, text: &str, mode: u32) -> Result<(), PgError> {
        use std::os::unix::fs::PermissionsExt;
        let what = format!("write {}", path.display());
        std::fs::write(path, text).map_err(PgError::io(what.clone()))?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
            .map_err(PgError::io(what.clone()))?;
        if let Some((uid, gid)) = self.bin.owner() {
            std::os::unix::fs::chown(path, Some(uid), Some(gid)).map_err(PgError::io(what))?;
        }
        Ok(())
    }

    /// Like [`new`](Self::new), but the server accepts only TLS connections
    /// (`ssl = on`, `hostssl` lines only in `pg_hba.conf`), with a
    /// certificate for `names` (DNS names or IP addresses) issued by a
    /// throw-away CA whose certificate is at [`ca_cert`](Self::ca_cert).
    pub fn new_tls(names: &[&str]) -> Result<Self, PgError> {
        let mut pg = Self::empty()?;
        pg.initdb()?;
        let certs = crate::certs::issue(names)?;
        let data = pg.data_dir();
        pg.write_owned(&data.join("server.crt"), &certs.cert, 0o644)?;
        pg.write_owned(&data.join("server.key"), &certs.key, 0o600)?;
        pg.write_owned(
            &data.join("pg_hba.conf"),
            "local all all trust\n\
             hostssl all all 127.0.0.1/32 trust\n\
             hostssl replication all 127.0.0.1/32 trust\n",
            0o600,
        )?;
        let ca = pg.dir.path().join("ca.pem");
        std::fs::write(&ca, &certs.ca).map_err(PgError::io("write ca.pem"))?;
        pg.ca_cert = Some(ca);
        pg.append_conf(CONF)?;
        pg.append_conf("ssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\n")?;
        pg.launch(true)?;
        Ok(pg)
    }

    /// The CA certificate (PEM file) of a server made by [`new_tls`](Self::new_tls).
    pub fn ca_cert(&self) -> Option<&std::path::Path> {
        self.ca_cert.as_deref()
    }

    /// A streaming standby of `primary`: a base backup (`pg_basebackup -R`,
    /// so it follows the primary), started as a hot standby. When
    /// `synchronous`, the primary is reconfigured so that every commit waits
    /// for this standby (`synchronous_standby_names`). Returns once the
    /// standby is streaming (and, when asked, synchronous).
    pub fn start_standby(primary: &TempPostgres, synchronous: bool) -> Result<Self, PgError> {
        let mut standby = Self::empty()?;
        run(
            "pg_basebackup",
            standby
                .bin
                .server_command("pg_basebackup")
                .current_dir(standby.dir.path())
                .arg("-D")
                .arg(standby.data_dir())
                .args(["-R", "-X", "stream", "-c", "fast", "--no-sync"])
                .args(["-h", "127.0.0.1", "-U", "postgres", "-p"])
                .arg(primary.port.to_string()),
        )?;
        standby.launch(true)?;
        if synchronous {
            primary.psql(&format!(
                "ALTER SYSTEM SET synchronous_standby_names = 'FIRST 1 (\"{}\")'",
                standby.name
            ))?;
            primary.psql("SELECT pg_reload_conf()")?;
        }
        let want = if synchronous { "sync" } else { "async" };
        let query = format!(
            "SELECT count(*) FROM pg_stat_replication \
             WHERE application_name = '{}' AND state = 'streaming' AND sync_state = '{want}'",
            standby.name
        );
        wait_for(Duration::from_secs(60), "standby streaming", || {
            Ok(primary.psql(&query)?.trim() == "1")
        })?;
        Ok(standby)
    }

    /// Promotes this standby to a primary (`pg_ctl promote`), returning once it accepts writes.
    pub fn promote(&mut self) -> Result<(), PgError> {
        run(
            "pg_ctl promote",
            self.bin
                .server_command("pg_ctl")
                .current_dir(self.dir.path())
                .args(["promote", "-w", "-t", "60", "-D"])
                .arg(self.data_dir()),
        )?;
        wait_for(Duration::from_secs(60), "promotion", || {
            Ok(self.psql("SELECT pg_is_in_recovery()")?.trim() == "f")
        })
    }

    /// The port the server listens on (kept across [`stop`](Self::stop)/[`start`](Self::start)).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The data directory.
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// The name the server reports (`cluster_name`, and a standby's `application_name`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether the server is running (as far as this handle knows).
    pub fn is_running(&self) -> bool {
        self.running
    }

    /// A key/value connection string to database `postgres` as user `postgres`.
    pub fn connection_string(&self) -> String {
        self.connection_string_for("postgres")
    }

    /// A key/value connection string to database `db` as user `postgres`.
    pub fn connection_string_for(&self, db: &str) -> String {
        format!(
            "host=127.0.0.1 port={} user=postgres dbname={db}",
            self.port
        )
    }

    /// A `postgres://` URL to database `db` as user `postgres`.
    pub fn url_for(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.port)
    }

    /// Runs SQL with `psql` on database `postgres`; returns the unaligned,
    /// tuples-only output. A failing statement is an error.
    pub fn psql(&self, sql: &str) -> Result<String, PgError> {
        self.psql_on("postgres", sql)
    }

    /// Runs SQL with `psql` on database `db` (see [`psql`](Self::psql)).
    pub fn psql_on(&self, db: &str, sql: &str) -> Result<String, PgError> {
        run(
            "psql",
            self.bin
                .client_command("psql")
                .env("PGCONNECT_TIMEOUT", "10")
                .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1"])
                .args(["-h", "127.0.0.1", "-U", "postgres", "-d", db, "-p"])
                .arg(self.port.to_string())
                .args(["-c", sql]),
        )
        .map_err(|e| self.with_log(e))
    }

    /// Creates database `db`.
    pub fn create_database(&self, db: &str) -> Result<(), PgError> {
        self.psql(&format!("CREATE DATABASE \"{db}\"")).map(drop)
    }

    /// Kills the server with SIGKILL: the postmaster and all its processes at
    /// once, without a shutdown checkpoint (a crash). [`start`](Self::start)
    /// runs crash recovery from the WAL.
    pub fn kill9(&mut self) -> Result<(), PgError> {
        let pid = postmaster_pid(&self.data_dir()).ok_or_else(|| PgError::Command {
            what: "kill -9".into(),
            output: "no postmaster.pid: the server is not running".into(),
        })?;
        kill9_all(pid)?;
        self.running = false;
        Ok(())
    }

    /// Freezes the server (SIGSTOP to the postmaster and all its
    /// processes): connections stay open and new ones are accepted by the
    /// kernel, but nothing answers, as behind a network partition or on a
    /// hung machine. [`thaw`](Self::thaw) resumes it.
    pub fn freeze(&mut self) -> Result<(), PgError> {
        let pid = postmaster_pid(&self.data_dir()).ok_or_else(|| PgError::Command {
            what: "freeze".into(),
            output: "no postmaster.pid: the server is not running".into(),
        })?;
        signal_all(pid, "STOP")?;
        self.frozen = true;
        Ok(())
    }

    /// Resumes a [`freeze`](Self::freeze)d server (SIGCONT).
    pub fn thaw(&mut self) -> Result<(), PgError> {
        if let Some(pid) = postmaster_pid(&self.data_dir()) {
            signal_all(pid, "CONT")?;
        }
        self.frozen = false;
        Ok(())
    }

    /// Stops the server cleanly (`pg_ctl stop -m fast`).
    pub fn stop(&mut self) -> Result<(), PgError> {
        run(
            "pg_ctl stop",
            self.bin
                .server_command("pg_ctl")
                .current_dir(self.dir.path())
                .args(["stop", "-w", "-t", "60", "-m", "fast", "-D"])
                .arg(self.data_dir()),
        )?;
        self.running = false;
        Ok(())
    }

    /// Starts the server again on the same data directory and port (after
    /// [`stop`](Self::stop) or [`kill9`](Self::kill9)).
    pub fn start(&mut self) -> Result<(), PgError> {
        self.launch(false)
    }

    /// A temporary directory owned by the user the server runs as, with no cluster yet.
    fn empty() -> Result<Self, PgError> {
        let bin = PgBin::find()?;
        // As root, the `postgres` user must be able to reach the directory:
        // /tmp always is, a $TMPDIR under /root may not be.
        let parent = match bin.owner() {
            Some(_) => PathBuf::from("/tmp"),
            None => std::env::temp_dir(),
        };
        let dir = tempfile::Builder::new()
            .prefix("keyfence-pg-")
            .tempdir_in(&parent)
            .map_err(PgError::io(format!(
                "create a temporary directory in {}",
                parent.display()
            )))?;
        if let Some((uid, gid)) = bin.owner() {
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid))
                .map_err(PgError::io("chown the temporary directory to postgres"))?;
        }
        let name = format!(
            "keyfence_{}_{}",
            std::process::id(),
            INSTANCES.fetch_add(1, Ordering::Relaxed)
        );
        Ok(Self {
            bin,
            dir,
            port: 0,
            name,
            running: false,
            frozen: false,
            ca_cert: None,
        })
    }

    fn append_conf(&self, text: &str) -> Result<(), PgError> {
        use std::io::Write;
        let path = self.data_dir().join("postgresql.conf");
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .and_then(|mut f| f.write_all(text.as_bytes()))
            .map_err(PgError::io(format!("append to {}", path.display())))
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("server.log")
    }

    /// The server log's tail, for error messages.
    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.log_path()).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(15)..].join("\n")
    }

    fn with_log(&self, e: PgError) -> PgError {
        match e {
            PgError::Command { what, output } => PgError::Command {
                what,
                output: format!("{output}\nserver log ({}):\n{}", self.name, self.log_tail()),
            },
            other => other,
        }
    }

    /// `pg_ctl start` on a free port (`new_port`) or the current one, retrying
    /// when another process took the port first.
    fn launch(&mut self, new_port: bool) -> Result<(), PgError> {
        let mut last = None;
        for attempt in 0..PORT_ATTEMPTS {
            if new_port || self.port == 0 {
                self.port = free_port()?;
            }
            let log_len = std::fs::metadata(self.log_path()).map_or(0, |m| m.len());
            let started = run(
                "pg_ctl start",
                self.bin
                    .server_command("pg_ctl")
                    .current_dir(self.dir.path())
                    .args(["start", "-w", "-t", "120", "-D"])
                    .arg(self.data_dir())
                    .arg("-l")
                    .arg(self.log_path())
                    .arg("-o")
                    .arg(format!(
                        "-c port={} -c cluster_name={}",
                        self.port, self.name
                    )),
            );
            match started {
                Ok(_) => {
                    self.running = true;
                    return Ok(());
                }
                Err(e) => {
                    let log = std::fs::read_to_string(self.log_path()).unwrap_or_default();
                    let new_lines = log.get(log_len as usize..).unwrap_or(&log);
                    let port_taken = new_lines.contains("could not bind")
                        || new_lines.contains("Address already in use");
                    last = Some(self.with_log(e));
                    if !port_taken {
                        break;
                    }
                    if !new_port {
                        // Same port wanted (a restart): give the other holder a moment.
                        std::thread::sleep(Duration::from_millis(200 * (attempt as u64 + 1)));
                    }
                }
            }
        }
        Err(last.unwrap_or_else(|| PgError::Timeout("pg_ctl start".into())))
    }
}

impl Drop for TempPostgres {
    fn drop(&mut self) {
        if self.frozen {
            let _ = self.thaw();
        }
        if self.running || postmaster_pid(&self.data_dir()).is_some() {
            let _ = self
                .bin
                .server_command("pg_ctl")
                .current_dir(self.dir.path())
                .args(["stop", "-w", "-t", "30", "-m", "immediate", "-D"])
                .arg(self.data_dir())
                .output();
        }
    }
}

/// A port that was free a moment ago (the kernel's choice for port 0).
fn free_port() -> Result<u16, PgError> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(PgError::io("find a free port"))
}

fn wait_for(
    limit: Duration,
    what: &str,
    mut done: impl FnMut() -> Result<bool, PgError>,
) -> Result<(), PgError> {
    let deadline = Instant::now() + limit;
    loop {
        let last = done();
        if matches!(last, Ok(true)) {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(PgError::Timeout(format!("{what} (last check: {last:?})")));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
