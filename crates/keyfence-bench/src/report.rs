//! What a run reports, for people (text) and machines (`--json`).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde_json::{json, Map, Value};

use super::handshakes::GroupResult;
use super::runner::Stats;

/// How the run was set up: enough to reproduce it.
#[derive(Debug, Clone)]
pub struct Setup {
    /// The exact command line.
    pub command: String,
    /// Workload name.
    pub workload: &'static str,
    /// Endpoint URL.
    pub endpoint: String,
    /// `TLS 1.3, groups …` or `plain HTTP`.
    pub transport: String,
    /// `HTTP/1.1 keep-alive` or `HTTP/2`.
    pub http: &'static str,
    /// TCP connections.
    pub connections: usize,
    /// Concurrent requests per connection (1 for HTTP/1.1).
    pub streams: usize,
    /// Measured duration (per group for `handshakes`).
    pub duration: Duration,
    /// Unmeasured warm-up before it.
    pub warmup: Duration,
    /// Open-loop rate; `None` for closed loop.
    pub rate: Option<f64>,
    /// Payload size in bytes (plaintext / message), if the workload has one.
    pub payload_size: Option<usize>,
    /// Key spec of the key used.
    pub key_spec: Option<String>,
    /// Signing algorithm (`sign`).
    pub signing_algorithm: Option<String>,
    /// Key used.
    pub key_id: Option<String>,
    /// Load-generator worker threads.
    pub client_threads: usize,
    /// Start, seconds since the Unix epoch.
    pub started_unix: u64,
}

impl Setup {
    /// `closed loop` or `open loop at R req/s`.
    pub fn mode(&self) -> String {
        match self.rate {
            None => "closed loop (each connection sends back to back)".into(),
            Some(r) => format!("open loop at {r} req/s (latency from intended send time)"),
        }
    }
}

/// The node's resident memory around the run.
#[derive(Debug, Clone)]
pub struct Memory {
    /// Where it was read.
    pub source: String,
    /// Before the warm-up.
    pub before: Result<u64, String>,
    /// After the measured run.
    pub after: Result<u64, String>,
}

/// CPU time used during the measured run, by the load generator and (with `--pid`)
/// by the node: robust against other load on the machine, unlike ops/s.
#[derive(Debug, Clone)]
pub struct Cpu {
    /// Load generator (this process), measured run only.
    pub client: Duration,
    /// The node (`--pid`), measured run only.
    pub node: Option<Duration>,
    /// Logical CPUs of this machine.
    pub cpus: usize,
}

impl Default for Setup {
    fn default() -> Self {
        Self {
            command: String::new(),
            workload: "",
            endpoint: String::new(),
            transport: String::new(),
            http: "",
            connections: 0,
            streams: 1,
            duration: Duration::ZERO,
            warmup: Duration::ZERO,
            rate: None,
            payload_size: None,
            key_spec: None,
            signing_algorithm: None,
            key_id: None,
            client_threads: 0,
            started_unix: 0,
        }
    }
}

/// What was measured.
pub enum Outcome {
    /// A request workload.
    Load {
        /// The figures.
        stats: Stats,
        /// Operation name per kind.
        operations: Vec<&'static str>,
    },
    /// The handshakes workload.
    Handshakes {
        /// Classical then hybrid.
        groups: Vec<GroupResult>,
        /// ClientHello of the default client (hybrid and classical shares), bytes.
        default_client_hello: usize,
    },
    /// The idle-connections workload.
    Idle {
        /// Connections open (each answered one Encrypt) while the memory was read.
        open: usize,
        /// Connections that failed to open or to answer, by error type.
        errors: BTreeMap<String, u64>,
        /// Time to open them all.
        opening: Duration,
    },
    /// The node refused what the workload needs.
    Unsupported {
        /// Operation refused.
        operation: String,
        /// AWS error type.
        code: String,
        /// The node's message.
        message: String,
    },
}

