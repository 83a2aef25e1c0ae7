//! `keyfence node …`, `keyfence fence …` and `keyfence authority …`: the cluster admin API
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
    /// Remove a node: every fence it could open gets a new policy key and
    /// per-policy secret, and those fences' keys are re-wrapped (at the authority node).
    Remove {
        /// The node's name.
        name: String,
        #[command(flatten)]
        target: Target,
    },
    /// Change a node's approved attributes: fences it no longer satisfies are
    /// rotated without it, fences it now satisfies take it in (at the authority node).
    SetAttributes {
        /// The node's name.
        name: String,
        /// The new attributes, all of them: `key=value`, repeated.
        #[arg(long = "attribute", value_parser = parse_attribute, required = true)]
        attributes: Vec<(String, String)>,
        #[command(flatten)]
        target: Target,
    },
}

/// `keyfence authority …`.
#[derive(Subcommand, Debug)]
pub enum AuthorityCommand {
    /// Start a new CP-ABE master generation: policy keys are re-encrypted
    /// under it, customer keys are not touched; older generations keep
    /// decrypting until retired.
    Rotate(Target),
    /// Destroy an older master generation (never the active one).
    Retire {
        /// The generation number.
        generation: u32,
        #[command(flatten)]
        target: Target,
    },
}

fn parse_attribute(s: &str) -> Result<(String, String), String> {
    let (k, v) = s
        .split_once('=')
        .ok_or_else(|| format!("{s:?} is not key=value"))?;
    Ok((k.trim().to_owned(), v.trim().to_owned()))
}

fn print_change(what: &str, v: &Value) {
    let rotated: Vec<&str> = v["RotatedFences"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    println!(
        "{what} {}: {} fence(s) rotated{}{}, {} key(s) re-wrapped",
        v["Node"]["Name"].as_str().unwrap_or_default(),
        rotated.len(),
        if rotated.is_empty() { "" } else { ": " },
        rotated.join("; "),
        v["RewrappedKeys"]
    );
}

fn print_master(v: &Value) {
    println!(
        "master generations {} (active {}); {} fence record(s) and {} node grant(s) refreshed",
        v["Generations"], v["ActiveGeneration"], v["Fences"], v["Nodes"]
    );
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
    admin_call(&target.connect, operation, body).await
}

/// Calls `KeyfenceAdmin.OPERATION` on a node over hybrid-only TLS and returns
/// its JSON reply, or the node's refusal as one line.
pub(crate) async fn admin_call(
    connect: &ConnectArgs,
    operation: &str,
    body: Value,
) -> Result<Value, String> {
    let mut conn = connect
        .context(ClientGroups::HybridOnly)?
        .connect()
        .await
        .map_err(|e| format!("connecting to {}: {e}", connect.endpoint))?;
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
        NodeCommand::Remove { name, target } => {
            let v = call(&target, "RemoveNode", json!({"Name": name})).await?;
            print_change("removed", &v);
        }
        NodeCommand::SetAttributes {
            name,
            attributes,
            target,
        } => {
            let attributes: serde_json::Map<String, Value> = attributes
                .into_iter()
                .map(|(k, v)| (k, Value::from(v)))
                .collect();
            let v = call(
                &target,
                "SetNodeAttributes",
                json!({"Name": name, "Attributes": attributes}),
            )
            .await?;
            print_change("changed attributes of", &v);
        }
    }
    Ok(())
}

async fn authority(command: AuthorityCommand) -> Result<(), String> {
    match command {
        AuthorityCommand::Rotate(target) => {
            print_master(&call(&target, "RotateMaster", json!({})).await?)
        }
        AuthorityCommand::Retire { generation, target } => print_master(
            &call(
                &target,
                "RetireGeneration",
                json!({"Generation": generation}),
            )
            .await?,
        ),
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

/// A one-thread runtime for a CLI command's calls to a node.
pub(crate) fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())
}

/// Runs a `keyfence node` command.
pub fn node_main(command: NodeCommand) -> Result<(), String> {
    runtime()?.block_on(node(command))
}

/// Runs a `keyfence authority` command.
pub fn authority_main(command: AuthorityCommand) -> Result<(), String> {
    runtime()?.block_on(authority(command))
}

/// Runs a `keyfence fence` command.
pub fn fence_main(command: FenceCommand) -> Result<(), String> {
    runtime()?.block_on(fence(command))
}
