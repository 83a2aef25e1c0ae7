//! Workloads: which KMS operations are sent, the keys they need (created before
//! measuring) and the request bodies.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use bytes::Bytes;
use hyper::header::HeaderValue;
use serde_json::{json, Value};

use super::client::{ClientError, Connection};
use super::runner::Worker;

/// What `--workload` selects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum WorkloadKind {
    /// Encrypt `--payload-size` bytes under a symmetric key.
    Encrypt,
    /// Decrypt a ciphertext of `--payload-size` bytes.
    Decrypt,
    /// GenerateDataKey (AES_256).
    GenerateDataKey,
    /// Sign `--payload-size` bytes (RAW) with an asymmetric key of `--key-spec`.
    Sign,
    /// Encrypt, Decrypt and GenerateDataKey in the ratio 4:4:2.
    Mixed,
    /// CreateKey (symmetric; fenced with --fence): each request makes a new key.
    CreateKey,
    /// Encrypt with 1 % slow operations mixed in: of every 300 requests, one
    /// RSA_4096 Sign (RSASSA_PSS_SHA_256), one ML_DSA_65 Sign and one
    /// GenerateDataKeyPair (RSA_2048); the Encrypt latencies are reported apart.
    EncryptWithSlow,
    /// New TLS connections per second, X25519 vs X25519MLKEM768.
    Handshakes,
    /// Open --connections keep-alive connections, send one Encrypt on each, then
    /// hold them idle for --duration: the node's memory with that many connections.
    IdleConnections,
}

impl WorkloadKind {
    /// The name used on the command line.
    pub fn name(self) -> &'static str {
        match self {
            WorkloadKind::Encrypt => "encrypt",
            WorkloadKind::Decrypt => "decrypt",
            WorkloadKind::GenerateDataKey => "generate-data-key",
            WorkloadKind::Sign => "sign",
            WorkloadKind::Mixed => "mixed",
            WorkloadKind::CreateKey => "create-key",
            WorkloadKind::EncryptWithSlow => "encrypt-with-slow",
            WorkloadKind::Handshakes => "handshakes",
            WorkloadKind::IdleConnections => "idle-connections",
        }
    }
}

/// One operation of a workload, ready to send: target header and body.
#[derive(Debug, Clone)]
pub struct Operation {
    /// KMS operation name (`Encrypt`).
    pub name: &'static str,
    /// How the report names it (the operation name, or e.g. `Sign RSA_4096`).
    pub label: &'static str,
    /// `TrentService.<name>`.
    pub target: HeaderValue,
    /// The JSON body, the same for every request (each is signed anew).
    pub body: Bytes,
    /// Hex SHA-256 of `body`.
    pub payload_hash: String,
}

impl Operation {
    fn labelled(self, label: &'static str) -> Self {
        Self { label, ..self }
    }

    fn new(name: &'static str, body: &Value) -> Self {
        let body = Bytes::from(serde_json::to_vec(body).expect("JSON serializes"));
        Self {
            name,
            label: name,
            target: HeaderValue::from_str(&format!("TrentService.{name}"))
                .expect("operation names are header-safe"),
            payload_hash: keyfence_server::sigv4::payload_hash(&body),
            body,
        }
    }
}

/// A prepared workload: its operations and the order they are cycled in.
#[derive(Debug, Clone)]
pub struct Prepared {
    /// Operations, indexed by kind.
    pub operations: Vec<Operation>,
    /// Request `i` uses `operations[pattern[i % pattern.len()]]`.
    pub pattern: Vec<usize>,
    /// The key used (ARN or id).
    pub key_id: String,
    /// Its key spec.
    pub key_spec: String,
    /// Signing algorithm, for `sign`.
    pub signing_algorithm: Option<String>,
    /// Whether the key was created by this run (and is scheduled for deletion after).
    pub created: bool,
    /// Other keys this run created (scheduled for deletion after).
    pub other_keys: Vec<String>,
}

/// Why a workload could not be prepared.
#[derive(Debug)]
pub enum SetupError {
    /// The node does not support what the workload needs (e.g. the key spec):
    /// reported, not a crash.
    Unsupported {
        /// The operation that was refused.
        operation: &'static str,
        /// AWS error type.
        code: String,
        /// The node's message.
        message: String,
    },
    /// Anything else.
    Failed(String),
}

impl std::fmt::Display for SetupError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SetupError::Unsupported {
                operation,
                code,
                message,
            } => write!(f, "the node refused {operation}: {code}: {message}"),
            SetupError::Failed(e) => f.write_str(e),
        }
    }
}

