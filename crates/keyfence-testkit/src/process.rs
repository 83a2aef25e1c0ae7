//! Running commands and killing a server's processes.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::PgError;

/// Runs `cmd` to completion; an unsuccessful exit is an error carrying its output.
pub(crate) fn run(what: &str, cmd: &mut Command) -> Result<String, PgError> {
    let out = cmd.output().map_err(PgError::io(format!("start {what}")))?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if out.status.success() {
        Ok(stdout)
    } else {
        Err(PgError::Command {
            what: what.to_string(),
            output: format!(
                "{}; stderr: {}; stdout: {stdout}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        })
    }
}

/// The postmaster's pid, from the first line of `postmaster.pid` in `data`.
pub(crate) fn postmaster_pid(data: &Path) -> Option<u32> {
    std::fs::read_to_string(data.join("postmaster.pid"))
        .ok()?
        .lines()
        .next()?
        .trim()
        .parse()
        .ok()
}

/// `(parent pid, state)` of a live process, `None` once it is gone or a zombie.
fn stat(pid: u32) -> Option<(u32, char)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // "pid (comm) state ppid …": comm may hold spaces, so split after the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let ppid = fields.next()?.parse().ok()?;
    (state != 'Z' && state != 'X').then_some((ppid, state))
}

fn children(parent: u32) -> Vec<u32> {
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| stat(pid).is_some_and(|(ppid, _)| ppid == parent))
        .collect()
}

/// Sends `signal` (`STOP`, `CONT`) to the postmaster `pid` and every
/// process it started.
pub(crate) fn signal_all(pid: u32, signal: &str) -> Result<(), PgError> {
    let mut targets = vec![pid];
    targets.extend(children(pid));
    run(
        &format!("kill -{signal}"),
        Command::new("kill")
            .arg(format!("-{signal}"))
            .args(targets.iter().map(u32::to_string)),
    )
    .map(drop)
}

/// SIGKILLs the postmaster `pid` and every process it started (backends,
/// checkpointer, WAL writer, …) at once, as a crash of the machine's database
/// would end them, and waits until all are gone so that the data directory can
/// be started again.
pub(crate) fn kill9_all(pid: u32) -> Result<(), PgError> {
    let mut victims = vec![pid];
    victims.extend(children(pid));
    let mut cmd = Command::new("kill");
    cmd.arg("-KILL");
    cmd.args(victims.iter().map(u32::to_string));
    // A process may exit by itself between listing and killing: not an error.
    let _ = cmd.output().map_err(PgError::io("run kill"))?;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        // Gone means reaped, not merely a zombie: PostgreSQL's lock-file check
        // sees a zombie postmaster as alive, and init here reaps lazily.
        let alive: Vec<u32> = victims
            .iter()
            .copied()
            .filter(|p| Path::new(&format!("/proc/{p}")).exists())
            .collect();
        if alive.is_empty() {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(PgError::Timeout(format!(
                "processes {alive:?} still alive after SIGKILL"
            )));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