/// A complete result.
pub struct Report {
    /// Setup.
    pub setup: Setup,
    /// Figures.
    pub outcome: Outcome,
    /// Node memory.
    pub memory: Option<Memory>,
    /// CPU time used.
    pub cpu: Option<Cpu>,
    /// Connections the server closed and the client reopened, measured run.
    pub reconnects: u64,
}

fn latency_json(h: &Histogram<u64>) -> Value {
    if h.is_empty() {
        return Value::Null;
    }
    json!({
        "min": h.min(),
        "mean": (h.mean() * 10.0).round() / 10.0,
        "p50": h.value_at_quantile(0.50),
        "p90": h.value_at_quantile(0.90),
        "p99": h.value_at_quantile(0.99),
        "p99_9": h.value_at_quantile(0.999),
        "max": h.max(),
    })
}

fn us(v: u64) -> String {
    if v >= 1_000_000 {
        format!("{:.2} s", v as f64 / 1e6)
    } else if v >= 1_000 {
        format!("{:.2} ms", v as f64 / 1e3)
    } else {
        format!("{v} µs")
    }
}

fn latency_text(h: &Histogram<u64>) -> String {
    if h.is_empty() {
        return "no successful request".into();
    }
    format!(
        "p50 {}  p90 {}  p99 {}  p99.9 {}  max {}  (mean {})",
        us(h.value_at_quantile(0.50)),
        us(h.value_at_quantile(0.90)),
        us(h.value_at_quantile(0.99)),
        us(h.value_at_quantile(0.999)),
        us(h.max()),
        us(h.mean().round() as u64),
    )
}

fn mib(b: u64) -> String {
    format!("{:.1} MiB", b as f64 / (1024.0 * 1024.0))
}

fn errors_json(e: &BTreeMap<String, u64>) -> Value {
    Value::Object(
        e.iter()
            .map(|(k, v)| (k.clone(), json!(v)))
            .collect::<Map<_, _>>(),
    )
}

