//! Finding the PostgreSQL server programs and running them as a user that
//! PostgreSQL accepts.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::PgError;

/// The directory of the server programs and the OS user to run them as.
#[derive(Debug, Clone)]
pub(crate) struct PgBin {
    dir: PathBuf,
    /// `Some((uid, gid))` of the `postgres` user when we run as root.
    run_as: Option<(u32, u32)>,
}

impl PgBin {
    /// Finds the programs (see the crate documentation for where).
    pub(crate) fn find() -> Result<Self, PgError> {
        let dir = find_dir()?;
        let euid = std::fs::metadata("/proc/self")
            .map_err(PgError::io("stat /proc/self"))?
            .uid();
        let run_as = if euid == 0 {
            Some(postgres_user()?)
        } else {
            None
        };
        Ok(Self { dir, run_as })
    }

    /// `(uid, gid)` that must own the server's directories, if not ours.
    pub(crate) fn owner(&self) -> Option<(u32, u32)> {
        self.run_as
    }

    /// A command running server program `name` (initdb, pg_ctl, …) as the right user.
    pub(crate) fn server_command(&self, name: &str) -> Command {
        let program = self.dir.join(name);
        match self.run_as {
            Some(_) => {
                let mut c = Command::new("runuser");
                c.args(["-u", "postgres", "--"]).arg(program);
                c
            }
            None => Command::new(program),
        }
    }

    /// A command running client program `name` (psql) as ourselves.
    pub(crate) fn client_command(&self, name: &str) -> Command {
        Command::new(self.dir.join(name))
    }
}

fn has_server(dir: &Path) -> bool {
    dir.join("initdb").is_file() && dir.join("pg_ctl").is_file()
}

fn find_dir() -> Result<PathBuf, PgError> {
    if let Some(dir) = std::env::var_os("KEYFENCE_PG_BIN") {
        let dir = PathBuf::from(dir);
        return if has_server(&dir) {
            Ok(dir)
        } else {
            Err(PgError::NotInstalled(format!(
                "KEYFENCE_PG_BIN={} holds no initdb/pg_ctl",
                dir.display()
            )))
        };
    }
    // Debian: /usr/lib/postgresql/<major>/bin, newest major first.
    let mut debian: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let major = e.file_name().to_str()?.parse().ok()?;
            Some((major, e.path().join("bin")))
        })
        .filter(|(_, dir)| has_server(dir))
        .collect();
    debian.sort();
    if let Some((_, dir)) = debian.pop() {
        return Ok(dir);
    }
    let on_path = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default();
    for dir in on_path {
        if has_server(&dir) {
            let initdb =
                std::fs::canonicalize(dir.join("initdb")).map_err(PgError::io("resolve initdb"))?;
            if let Some(real) = initdb.parent().filter(|d| has_server(d)) {
                return Ok(real.to_path_buf());
            }
            return Ok(dir);
        }
    }
    Err(PgError::NotInstalled(
        "no initdb/pg_ctl in /usr/lib/postgresql/*/bin or on PATH".into(),
    ))
}

/// The `postgres` OS user's `(uid, gid)`.
fn postgres_user() -> Result<(u32, u32), PgError> {
    let id = |flag: &str| -> Result<u32, PgError> {
        let out = Command::new("id")
            .args([flag, "postgres"])
            .output()
            .map_err(PgError::io("run id"))?;
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .map_err(|_| {
                PgError::NotInstalled(
                    "running as root, and there is no `postgres` OS user to run the server as"
                        .into(),
                )
            })
    };
    Ok((id("-u")?, id("-g")?))
}