impl From<ClientError> for SetupError {
    fn from(e: ClientError) -> Self {
        SetupError::Failed(format!("setup request failed: {e}"))
    }
}

/// The signing algorithm AWS pairs with a key spec for `Sign`.
pub fn default_signing_algorithm(key_spec: &str) -> &'static str {
    match key_spec {
        "ECC_NIST_P384" => "ECDSA_SHA_384",
        "ECC_NIST_P521" => "ECDSA_SHA_512",
        s if s.starts_with("RSA_") => "RSASSA_PSS_SHA_256",
        s if s.starts_with("ML_DSA_") => "ML_DSA_SHAKE_256",
        "ECC_NIST_EDWARDS25519" => "ED25519_SHA_512",
        // ECC_NIST_P256, ECC_SECG_P256K1, SM2 and anything unknown.
        _ => "ECDSA_SHA_256",
    }
}

/// A deterministic payload of `n` bytes.
pub fn payload(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 31 + 7) as u8).collect()
}

/// Sends a setup call; a non-2xx answer becomes `Unsupported` for the codes a node
/// uses to refuse an unknown operation or key spec, `Failed` otherwise.
async fn setup_call(
    conn: &mut Connection,
    operation: &'static str,
    body: &Value,
) -> Result<Value, SetupError> {
    let reply = conn.kms(operation, body).await?;
    match reply.error_type() {
        None => Ok(reply.json()),
        Some(code) => {
            let v = reply.json();
            let message = v["message"]
                .as_str()
                .or_else(|| v["Message"].as_str())
                .unwrap_or("")
                .to_string();
            if matches!(
                code.as_str(),
                "UnsupportedOperationException" | "ValidationException"
            ) || code.starts_with("HTTP 404")
            {
                Err(SetupError::Unsupported {
                    operation,
                    code,
                    message,
                })
            } else {
                Err(SetupError::Failed(format!(
                    "{operation} failed: {code}: {message}"
                )))
            }
        }
    }
}

/// Creates a key of `key_spec` (for signing if `sign`), fenced to `fence` if
/// given; gives its ARN.
async fn create_key(
    conn: &mut Connection,
    key_spec: &str,
    sign: bool,
    fence: Option<&str>,
) -> Result<String, SetupError> {
    let usage = if sign {
        "SIGN_VERIFY"
    } else {
        "ENCRYPT_DECRYPT"
    };
    let mut create = json!({
        "Description": "keyfence bench",
        "KeySpec": key_spec,
        "KeyUsage": usage,
    });
    if let Some(policy) = fence {
        create["Tags"] = json!([{"TagKey": "keyfence:fence", "TagValue": policy}]);
    }
    let v = setup_call(conn, "CreateKey", &create).await?;
    let id = v["KeyMetadata"]["Arn"]
        .as_str()
        .or_else(|| v["KeyMetadata"]["KeyId"].as_str())
        .ok_or_else(|| SetupError::Failed(format!("CreateKey: no KeyMetadata in {v}")))?;
    Ok(id.to_string())
}

/// The slow operations of `encrypt-with-slow`, on keys made for them, and the
/// pattern that mixes one of each into every [`SLOW_MIX_PERIOD`] requests.
async fn slow_mix(
    conn: &mut Connection,
    key_id: &str,
    encrypt: &Value,
    fence: Option<&str>,
) -> Result<(Vec<Operation>, Vec<usize>, Vec<String>), SetupError> {
    let message = B64.encode(payload(256));
    let mut operations = vec![Operation::new("Encrypt", encrypt)];
    let mut keys = Vec::new();
    for (spec, algorithm, label) in [
        ("RSA_4096", "RSASSA_PSS_SHA_256", "Sign RSA_4096"),
        ("ML_DSA_65", "ML_DSA_SHAKE_256", "Sign ML_DSA_65"),
    ] {
        let key = create_key(conn, spec, true, fence).await?;
        let body = json!({
            "KeyId": key,
            "Message": message,
            "MessageType": "RAW",
            "SigningAlgorithm": algorithm,
        });
        setup_call(conn, "Sign", &body).await?;
        keys.push(key);
        operations.push(Operation::new("Sign", &body).labelled(label));
    }
    let pair = json!({ "KeyId": key_id, "KeyPairSpec": "RSA_2048" });
    setup_call(conn, "GenerateDataKeyPair", &pair).await?;
    operations.push(
        Operation::new("GenerateDataKeyPair", &pair).labelled("GenerateDataKeyPair RSA_2048"),
    );
    let pattern = slow_pattern(operations.len() - 1);
    Ok((operations, pattern, keys))
}