fn errors_text(e: &BTreeMap<String, u64>) -> String {
    if e.is_empty() {
        "none".into()
    } else {
        e.iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

impl Report {
    /// Hybrid rate ÷ classical rate, for `handshakes`.
    pub fn handshake_ratio(&self) -> Option<f64> {
        match &self.outcome {
            Outcome::Handshakes { groups, .. } if groups.len() == 2 && groups[0].rate() > 0.0 => {
                Some(groups[1].rate() / groups[0].rate())
            }
            _ => None,
        }
    }

    /// Requests (or handshakes) completed in the measured run, for per-op figures.
    pub fn completed(&self) -> Option<u64> {
        match &self.outcome {
            Outcome::Load { stats, .. } => Some(stats.ok() + stats.failed()),
            Outcome::Handshakes { groups, .. } => Some(groups.iter().map(|g| g.handshakes).sum()),
            Outcome::Idle { open, .. } => Some(*open as u64),
            Outcome::Unsupported { .. } => None,
        }
    }

    /// The rate this machine's CPUs would sustain if node and load generator had
    /// them to themselves: CPUs ÷ (node + client CPU time per operation).
    pub fn cpu_bound_estimate(&self) -> Option<f64> {
        let c = self.cpu.as_ref()?;
        let per = (c.client + c.node?).as_secs_f64() / self.completed()?.max(1) as f64;
        (per > 0.0).then(|| c.cpus as f64 / per)
    }

    /// The machine-readable form.
    pub fn to_json(&self) -> Value {
        let s = &self.setup;
        let mut v = json!({
            "command": s.command,
            "workload": s.workload,
            "endpoint": s.endpoint,
            "transport": s.transport,
            "http": s.http,
            "connections": s.connections,
            "streams_per_connection": s.streams,
            "duration_s": s.duration.as_secs_f64(),
            "warmup_s": s.warmup.as_secs_f64(),
            "mode": if s.rate.is_some() { "open" } else { "closed" },
            "rate": s.rate,
            "payload_size": s.payload_size,
            "key_spec": s.key_spec,
            "signing_algorithm": s.signing_algorithm,
            "key_id": s.key_id,
            "client_threads": s.client_threads,
            "started_unix": s.started_unix,
        });
        let o = v.as_object_mut().expect("object");
        match &self.outcome {
            Outcome::Load { stats, operations } => {
                o.insert("status".into(), json!("ok"));
                o.insert("ok".into(), json!(stats.ok()));
                o.insert("errors".into(), json!(stats.failed()));
                o.insert("errors_by_type".into(), errors_json(&stats.errors));
                o.insert("elapsed_s".into(), json!(stats.elapsed.as_secs_f64()));
                o.insert("reconnects".into(), json!(self.reconnects));
                o.insert("ops_per_s".into(), json!(round2(stats.throughput())));
                o.insert("latency_us".into(), latency_json(&stats.latency));
                if s.rate.is_some() {
                    o.insert("scheduled".into(), json!(stats.scheduled));
                    o.insert("missed".into(), json!(stats.missed));
                }
                let per: Vec<Value> = operations
                    .iter()
                    .enumerate()
                    .map(|(i, name)| {
                        json!({
                            "operation": name,
                            "ok": stats.ok_per_kind[i],
                            "latency_us": latency_json(&stats.per_kind[i]),
                        })
                    })
                    .collect();
                o.insert("operations".into(), Value::Array(per));
            }
            Outcome::Handshakes {
                groups,
                default_client_hello,
            } => {
                o.insert("status".into(), json!("ok"));
                let g: Vec<Value> = groups
                    .iter()
                    .map(|g| {
                        json!({
                            "group": g.group,
                            "handshakes": g.handshakes,
                            "elapsed_s": g.elapsed.as_secs_f64(),
                            "handshakes_per_s": round2(g.rate()),
                            "latency_us": latency_json(&g.latency),
                            "client_hello_bytes": g.client_hello_bytes,
                            "handshake_bytes_sent": g.handshake_bytes_sent,
                            "handshake_bytes_received": g.handshake_bytes_received,
                            "errors_by_type": errors_json(&g.errors),
                            "client_cpu_us_per_attempt": round2(g.client_cpu.as_secs_f64() * 1e6 / g.attempts().max(1) as f64),
                            "node_cpu_us_per_attempt": g.node_cpu.map(|c| round2(c.as_secs_f64() * 1e6 / g.attempts().max(1) as f64)),
                        })
                    })
                    .collect();
                o.insert("groups".into(), Value::Array(g));
                o.insert(
                    "client_hello_bytes_default_client".into(),
                    json!(default_client_hello),
                );
                if groups.len() == 2 {
                    o.insert(
                        "hybrid_over_classical".into(),
                        json!({
                            "rate": self.handshake_ratio().map(|r| (r * 1000.0).round() / 1000.0),
                            "client_hello_bytes": round2(
                                groups[1].client_hello_bytes as f64 / groups[0].client_hello_bytes.max(1) as f64
                            ),
                        }),
                    );
                }
            }
            Outcome::Idle {
                open,
                errors,
                opening,
            } => {
                o.insert("status".into(), json!("ok"));
                o.insert("open_connections".into(), json!(open));
                o.insert("errors_by_type".into(), errors_json(errors));
                o.insert("opening_s".into(), json!(opening.as_secs_f64()));
            }
            Outcome::Unsupported {
                operation,
                code,
                message,
            } => {
                o.insert("status".into(), json!("unsupported"));
                o.insert(
                    "unsupported".into(),
                    json!({ "operation": operation, "error_type": code, "message": message }),
                );
            }
        }
        if let (Some(c), Some(n)) = (&self.cpu, self.completed()) {
            let per = |d: Duration| round2(d.as_secs_f64() * 1e6 / n.max(1) as f64);
            let mut cpu = json!({
                "cpus": c.cpus,
                "client_s": c.client.as_secs_f64(),
                "client_us_per_op": per(c.client),
            });
            if let Some(node) = c.node {
                cpu["node_s"] = json!(node.as_secs_f64());
                cpu["node_us_per_op"] = json!(per(node));
                cpu["cpu_bound_estimate_ops_per_s"] =
                    json!(self.cpu_bound_estimate().map(|e| e.round()));
            }
            o.insert("cpu".into(), cpu);
        }
        if let Some(m) = &self.memory {
            let side = |r: &Result<u64, String>| match r {
                Ok(b) => json!(b),
                Err(_) => Value::Null,
            };
            let mut mem = json!({
                "source": m.source,
                "before": side(&m.before),
                "after": side(&m.after),
            });
            if let Err(e) = m.before.as_ref().and(m.after.as_ref()) {
                mem["error"] = json!(e);
            }
            o.insert("node_resident_memory_bytes".into(), mem);
        }
        v
    }

    /// The human-readable form.
    pub fn to_text(&self) -> String {
        let s = &self.setup;
        let mut t = String::new();
        let _ = writeln!(t, "keyfence bench: {}", s.workload);
        let _ = writeln!(t, "  command      {}", s.command);
        let _ = writeln!(
            t,
            "  endpoint     {} ({}, {})",
            s.endpoint, s.transport, s.http
        );
        let conc = if s.streams > 1 {
            format!(
                "{} ({} streams each, {} in flight)",
                s.connections,
                s.streams,
                s.connections * s.streams
            )
        } else {
            s.connections.to_string()
        };
        if let Outcome::Handshakes { .. } = self.outcome {
            let handshake = if s.transport.contains("resumed") {
                "handshake resumed with a ticket"
            } else {
                "full handshake (no resumption)"
            };
            let _ = writeln!(
                t,
                "  connections  {conc} concurrent, each: connect, {handshake}, close"
            );
            let _ = writeln!(
                t,
                "  duration     {:?} per group, groups alternating in segments of at most 2 s",
                s.duration
            );
        } else {
            let _ = writeln!(t, "  connections  {conc}");
            let _ = writeln!(
                t,
                "  duration     {:?} measured after a {:?} warm-up; {}",
                s.duration,
                s.warmup,
                s.mode()
            );
            let _ = writeln!(
                t,
                "  key          {} {}{}",
                s.key_spec.as_deref().unwrap_or("-"),
                s.key_id.as_deref().unwrap_or(""),
                s.signing_algorithm
                    .as_deref()
                    .map(|a| format!(", {a}"))
                    .unwrap_or_default()
            );
            if let Some(p) = s.payload_size {
                let _ = writeln!(t, "  payload      {p} bytes");
            }
        }
        let _ = writeln!(t, "  client       {} threads (the load generator shares this machine's cores with the node)", s.client_threads);
        match &self.outcome {
            Outcome::Load { stats, operations } => {
                let _ = writeln!(
                    t,
                    "  requests     {} ok, {} failed in {:.2} s",
                    stats.ok(),
                    stats.failed(),
                    stats.elapsed.as_secs_f64()
                );
                if s.rate.is_some() {
                    let _ = writeln!(
                        t,
                        "  schedule     {} scheduled, {} never sent (node too far behind)",
                        stats.scheduled, stats.missed
                    );
                }
                let _ = writeln!(t, "  throughput   {:.1} ops/s", stats.throughput());
                let _ = writeln!(t, "  latency      {}", latency_text(&stats.latency));
                if operations.len() > 1 {
                    for (i, name) in operations.iter().enumerate() {
                        let _ = writeln!(
                            t,
                            "    {name:<16} {:>8} ok  {}",
                            stats.ok_per_kind[i],
                            latency_text(&stats.per_kind[i])
                        );
                    }
                }
                let _ = writeln!(t, "  errors       {}", errors_text(&stats.errors));
                if self.reconnects > 0 {
                    let _ = writeln!(
                        t,
                        "  reconnects   {} (the server closed keep-alive connections; reopening is in the latency)",
                        self.reconnects
                    );
                }
            }
            Outcome::Handshakes {
                groups,
                default_client_hello,
            } => {
                let _ = writeln!(
                    t,
                    "  {:<16} {:>12} {:>10} {:>10} {:>12} {:>14}  errors",
                    "group", "handshakes/s", "p50", "p99", "ClientHello", "sent/received"
                );
                for g in groups {
                    let (p50, p99) = if g.latency.is_empty() {
                        ("-".to_string(), "-".to_string())
                    } else {
                        (
                            us(g.latency.value_at_quantile(0.5)),
                            us(g.latency.value_at_quantile(0.99)),
                        )
                    };
                    let _ = writeln!(
                        t,
                        "  {:<16} {:>12.1} {:>10} {:>10} {:>10} B {:>14}  {}",
                        g.group,
                        g.rate(),
                        p50,
                        p99,
                        g.client_hello_bytes,
                        format!(
                            "{}/{} B",
                            g.handshake_bytes_sent, g.handshake_bytes_received
                        ),
                        errors_text(&g.errors)
                    );
                }
                if let (Some(r), [c, h]) = (self.handshake_ratio(), groups.as_slice()) {
                    let _ = writeln!(
                        t,
                        "  hybrid/classical: handshake rate {:.3}, ClientHello {:.2}x ({} vs {} B)",
                        r,
                        h.client_hello_bytes as f64 / c.client_hello_bytes.max(1) as f64,
                        h.client_hello_bytes,
                        c.client_hello_bytes
                    );
                }
                for g in groups {
                    if let Some(node) = g.node_cpu {
                        let per = |d: Duration| d.as_secs_f64() * 1e6 / g.attempts().max(1) as f64;
                        let _ = writeln!(
                            t,
                            "  {:<16} CPU per attempt: node {:.0} µs, client {:.0} µs",
                            g.group,
                            per(node),
                            per(g.client_cpu)
                        );
                    }
                }
                let _ = writeln!(
                    t,
                    "  default client ClientHello (X25519MLKEM768 + X25519 shares): {default_client_hello} B"
                );
            }
            Outcome::Idle {
                open,
                errors,
                opening,
            } => {
                let _ = writeln!(
                    t,
                    "  idle         {open} keep-alive connections open (one Encrypt each; opened in {:.1} s), held {:?}",
                    opening.as_secs_f64(),
                    s.duration
                );
                let _ = writeln!(t, "  errors       {}", errors_text(errors));
            }
            Outcome::Unsupported {
                operation,
                code,
                message,
            } => {
                let _ = writeln!(
                    t,
                    "  UNSUPPORTED  the node refused {operation}: {code}: {message}"
                );
                let _ = writeln!(
                    t,
                    "               (nothing was measured; the node does not support this workload or key spec yet)"
                );
            }
        }
        if let (Some(c), Some(n)) = (&self.cpu, self.completed()) {
            let per = |d: Duration| d.as_secs_f64() * 1e6 / n.max(1) as f64;
            let _ = write!(
                t,
                "  cpu          client {:.2} s ({:.1} µs/op)",
                c.client.as_secs_f64(),
                per(c.client)
            );
            if let Some(node) = c.node {
                let _ = write!(
                    t,
                    ", node {:.2} s ({:.1} µs/op); CPU-bound estimate on {} CPUs: {:.0} ops/s",
                    node.as_secs_f64(),
                    per(node),
                    c.cpus,
                    self.cpu_bound_estimate().unwrap_or(0.0)
                );
            }
            let _ = writeln!(t);
        }
        match &self.memory {
            // One short note, not the connect error twice.
            Some(m) if m.before.is_err() && m.after.is_err() => {
                let _ = writeln!(
                    t,
                    "  node memory  not read ({} failed; --metrics URL or none)",
                    m.source
                );
            }
            Some(m) => {
                let side = |r: &Result<u64, String>| match r {
                    Ok(b) => mib(*b),
                    Err(e) => format!("unavailable ({e})"),
                };
                let _ = writeln!(
                    t,
                    "  node memory  {} before, {} after (resident, {})",
                    side(&m.before),
                    side(&m.after),
                    m.source
                );
            }
            None => {}
        }
        t
    }
}
