//! `keyfence dev`: a local geo-fencing cluster in one process — one data
//! directory (root key, development CA, credential) and one SQLite store
//! shared by up to three nodes, the authority on the first, every node
//! approved at start.

use std::collections::BTreeMap;
use std::path::PathBuf;

use clap::Args;
use keyfence_core::cluster::NodeState;
use keyfence_server::config::NodeSection;
use keyfence_server::{Config, Node};

/// The nodes `keyfence dev` runs, in order: name and attributes.
pub const PRESETS: &[(&str, &[(&str, &str)])] = &[
    (
        "fra",
        &[("country", "DE"), ("region", "EU"), ("security", "high")],
    ),
    ("par", &[("country", "FR"), ("region", "EU")]),
    ("iad", &[("country", "US"), ("region", "NA")]),
];

/// Arguments of `keyfence dev`.
#[derive(Args, Debug)]
pub struct DevArgs {
    /// How many nodes (1 to 3): fra (country DE, region EU, security high, the
    /// authority), par (country FR, region EU), iad (country US, region NA).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u16).range(1..=3))]
    nodes: u16,
    /// Data directory shared by the nodes (created on first run).
    #[arg(long, default_value = "keyfence-dev")]
    data_dir: PathBuf,
    /// Port of the first node; the others take the next ones.
    #[arg(long, default_value_t = 8443)]
    base_port: u16,
    /// Region named in ARNs.
    #[arg(long, default_value = keyfence_server::config::DEFAULT_REGION)]
    region: String,
}

fn config(args: &DevArgs, index: usize) -> Result<Config, String> {
    let (name, attrs) = PRESETS[index];
    let port = args
        .base_port
        .checked_add(index as u16)
        .ok_or("--base-port too high")?;
    Ok(Config {
        listen: ([127, 0, 0, 1], port).into(),
        metrics_listen: ([127, 0, 0, 1], 0).into(),
        data_dir: args.data_dir.clone(),
        region: args.region.clone(),
        also_serves: Vec::new(),
        post_quantum: false,
        credentials: Vec::new(),
        principals: Default::default(),
        node: Some(NodeSection {
            name: name.into(),
            attributes: attrs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<BTreeMap<_, _>>(),
            authority: index == 0,
            store: None,
            advertise: None,
            // Node-to-node traffic on its own listener (any free port), whose
            // handshake requires an approved node's certificate.
            peer_listen: Some(([127, 0, 0, 1], 0).into()),
        }),
        default_fence: None,
        store: keyfence_server::config::StoreLocation::DataDir,
        max_staleness: std::time::Duration::from_secs(60),
        feed_retention: std::time::Duration::from_secs(900),
        audit: Default::default(),
        limits: Default::default(),
        root: Default::default(),
    })
}

async fn run(args: DevArgs) -> Result<(), String> {
    let mut nodes: Vec<Node> = Vec::new();
    for (index, (name, _)) in PRESETS.iter().enumerate().take(usize::from(args.nodes)) {
        let node = Node::start(config(&args, index)?)
            .await
            .map_err(|e| format!("starting {name}: {e}"))?;
        nodes.push(node);
    }
    let authority = nodes[0].cluster.clone().ok_or("fra has no cluster")?;
    let approve = tokio::task::spawn_blocking(move || -> Result<(), String> {
        for n in authority.store().nodes().map_err(|e| e.to_string())? {
            if n.state == NodeState::Pending {
                authority.approve(&n.name).map_err(|e| e.to_string())?;
            }
        }
        Ok(())
    });
    approve.await.map_err(|e| e.to_string())??;
    for node in &nodes {
        if let Some(c) = &node.cluster {
            c.refresh(&node.kms).map_err(|e| e.to_string())?;
        }
    }
    let dir = &nodes[0].data_dir;
    let credential = dir
        .load_credentials()
        .map_err(|e| e.to_string())?
        .into_iter()
        .next()
        .ok_or("no credential")?;
    println!(
        "keyfence dev cluster ({} nodes, one SQLite store)",
        nodes.len()
    );
    for (node, (name, attrs)) in nodes.iter().zip(PRESETS) {
        let attrs: Vec<String> = attrs.iter().map(|(k, v)| format!("{k}: {v}")).collect();
        let role = if node.cluster.as_ref().is_some_and(|c| c.is_authority()) {
            ", authority"
        } else {
            ""
        };
        let peers = node
            .peer_addr
            .map(|a| format!("  node-to-node {a}"))
            .unwrap_or_default();
        println!(
            "  {name}  https://{}  ({}{role})  metrics http://{}/metrics{peers}",
            node.api_addr,
            attrs.join(", "),
            node.metrics_addr
        );
    }
    println!("  data directory: {}", dir.path.display());
    println!("  CA certificate: {}", dir.pki.ca_cert.display());
    println!("  AWS_ACCESS_KEY_ID={}", credential.access_key_id);
    println!(
        "  AWS_SECRET_ACCESS_KEY={}",
        credential.secret_access_key.as_str()
    );
    println!("  AWS_DEFAULT_REGION={}", args.region);
    println!("  AWS_CA_BUNDLE={}", dir.pki.ca_cert.display());
    println!(
        "  fence a key: aws kms create-key --endpoint-url https://{} --tags TagKey=keyfence:fence,TagValue='region: EU and not country: RU'",
        nodes[0].api_addr
    );
    crate::shutdown_signal().await;
    for node in nodes {
        node.shutdown().await;
    }
    Ok(())
}

/// Runs `keyfence dev`.
pub fn main(args: DevArgs) -> Result<(), String> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?
        .block_on(run(args))
}
