//! `keyfence bench`: a load generator that drives a running node (or a peer that
//! speaks the AWS KMS JSON API) over the real wire — TLS or plain HTTP, HTTP/1.1
//! keep-alive or HTTP/2, every request SigV4-signed — and reports throughput,
//! latency percentiles (HDR histogram), errors by type and the node's memory.
//!
//! The `keyfence` binary runs it as `keyfence bench` ([`main`]); its HTTP client
//! ([`client`], [`connect`]) also serves `keyfence key`. Every request is signed by
//! the node's own SigV4 signer, [`keyfence_server::sigv4::Signer`].

#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod client;
pub mod connect;
pub mod handshakes;
pub mod report;
pub mod runner;
pub mod workload;

use std::collections::BTreeMap;
use std::io::IsTerminal as _;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use keyfence_server::tls::ClientGroups;

use client::{ClientContext, HttpVersion};
use connect::{ConnectArgs, Resolved};
use report::{Memory, Outcome, Report, Setup};
use runner::{Pacing, Plan};
use workload::{KmsWorker, SetupError, WorkloadKind, WorkloadOptions};

/// Arguments of `keyfence bench`.
#[derive(Args, Debug, Clone)]
pub struct BenchArgs {
    /// The node (or a plain-HTTP peer such as moto: http://host:port) and how to sign.
    #[command(flatten)]
    pub connect: ConnectArgs,
    /// What to send.
    #[arg(long, value_enum, default_value = "encrypt")]
    pub workload: WorkloadKind,
    /// Plaintext (encrypt, decrypt, mixed) or message (sign) size in bytes.
    #[arg(long, default_value_t = 256)]
    pub payload_size: usize,
    /// Concurrent TCP connections.
    #[arg(long, default_value_t = 32)]
    pub connections: usize,
    /// With --http2: concurrent streams per connection.
    #[arg(long, default_value_t = 4)]
    pub streams: usize,
    /// How long to measure (e.g. 10s, 500ms, 1m); for handshakes, per group.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub duration: Duration,
    /// Unmeasured warm-up before the measurement, on the same connections.
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    pub warmup: Duration,
    /// Open loop: this many requests per second in total, on a fixed schedule;
    /// latency counts from each request's intended send time. Without it: closed loop.
    #[arg(long)]
    pub rate: Option<f64>,
    /// HTTP/2 (ALPN h2) with --streams streams per connection, instead of HTTP/1.1 keep-alive.
    #[arg(long)]
    pub http2: bool,
    /// Offer only the hybrid X25519MLKEM768 group (as a strict client would).
    #[arg(long)]
    pub post_quantum: bool,
    /// For handshakes: resume every connection with a session ticket (each worker
    /// keeps its own session cache) instead of running full handshakes.
    #[arg(long)]
    pub resume: bool,
    /// Key spec for the sign workload.
    #[arg(long, default_value = "ECC_NIST_P256")]
    pub key_spec: String,
    /// Signing algorithm for the sign workload [default: the usual one for the key spec].
    #[arg(long)]
    pub signing_algorithm: Option<String>,
    /// Use this existing key instead of creating one.
    #[arg(long)]
    pub key_id: Option<String>,
    /// Create the key geo-fenced to this policy (the keyfence:fence tag), e.g.
    /// 'region: EU'. With --key-id, a key made fenced elsewhere can be measured
    /// at a node outside its fence (every request forwarded).
    #[arg(long, conflicts_with = "key_id")]
    pub fence: Option<String>,
    /// Keep the key this run creates (no ScheduleKeyDeletion at the end), to
    /// measure it again with --key-id (e.g. at another node).
    #[arg(long, conflicts_with = "key_id")]
    pub keep_key: bool,
    /// The node's Prometheus endpoint, for its resident memory before and after;
    /// "none" to skip [default: the metrics address the node published in
    /// DATA_DIR/node.addr.json].
    #[arg(long)]
    pub metrics: Option<String>,
    /// The node's process id, if local: its CPU time during the run is reported
    /// (/proc/PID/stat), and its resident memory (VmRSS) when --metrics is none.
    #[arg(long)]
    pub pid: Option<u32>,
    /// Load-generator worker threads [default: number of CPUs].
    #[arg(long)]
    pub threads: Option<usize>,
    /// A request with no answer after this long counts as a Timeout error.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub request_timeout: Duration,
    /// Print the result as one JSON object on stdout.
    #[arg(long)]
    pub json: bool,
}

