//! The harness's error type.

/// Why a [`TempPostgres`](crate::TempPostgres) or
/// [`KeyfenceNode`](crate::KeyfenceNode) operation failed.
#[derive(Debug, thiserror::Error)]
pub enum PgError {
    /// The PostgreSQL server programs are not installed.
    #[error(
        "PostgreSQL server programs not found ({0}): run scripts/setup-postgres.sh \
         (installs Debian's postgresql package) or set KEYFENCE_PG_BIN to the directory \
         holding initdb and pg_ctl"
    )]
    NotInstalled(String),
    /// A file-system or process operation failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A PostgreSQL program exited unsuccessfully.
    #[error("{what} failed: {output}")]
    Command {
        /// The command.
        what: String,
        /// Its exit status, standard error and output (and the server log when relevant).
        output: String,
    },
    /// A throw-away certificate could not be made.
    #[error("certificate: {0}")]
    Certificate(String),
    /// Something did not happen in time.
    #[error("timed out: {0}")]
    Timeout(String),
}

impl PgError {
    pub(crate) fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> Self {
        let what = what.into();
        move |source| Self::Io { what, source }
    }
}