/// Kind 0 (Encrypt) everywhere but for kinds `1..=slow`, once each, spread
/// evenly over [`SLOW_MIX_PERIOD`] requests.
fn slow_pattern(slow: usize) -> Vec<usize> {
    let mut pattern = vec![0; SLOW_MIX_PERIOD];
    let step = SLOW_MIX_PERIOD / slow.max(1);
    for kind in 1..=slow {
        pattern[kind * step - 1] = kind;
    }
    pattern
}

/// `encrypt-with-slow` sends one of each slow operation per this many requests.
pub const SLOW_MIX_PERIOD: usize = 300;

/// Options that shape a workload.
#[derive(Debug, Clone)]
pub struct WorkloadOptions {
    /// Which workload.
    pub kind: WorkloadKind,
    /// Plaintext / message size in bytes.
    pub payload_size: usize,
    /// Key spec for `sign`.
    pub key_spec: String,
    /// Signing algorithm override for `sign`.
    pub signing_algorithm: Option<String>,
    /// Use this key instead of creating one.
    pub key_id: Option<String>,
    /// Create the key fenced to this policy.
    pub fence: Option<String>,
}

/// Creates the key the workload needs (unless given), checks one round trip and
/// builds the request bodies.
pub async fn prepare(
    conn: &mut Connection,
    opts: &WorkloadOptions,
) -> Result<Prepared, SetupError> {
    let data = payload(opts.payload_size);
    let plaintext = B64.encode(&data);
    let sign = opts.kind == WorkloadKind::Sign;
    let key_spec = if sign {
        opts.key_spec.clone()
    } else {
        "SYMMETRIC_DEFAULT".to_string()
    };
    if opts.kind == WorkloadKind::CreateKey {
        let mut create = json!({"Description": "keyfence bench"});
        if let Some(policy) = &opts.fence {
            create["Tags"] = json!([{"TagKey": "keyfence:fence", "TagValue": policy}]);
        }
        setup_call(conn, "CreateKey", &create).await?;
        return Ok(Prepared {
            operations: vec![Operation::new("CreateKey", &create)],
            pattern: vec![0],
            key_id: String::new(),
            key_spec,
            signing_algorithm: None,
            created: false,
            other_keys: Vec::new(),
        });
    }
    let (key_id, created) = match &opts.key_id {
        Some(k) => (k.clone(), false),
        None => (
            create_key(conn, &key_spec, sign, opts.fence.as_deref()).await?,
            true,
        ),
    };

    let encrypt = json!({ "KeyId": key_id, "Plaintext": plaintext });
    let gdk = json!({ "KeyId": key_id, "KeySpec": "AES_256" });
    let mut signing_algorithm = None;
    let mut other_keys = Vec::new();
    let (operations, pattern) = match opts.kind {
        WorkloadKind::Encrypt | WorkloadKind::IdleConnections => {
            (vec![Operation::new("Encrypt", &encrypt)], vec![0])
        }
        WorkloadKind::EncryptWithSlow => {
            let (operations, pattern, keys) =
                slow_mix(conn, &key_id, &encrypt, opts.fence.as_deref()).await?;
            other_keys = keys;
            (operations, pattern)
        }
        WorkloadKind::GenerateDataKey => {
            setup_call(conn, "GenerateDataKey", &gdk).await?;
            (vec![Operation::new("GenerateDataKey", &gdk)], vec![0])
        }
        WorkloadKind::Decrypt | WorkloadKind::Mixed => {
            let decrypt = round_trip(conn, &key_id, &encrypt, &plaintext).await?;
            if opts.kind == WorkloadKind::Decrypt {
                (vec![Operation::new("Decrypt", &decrypt)], vec![0])
            } else {
                setup_call(conn, "GenerateDataKey", &gdk).await?;
                (
                    vec![
                        Operation::new("Encrypt", &encrypt),
                        Operation::new("Decrypt", &decrypt),
                        Operation::new("GenerateDataKey", &gdk),
                    ],
                    // 4:4:2, interleaved.
                    vec![0, 1, 2, 0, 1, 0, 1, 2, 0, 1],
                )
            }
        }
        WorkloadKind::Sign => {
            let alg = opts
                .signing_algorithm
                .clone()
                .unwrap_or_else(|| default_signing_algorithm(&key_spec).to_string());
            let body = json!({
                "KeyId": key_id,
                "Message": plaintext,
                "MessageType": "RAW",
                "SigningAlgorithm": alg,
            });
            let v = setup_call(conn, "Sign", &body).await?;
            if v["Signature"].as_str().is_none_or(str::is_empty) {
                return Err(SetupError::Failed(format!("Sign: no Signature in {v}")));
            }
            signing_algorithm = Some(alg);
            (vec![Operation::new("Sign", &body)], vec![0])
        }
        WorkloadKind::Handshakes | WorkloadKind::CreateKey => {
            return Err(SetupError::Failed(
                "handshakes and create-key use no one key (internal error)".into(),
            ))
        }
    };
    if matches!(
        opts.kind,
        WorkloadKind::Encrypt | WorkloadKind::EncryptWithSlow | WorkloadKind::IdleConnections
    ) {
        // One checked round trip, so a node that answers 200 with garbage is caught.
        round_trip(conn, &key_id, &encrypt, &plaintext).await?;
    }
    Ok(Prepared {
        operations,
        pattern,
        key_id,
        key_spec,
        signing_algorithm,
        created,
        other_keys,
    })
}