/// Parses `10s`, `500ms`, `2m`, `1.5s`, or a bare number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = match s.find(|c: char| c.is_ascii_alphabetic()) {
        Some(i) => s.split_at(i),
        None => (s, "s"),
    };
    let n: f64 = num
        .trim()
        .parse()
        .map_err(|_| format!("invalid duration {s:?} (e.g. 10s, 500ms, 1m)"))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" | "min" => n * 60.0,
        _ => return Err(format!("invalid duration unit in {s:?} (ms, s or m)")),
    };
    if !(0.0..=86_400.0).contains(&secs) {
        return Err(format!("duration {s:?} out of range"));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// The command line as typed, quoted where a shell would need it.
pub fn command_line() -> String {
    std::env::args()
        .map(|a| {
            if !a.is_empty()
                && a.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_./:=,@+%".contains(c))
            {
                a
            } else {
                format!("'{}'", a.replace('\'', r"'\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Entry point of the subcommand: runs the benchmark on its own runtime and prints
/// the result.
pub fn main(args: BenchArgs) -> Result<(), String> {
    let threads = args.threads.unwrap_or_else(default_threads).max(1);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let json = args.json;
    let report = rt.block_on(run(args, command_line(), true))?;
    if json {
        println!("{}", report.to_json());
    } else {
        print!("{}", report.to_text());
    }
    match &report.outcome {
        Outcome::Unsupported {
            operation, code, ..
        } => Err(format!(
            "{} workload not supported by the node ({operation}: {code})",
            report.setup.workload
        )),
        _ => Ok(()),
    }
}

fn default_threads() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2)
}

/// The metrics URL to read the node's memory from: `--metrics`, else the address the
/// node published in its data directory ([`keyfence_server::node::ADDR_FILE`]), else
/// `"none"`.
fn metrics_url(flag: Option<&str>, data_dir: Option<&Path>) -> String {
    if let Some(url) = flag {
        return url.to_owned();
    }
    data_dir
        .and_then(|d| std::fs::read(d.join(keyfence_server::node::ADDR_FILE)).ok())
        .and_then(|bytes| serde_json::from_slice::<serde_json::Value>(&bytes).ok())
        .and_then(|v| v["metrics"].as_str().map(|addr| format!("http://{addr}")))
        .unwrap_or_else(|| "none".to_owned())
}

/// Fails fast when nothing accepts connections at `endpoint`, instead of counting
/// connect errors for the whole run.
async fn probe(endpoint: &client::Endpoint) -> Result<(), String> {
    const PROBE_TIMEOUT: Duration = Duration::from_secs(5);
    let connect = tokio::net::TcpStream::connect(endpoint.addr);
    match tokio::time::timeout(PROBE_TIMEOUT, connect).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => Err(format!(
            "connection refused at {}: is the node running there?",
            endpoint.url()
        )),
        Ok(Err(e)) => Err(format!("cannot connect to {}: {e}", endpoint.url())),
        Err(_) => Err(format!(
            "cannot connect to {}: no answer within {PROBE_TIMEOUT:?}",
            endpoint.url()
        )),
    }
}

async fn read_memory(args: &BenchArgs) -> Option<(String, Result<u64, String>)> {
    let metrics = args.metrics.as_deref().unwrap_or("none");
    if metrics == "none" {
        return args.pid.map(|pid| {
            (
                format!("VmRSS of pid {pid}"),
                client::process_resident_memory(pid),
            )
        });
    }
    Some((
        format!("process_resident_memory_bytes from {metrics}"),
        client::resident_memory(metrics).await,
    ))
}

/// CPU time so far of this process and of the node (`--pid`).
struct CpuMark {
    client: Option<Duration>,
    node: Option<Duration>,
}

impl CpuMark {
    fn now(args: &BenchArgs) -> Self {
        Self {
            client: client::process_cpu_time("self").ok(),
            node: args
                .pid
                .and_then(|p| client::process_cpu_time(&p.to_string()).ok()),
        }
    }

    fn since(&self, args: &BenchArgs) -> Option<report::Cpu> {
        let now = Self::now(args);
        Some(report::Cpu {
            client: now.client?.saturating_sub(self.client?),
            node: match (now.node, self.node) {
                (Some(a), Some(b)) => Some(a.saturating_sub(b)),
                _ => None,
            },
            cpus: default_threads(),
        })
    }
}

/// A progress bar on stderr when it is a terminal, hidden otherwise.
fn progress_bar(total: Duration, show: bool) -> ProgressBar {
    if !show || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(total.as_millis() as u64);
    bar.set_style(
        ProgressStyle::with_template("{spinner} [{elapsed_precise}] {wide_bar} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar
}

/// Moves the bar with time and shows the request count, until dropped.
struct Ticker {
    task: tokio::task::JoinHandle<()>,
    bar: ProgressBar,
}

impl Ticker {
    fn start(bar: ProgressBar, phase: &'static str, count: Arc<AtomicU64>, base_ms: u64) -> Self {
        let b = bar.clone();
        let task = tokio::spawn(async move {
            let start = tokio::time::Instant::now();
            let mut tick = tokio::time::interval(Duration::from_millis(200));
            loop {
                tick.tick().await;
                let ms = start.elapsed().as_millis() as u64;
                let n = count.load(Ordering::Relaxed);
                b.set_position(base_ms + ms);
                b.set_message(format!(
                    "{phase}: {n} done, {:.0}/s",
                    n as f64 * 1000.0 / ms.max(1) as f64
                ));
            }
        });
        Self { task, bar }
    }
}

impl Drop for Ticker {
    fn drop(&mut self) {
        self.task.abort();
        let _ = &self.bar;
    }
}

/// Runs one benchmark and gives its report. `show_progress` allows the progress
/// bar (it is still hidden unless stderr is a terminal).
pub async fn run(
    mut args: BenchArgs,
    command: String,
    show_progress: bool,
) -> Result<Report, String> {
    if args.connections == 0 || args.streams == 0 {
        return Err("--connections and --streams must be at least 1".into());
    }
    if let Some(r) = args.rate {
        if !(r.is_finite() && r > 0.0) {
            return Err("--rate must be a positive number of requests per second".into());
        }
    }
    if args.duration.is_zero() {
        return Err("--duration must be positive".into());
    }
    let resolved = args.connect.resolve()?;
    probe(&resolved.endpoint).await?;
    args.metrics = Some(metrics_url(
        args.metrics.as_deref(),
        resolved.data_dir.as_deref(),
    ));
    let version = if args.http2 {
        HttpVersion::Http2
    } else {
        HttpVersion::Http1
    };
    let groups = if args.post_quantum {
        ClientGroups::HybridOnly
    } else {
        ClientGroups::Default
    };
    let streams = if args.http2 { args.streams } else { 1 };
    let mut setup = Setup {
        command,
        workload: args.workload.name(),
        endpoint: resolved.endpoint.url(),
        transport: match (resolved.endpoint.tls, args.post_quantum) {
            (false, _) => "plain HTTP".into(),
            (true, false) => "TLS 1.3, client offers X25519MLKEM768 then X25519".into(),
            (true, true) => "TLS 1.3, client offers X25519MLKEM768 only".into(),
        },
        http: match version {
            HttpVersion::Http1 => "HTTP/1.1 keep-alive",
            HttpVersion::Http2 => "HTTP/2",
        },
        connections: args.connections,
        streams,
        duration: args.duration,
        warmup: args.warmup,
        rate: args.rate,
        client_threads: tokio::runtime::Handle::current().metrics().num_workers(),
        started_unix: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
        ..Setup::default()
    };

    if args.workload == WorkloadKind::Handshakes {
        return run_handshakes(&args, &resolved, setup, show_progress).await;
    }

    let ctx = ClientContext::new(
        resolved.endpoint.clone(),
        resolved.ca.as_deref(),
        groups,
        resolved.credential.clone(),
        version,
    )?;
    let mut control = ctx
        .connect()
        .await
        .map_err(|e| format!("cannot connect to {}: {e}", setup.endpoint))?;
    let opts = WorkloadOptions {
        kind: args.workload,
        payload_size: args.payload_size,
        key_spec: args.key_spec.clone(),
        signing_algorithm: args.signing_algorithm.clone(),
        key_id: args.key_id.clone(),
        fence: args.fence.clone(),
    };
    if args.workload != WorkloadKind::GenerateDataKey {
        setup.payload_size = Some(args.payload_size);
    }
    setup.key_spec = Some(if args.workload == WorkloadKind::Sign {
        args.key_spec.clone()
    } else {
        "SYMMETRIC_DEFAULT".into()
    });
    let prepared = match workload::prepare(&mut control, &opts).await {
        Ok(p) => p,
        Err(SetupError::Unsupported {
            operation,
            code,
            message,
        }) => {
            return Ok(Report {
                setup,
                outcome: Outcome::Unsupported {
                    operation: operation.into(),
                    code,
                    message,
                },
                memory: None,
                cpu: None,
                reconnects: 0,
            })
        }
        Err(SetupError::Failed(e)) => return Err(e),
    };
    setup.key_id = Some(prepared.key_id.clone());
    setup.key_spec = Some(prepared.key_spec.clone());
    setup.signing_algorithm = prepared.signing_algorithm.clone();

    let operations = Arc::new(prepared.operations.clone());
    if args.workload == WorkloadKind::IdleConnections {
        let report = run_idle(&args, &ctx, operations, setup).await;
        if !args.keep_key {
            let _ = workload::cleanup(&mut control, &prepared).await;
        }
        return report;
    }
    // Every connection is open before anything is measured.
    let mut workers = Vec::with_capacity(args.connections * streams);
    for _ in 0..args.connections {
        let conn = ctx
            .connect()
            .await
            .map_err(|e| format!("cannot connect to {}: {e}", setup.endpoint))?;
        for _ in 1..streams {
            if let Some(s) = conn.stream() {
                workers.push(KmsWorker::new(s, Arc::clone(&operations)));
            }
        }
        workers.push(KmsWorker::new(conn, Arc::clone(&operations)));
    }

    let pacing = match args.rate {
        Some(rate) => Pacing::Open { rate },
        None => Pacing::Closed,
    };
    let mut plan = Plan {
        pacing,
        duration: args.warmup,
        pattern: prepared.pattern.clone(),
        kinds: prepared.operations.len(),
        request_timeout: args.request_timeout,
        drain: args.duration.max(Duration::from_secs(5)),
    };
    let bar = progress_bar(args.warmup + args.duration, show_progress);
    let before = read_memory(&args).await;
    if !args.warmup.is_zero() {
        let count = Arc::new(AtomicU64::new(0));
        let _ticker = Ticker::start(bar.clone(), "warm-up", Arc::clone(&count), 0);
        workers = runner::run(workers, &plan, count).await.0;
    }
    plan.duration = args.duration;
    let count = Arc::new(AtomicU64::new(0));
    let ticker = Ticker::start(
        bar.clone(),
        "measuring",
        Arc::clone(&count),
        args.warmup.as_millis() as u64,
    );
    let mark = CpuMark::now(&args);
    let reconnects0 = ctx.reconnects.load(Ordering::Relaxed);
    let (workers, stats) = runner::run(workers, &plan, count).await;
    let cpu = mark.since(&args);
    let reconnects = ctx.reconnects.load(Ordering::Relaxed) - reconnects0;
    drop(ticker);
    bar.finish_and_clear();
    drop(workers);
    let after = read_memory(&args).await;
    let memory = before.map(|(source, before)| Memory {
        source,
        before,
        after: after.map(|a| a.1).unwrap_or(Err("not read".into())),
    });
    let cleanup = async {
        if args.keep_key {
            return Ok(());
        }
        workload::cleanup(&mut control, &prepared).await
    };
    if let Err(e) = cleanup.await {
        // Best effort: some peers (moto) fail this; the key is then left behind.
        tracing::debug!(key = %prepared.key_id, error = %e, "could not schedule deletion of the benchmark key");
    }
    Ok(Report {
        setup,
        outcome: Outcome::Load {
            stats,
            operations: prepared.operations.iter().map(|o| o.label).collect(),
        },
        memory,
        cpu,
        reconnects,
    })
}

/// The idle-connections workload: the node's memory before, and with every
/// connection open and idle for `--duration`.
async fn run_idle(
    args: &BenchArgs,
    ctx: &ClientContext,
    operations: Arc<Vec<workload::Operation>>,
    mut setup: Setup,
) -> Result<Report, String> {
    /// Connections being opened at once.
    const OPENING: usize = 64;
    setup.warmup = Duration::ZERO;
    setup.rate = None;
    let before = read_memory(args).await;
    let started = std::time::Instant::now();
    let gate = Arc::new(tokio::sync::Semaphore::new(OPENING));
    let mut opening = tokio::task::JoinSet::new();
    for _ in 0..args.connections {
        let (ctx, operations, gate) = (ctx.clone(), Arc::clone(&operations), Arc::clone(&gate));
        opening.spawn(async move {
            let _permit = gate.acquire_owned().await.map_err(|e| e.to_string())?;
            let conn = ctx.connect().await.map_err(|e| e.kind().to_string())?;
            let mut worker = KmsWorker::new(conn, operations);
            runner::Worker::call(&mut worker, 0).await?;
            Ok::<_, String>(worker)
        });
    }
    let (mut held, mut errors) = (Vec::with_capacity(args.connections), BTreeMap::new());
    while let Some(joined) = opening.join_next().await {
        match joined {
            Ok(Ok(worker)) => held.push(worker),
            Ok(Err(kind)) => *errors.entry(kind).or_default() += 1,
            Err(e) => *errors.entry(format!("WorkerPanic: {e}")).or_default() += 1,
        }
    }
    let opening = started.elapsed();
    tokio::time::sleep(args.duration).await;
    let after = read_memory(args).await;
    let open = held.len();
    drop(held);
    let memory = before.map(|(source, before)| Memory {
        source,
        before,
        after: after.map(|a| a.1).unwrap_or(Err("not read".into())),
    });
    Ok(Report {
        setup,
        outcome: Outcome::Idle {
            open,
            errors,
            opening,
        },
        memory,
        cpu: None,
        reconnects: 0,
    })
}

async fn run_handshakes(
    args: &BenchArgs,
    resolved: &Resolved,
    mut setup: Setup,
    show_progress: bool,
) -> Result<Report, String> {
    let ca: &Path = match (&resolved.ca, resolved.endpoint.tls) {
        (Some(ca), true) => ca,
        _ => return Err("the handshakes workload needs an https endpoint and its CA".into()),
    };
    setup.http = "no requests";
    let kind = if args.resume {
        setup.transport = "TLS 1.3, one group offered at a time, sessions resumed".into();
        handshakes::Kind::Resumed
    } else {
        setup.transport = "TLS 1.3, one group offered at a time".into();
        handshakes::Kind::Full
    };
    setup.warmup = Duration::ZERO;
    setup.rate = None;
    let name = client::server_name(&resolved.endpoint.host).map_err(|e| e.to_string())?;
    let default_client_hello = handshakes::client_hello_size(
        handshakes::handshake_config(ca, ClientGroups::Default)?,
        name,
    )?;
    let bar = progress_bar(args.duration * 2, show_progress);
    let before = read_memory(args).await;
    let count = Arc::new(AtomicU64::new(0));
    let ticker = Ticker::start(bar.clone(), "handshakes", Arc::clone(&count), 0);
    let mark = CpuMark::now(args);
    let groups = handshakes::run(
        &resolved.endpoint,
        ca,
        kind,
        args.connections,
        args.duration,
        args.pid,
        count,
    )
    .await?;
    let cpu = mark.since(args);
    drop(ticker);
    bar.finish_and_clear();
    let after = read_memory(args).await;
    let memory = before.map(|(source, before)| Memory {
        source,
        before,
        after: after.map(|a| a.1).unwrap_or(Err("not read".into())),
    });
    Ok(Report {
        setup,
        outcome: Outcome::Handshakes {
            groups,
            default_client_hello,
        },
        memory,
        cpu,
        reconnects: 0,
    })
}

#[cfg(test)]
mod tests;
