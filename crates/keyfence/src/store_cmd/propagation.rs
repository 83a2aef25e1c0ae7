//! `keyfence store propagation`: how long a key created at one node takes
//! to be visible at another. Each CreateKey's reply at the first node (its
//! commit acknowledged) starts a clock; DescribeKey is then sent to the
//! second node back to back until it answers 200. Prints one JSON object.

use std::time::{Duration, Instant};

use keyfence_bench::client::{ClientContext, Connection, Endpoint, HttpVersion};
use keyfence_bench::connect::ConnectArgs;
use keyfence_server::tls::ClientGroups;
use serde_json::{json, Value};

/// Longest wait for one key before the run fails.
const LIMIT: Duration = Duration::from_secs(10);

async fn call(conn: &mut Connection, operation: &str, body: &Value) -> Result<Value, String> {
    let reply = conn
        .kms(operation, body)
        .await
        .map_err(|e| format!("{operation}: {e}"))?;
    match reply.error_type() {
        None => Ok(reply.json()),
        Some(code) => Err(code),
    }
}

/// The `p`-th percentile of sorted samples, in milliseconds.
fn percentile(sorted: &[Duration], p: usize) -> f64 {
    let i = (sorted.len() * p / 100).min(sorted.len().saturating_sub(1));
    sorted.get(i).map_or(0.0, |d| d.as_secs_f64() * 1e3)
}

async fn run(connect: &ConnectArgs, peer: &str, count: usize) -> Result<Value, String> {
    let resolved = connect.resolve()?;
    let ctx = |endpoint: Endpoint| {
        ClientContext::new(
            endpoint,
            resolved.ca.as_deref(),
            ClientGroups::Default,
            resolved.credential.clone(),
            HttpVersion::Http1,
        )
    };
    let mut writer = ctx(resolved.endpoint.clone())?
        .connect()
        .await
        .map_err(|e| format!("{}: {e}", connect.endpoint))?;
    let mut reader = ctx(Endpoint::parse(peer)?)?
        .connect()
        .await
        .map_err(|e| format!("{peer}: {e}"))?;
    let (mut created, mut visible) = (Vec::new(), Vec::new());
    let mut polls = 0u64;
    for _ in 0..count {
        let sent = Instant::now();
        let v = call(
            &mut writer,
            "CreateKey",
            &json!({"Description": "propagation"}),
        )
        .await?;
        let acknowledged = Instant::now();
        created.push(acknowledged - sent);
        let id = v["KeyMetadata"]["KeyId"]
            .as_str()
            .ok_or("CreateKey: no KeyId")?
            .to_string();
        loop {
            polls += 1;
            match call(&mut reader, "DescribeKey", &json!({"KeyId": id})).await {
                Ok(_) => break,
                Err(code) if code == "NotFoundException" => {}
                Err(other) => return Err(format!("DescribeKey at {peer}: {other}")),
            }
            if acknowledged.elapsed() > LIMIT {
                return Err(format!("{id} not visible at {peer} within {LIMIT:?}"));
            }
        }
        visible.push(acknowledged.elapsed());
    }
    created.sort();
    visible.sort();
    Ok(json!({
        "keys": count,
        "propagation_ms": {
            "p50": percentile(&visible, 50),
            "p90": percentile(&visible, 90),
            "p99": percentile(&visible, 99),
            "max": percentile(&visible, 100),
        },
        "create_key_ms": {
            "p50": percentile(&created, 50),
            "p99": percentile(&created, 99),
        },
        "describe_polls": polls,
    }))
}

/// Runs the measurement and prints its JSON.
pub fn main(connect: &ConnectArgs, peer: &str, count: usize) -> Result<(), String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let out = rt.block_on(run(connect, peer, count))?;
    println!("{out}");
    Ok(())
}
