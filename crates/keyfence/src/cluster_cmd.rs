//! `keyfence node …` and `keyfence fence …`: the cluster admin API
//! (`KeyfenceAdmin.*`, see keyfence-server's `admin` module) from the command line.

use clap::{Args, Subcommand};
use keyfence_bench::connect::ConnectArgs;
use keyfence_server::tls::ClientGroups;
use serde_json::{json, Value};

/// `keyfence node …`.
#[derive(Subcommand, Debug)]
pub enum NodeCommand {
    /// List the cluster's nodes: name, state, attributes, address, last contact.
    List(Target),
    /// Approve a pending node with the attributes it claimed (at the authority node).
    Approve {
        /// The node's name.
        name: String,
        #[command(flatten)]
        target: Target,
    },
}

/// `keyfence fence …`.
#[derive(Subcommand, Debug)]
pub enum FenceCommand {
    /// List the fences: policy, epoch, and the nodes that hold its secret.
    List(Target),
    /// Make the fence of a policy (at the authority node); CreateKey with the
    /// keyfence:fence tag at the authority node also makes it.
    Create {
        /// The policy, e.g. 'region: EU and not country: RU'.
        policy: String,
        #[command(flatten)]
        target: Target,
    },
}

/// Which node to ask, and how.
#[derive(Args, Debug)]
pub struct Target {
    #[command(flatten)]
    connect: ConnectArgs,
}

async fn call(target: &Target, operation: &str, body: Value) -> Result<Value, String> {
    let mut conn = target
        .connect
        .context(ClientGroups::HybridOnly)?
        .connect()
        .await
        .map_err(|e| format!("connecting to {}: {e}", target.connect.endpoint))?;
    let reply = conn
        .json(&format!("KeyfenceAdmin.{operation}"), &body)
        .await
        .map_err(|e| format!("{operation}: {e}"))?;
    let v = reply.json();
    if reply.status != 200 {
        return Err(format!(
            "{operation}: {} ({})",
            v["message"].as_str().unwrap_or("no message"),
            reply
                .error_type()
                .unwrap_or_else(|| format!("HTTP {}", reply.status))
        ));
    }
    Ok(v)
}

fn attributes(node: &Value) -> String {
    node["Attributes"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}: {}", v.as_str().unwrap_or_default()))
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default()
}

fn print_nodes(v: &Value) {
    println!(
        "{:<12} {:<9} {:<22} {:<40} LAST CONTACT (s ago)",
        "NAME", "STATE", "ADDRESS", "ATTRIBUTES"
    );
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or_default();
    for n in v["Nodes"].as_array().into_iter().flatten() {
        println!(
            "{:<12} {:<9} {:<22} {:<40} {:.0}",
            n["Name"].as_str().unwrap_or_default(),
            n["State"].as_str().unwrap_or_default(),
            n["Address"].as_str().unwrap_or_default(),
            attributes(n),
            (now - n["LastContact"].as_f64().unwrap_or_default()).max(0.0)
        );
    }
}

fn print_fences(fences: &[Value]) {
    println!("{:<40} {:<6} {:<20} POLICY", "FENCE", "EPOCH", "NODES");
    for f in fences {
        let nodes: Vec<&str> = f["Nodes"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        println!(
            "{:<40} {:<6} {:<20} {}",
            f["FenceId"].as_str().unwrap_or_default(),
            f["Epoch"],
            nodes.join(","),
            f["Policy"].as_str().unwrap_or_default()
        );
    }
}

async fn node(command: NodeCommand) -> Result<(), String> {
    match command {
        NodeCommand::List(target) => print_nodes(&call(&target, "ListNodes", json!({})).await?),
        NodeCommand::Approve { name, target } => {
            let v = call(&target, "ApproveNode", json!({"Name": name})).await?;
            println!(
                "approved {} ({})",
                v["Node"]["Name"].as_str().unwrap_or_default(),
                attributes(&v["Node"])
            );
        }
    }
    Ok(())
}

async fn fence(command: FenceCommand) -> Result<(), String> {
    match command {
        FenceCommand::List(target) => {
            let v = call(&target, "ListFences", json!({})).await?;
            print_fences(
                v["Fences"]
                    .as_array()
                    .map(Vec::as_slice)
                    .unwrap_or_default(),
            );
        }
        FenceCommand::Create { policy, target } => {
            let v = call(&target, "CreateFence", json!({"Policy": policy})).await?;
            print_fences(std::slice::from_ref(&v["Fence"]));
        }
    }
    Ok(())
}

fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())
}

/// Runs a `keyfence node` command.
pub fn node_main(command: NodeCommand) -> Result<(), String> {
    runtime()?.block_on(node(command))
}

/// Runs a `keyfence fence` command.
pub fn fence_main(command: FenceCommand) -> Result<(), String> {
    runtime()?.block_on(fence(command))
}
