//! `temp-postgres`: a throw-away PostgreSQL server for test suites outside
//! Rust (the Python end-to-end suite with `KEYFENCE_E2E_STORE=postgres`).
//!
//! Starts a [`TempPostgres`] and prints `ready`. Then, for each line read on
//! stdin, creates a database of that name and prints its `postgres://` URL on
//! one line. When stdin closes, the server is stopped and its directory removed.

use std::io::{BufRead, Write};
use std::process::ExitCode;

use keyfence_testkit::TempPostgres;

fn main() -> ExitCode {
    let pg = match TempPostgres::new() {
        Ok(pg) => pg,
        Err(e) => {
            eprintln!("temp-postgres: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut out = std::io::stdout().lock();
    if writeln!(out, "ready").and_then(|()| out.flush()).is_err() {
        return ExitCode::FAILURE;
    }
    for line in std::io::stdin().lock().lines() {
        let Ok(name) = line else { break };
        let name = name.trim();
        let valid = !name.is_empty()
            && name
                .bytes()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'_');
        let reply = if !valid {
            format!("error: database names are [a-z0-9_]+, not {name:?}")
        } else {
            match pg.create_database(name) {
                Ok(()) => pg.url_for(name),
                Err(e) => format!("error: {e}"),
            }
        };
        if writeln!(out, "{reply}").and_then(|()| out.flush()).is_err() {
            break;
        }
    }
    ExitCode::SUCCESS
}