/// Encrypt then Decrypt once and compare; gives the Decrypt body.
async fn round_trip(
    conn: &mut Connection,
    key_id: &str,
    encrypt: &Value,
    plaintext: &str,
) -> Result<Value, SetupError> {
    let v = setup_call(conn, "Encrypt", encrypt).await?;
    let blob = v["CiphertextBlob"]
        .as_str()
        .ok_or_else(|| SetupError::Failed(format!("Encrypt: no CiphertextBlob in {v}")))?
        .to_string();
    let decrypt = json!({ "KeyId": key_id, "CiphertextBlob": blob });
    let v = setup_call(conn, "Decrypt", &decrypt).await?;
    if v["Plaintext"].as_str() != Some(plaintext) {
        return Err(SetupError::Failed(
            "Decrypt did not give back the encrypted plaintext".into(),
        ));
    }
    Ok(decrypt)
}

/// Schedules deletion of a key this run created (7 days, the minimum); best effort.
pub async fn cleanup(conn: &mut Connection, prepared: &Prepared) -> Result<(), String> {
    let main = prepared.created.then_some(&prepared.key_id);
    for key in main.into_iter().chain(&prepared.other_keys) {
        let reply = conn
            .kms(
                "ScheduleKeyDeletion",
                &json!({ "KeyId": key, "PendingWindowInDays": 7 }),
            )
            .await
            .map_err(|e| e.to_string())?;
        if let Some(code) = reply.error_type() {
            return Err(code);
        }
    }
    Ok(())
}

/// A connection (or HTTP/2 stream slot) sending the prepared operations.
pub struct KmsWorker {
    conn: Connection,
    operations: std::sync::Arc<Vec<Operation>>,
}

impl KmsWorker {
    /// A worker on `conn`.
    pub fn new(conn: Connection, operations: std::sync::Arc<Vec<Operation>>) -> Self {
        Self { conn, operations }
    }
}

impl Worker for KmsWorker {
    async fn call(&mut self, kind: usize) -> Result<(), String> {
        let op = &self.operations[kind];
        match self
            .conn
            .call(&op.target, &op.payload_hash, op.body.clone())
            .await
        {
            Ok(reply) => match reply.error_type() {
                None => Ok(()),
                Some(code) => Err(code),
            },
            Err(e) => Err(e.kind().to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signing_algorithms_follow_the_key_spec() {
        assert_eq!(default_signing_algorithm("ECC_NIST_P256"), "ECDSA_SHA_256");
        assert_eq!(default_signing_algorithm("ECC_NIST_P384"), "ECDSA_SHA_384");
        assert_eq!(default_signing_algorithm("RSA_2048"), "RSASSA_PSS_SHA_256");
        assert_eq!(default_signing_algorithm("ML_DSA_65"), "ML_DSA_SHAKE_256");
    }

    #[test]
    fn the_slow_mix_is_one_percent() {
        // Encrypt plus three slow operations, spread over the period.
        let pattern = slow_pattern(3);
        assert_eq!(pattern.len(), SLOW_MIX_PERIOD);
        let slow = pattern.iter().filter(|k| **k != 0).count();
        assert_eq!(slow * 100, SLOW_MIX_PERIOD);
        assert_eq!(pattern[99], 1);
        assert_eq!(pattern[299], 3);
    }

    #[test]
    fn payloads_have_the_requested_size() {
        assert_eq!(payload(256).len(), 256);
        assert_ne!(payload(4), vec![0; 4]);
    }
}
