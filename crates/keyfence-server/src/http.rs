//! One HTTP request, end to end: body limit, SigV4, protocol dispatch,
//! response shape, metrics.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use keyfence_core::Kms;

use crate::api::{self, ApiError, Protocol};
use crate::forward;
use crate::limits::{self, RequestBudget};
use crate::log_limit::LogLimiter;
use crate::metrics::Metrics;
use crate::sigv4::{self, CredentialStore, SigV4Error, VerifiedCaller};
use crate::status;

/// What every request handler shares.
pub struct AppState {
    /// The KMS (absent while a quorum-sealed node is sealed).
    pub kms: Arc<crate::seal::KmsSlot>,
    /// Accepted credentials.
    pub credentials: CredentialStore,
    /// Metrics registry.
    pub metrics: Arc<Metrics>,
    /// Room for request bodies read before authentication.
    pub budget: RequestBudget,
    /// Time a client has to send a request body.
    pub body_read_timeout: Duration,
    /// The seal of a node with a quorum-sealed root.
    pub seal: Option<Arc<crate::seal::SealGate>>,
    /// Request-rate quotas per account.
    pub throttle: crate::throttle::Throttle,
    /// Key policies, grants and who each credential acts as.
    pub authz: Arc<crate::authz::Authz>,
    /// The audit log every request is recorded in before its reply (unless off).
    pub audit: Option<Arc<crate::audit::AuditLog>>,
    /// The operators' quorum kept in the store (M-of-N approvals).
    pub approvals: Option<Arc<crate::approvals::Approvals>>,
    /// The low-priority threads that run CPU-heavy requests.
    pub heavy: crate::heavy::HeavyPool,
}

/// A request's answer: made here, or relayed from the node it was forwarded to.
enum Served {
    Local(&'static str, Vec<u8>),
    Forwarded(Response<Full<Bytes>>),
}

/// What a request handler knows about the connection it arrived on.
#[derive(Debug, Clone)]
pub struct Connection {
    /// The client's address.
    pub peer: SocketAddr,
    /// The TLS version, e.g. `"TLS 1.3"`.
    pub tls_version: &'static str,
    /// The negotiated key-exchange group, e.g. `"X25519MLKEM768"`.
    pub group: &'static str,
    /// The certificate the client presented (DER), if any: a cluster node's.
    pub peer_certificate: Option<Vec<u8>>,
}

impl Connection {
    /// The connection from `peer` with TLS state `tls` that negotiated `group`.
    pub fn new(peer: SocketAddr, tls: &rustls::ServerConnection, group: &'static str) -> Self {
        let tls_version = match tls.protocol_version() {
            Some(rustls::ProtocolVersion::TLSv1_3) => "TLS 1.3",
            Some(rustls::ProtocolVersion::TLSv1_2) => "TLS 1.2",
            _ => "unknown",
        };
        Connection {
            peer,
            tls_version,
            group,
            peer_certificate: tls
                .peer_certificates()
                .and_then(|c| c.first())
                .map(|c| c.to_vec()),
        }
    }

    /// Whether the key exchange was a hybrid post-quantum one (an ML-KEM group).
    pub fn post_quantum(&self) -> bool {
        self.group.contains("MLKEM")
    }
}

/// A unique request id in UUID shape: a random per-process prefix and a counter
/// (ids need uniqueness, not secrecy, so no CSPRNG draw per request).
fn request_id() -> String {
    static PREFIX: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let prefix = *PREFIX
        .get_or_init(|| u64::from_be_bytes(keyfence_crypto::rand::array().unwrap_or([0; 8])));
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    // 8-4-4 digits of the prefix, 4-12 of the counter, built on the stack
    // (a formatter per request was a measurable share of a node's CPU).
    let mut digits = [0u8; 32];
    let _ = hex::encode_to_slice(prefix.to_be_bytes(), &mut digits[..16]);
    let _ = hex::encode_to_slice(n.to_be_bytes(), &mut digits[16..]);
    String::from_utf8_lossy(&keyfence_core::ids::hyphenated(&digits)).into_owned()
}

fn respond(
    status: u16,
    content_type: &'static str,
    body: Vec<u8>,
    request_id: &str,
) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    if let Ok(v) = HeaderValue::from_str(request_id) {
        resp.headers_mut().insert("x-amzn-requestid", v);
    }
    resp
}

/// Operation label for metrics: the name of a row of the operation table, or
/// a fixed word (never a client-chosen string, which would grow the label set).
fn metric_operation(protocol: &Protocol) -> &'static str {
    match protocol {
        Protocol::Kms(op) => api::kms::operation(op).map_or("unknown", |o| o.name),
        Protocol::Admin(op) => crate::admin::OPERATIONS
            .iter()
            .find(|o| *o == op)
            .map_or("unknown", |o| o),
        Protocol::Query => "sts",
        Protocol::Unknown => "unknown",
    }
}

/// Handles one request that arrived on `conn`; never fails at the HTTP level.
pub async fn handle(
    state: Arc<AppState>,
    conn: Arc<Connection>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    if status::is_status_request(&req) {
        let regions = state.kms.get().map_or_else(
            |_| vec![state.kms.region().to_owned()],
            |kms| kms.regions().map(str::to_owned).collect(),
        );
        let regions: Vec<&str> = regions.iter().map(String::as_str).collect();
        let name = state.kms.node_name();
        let page = status::Status {
            name: name.as_deref().unwrap_or(status::DEFAULT_NODE_NAME),
            version: env!("CARGO_PKG_VERSION"),
            regions: &regions,
            connection: &conn,
        };
        return Ok(status::response(&page, req.method() == Method::HEAD));
    }
    let started = Instant::now();
    let id = request_id();
    let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok());
    let protocol = api::classify(header("x-amz-target"), header("content-type"));
    let mut facts = crate::audit::Facts::default();
    let result = serve(&state, &conn, req, &protocol, &id, &mut facts).await;
    let answer = match &result {
        Ok(Served::Local(_, body)) => crate::audit::Answer::Local(body),
        Ok(Served::Forwarded(r)) => crate::audit::Answer::Forwarded(r.status().as_u16()),
        Err(e) => crate::audit::Answer::Refused(e.code),
    };
    let audit = state.audit.as_deref();
    let audited = crate::audit::write_ahead(audit, &protocol, &id, conn.peer, &facts, answer).await;
    let result = audited.and(result);
    let outcome = match &result {
        Ok(Served::Local(..)) => "ok",
        Ok(Served::Forwarded(_)) => "forwarded",
        Err(e) => e.code,
    };
    state.metrics.record_request(
        metric_operation(&protocol),
        outcome,
        started.elapsed().as_secs_f64(),
    );
    let response = match (result, &protocol) {
        (Ok(Served::Local(content_type, body)), _) => respond(200, content_type, body, &id),
        (Ok(Served::Forwarded(response)), _) => response,
        (Err(e), Protocol::Query) => {
            let e = e.for_query_protocol();
            respond(e.status, "text/xml", e.xml_body(&id), &id)
        }
        (Err(e), _) => respond(e.status, "application/x-amz-json-1.1", e.json_body(), &id),
    };
    Ok(response)
}

async fn serve(
    state: &Arc<AppState>,
    conn: &Connection,
    req: Request<Incoming>,
    protocol: &Protocol,
    request_id: &str,
    facts: &mut crate::audit::Facts,
) -> Result<Served, ApiError> {
    if req.method() != Method::POST {
        return Err(ApiError {
            status: 405,
            code: "UnsupportedOperationException",
            message: "keyfence accepts only POST requests on this endpoint".into(),
            fence: None,
        });
    }
    let (parts, body) = req.into_parts();
    let (body, _permit) =
        limits::read_body(&parts.headers, body, &state.budget, state.body_read_timeout).await?;
    // A sealed node pins no node certificate, so it cannot check who forwarded
    // a request: it takes the request as the caller's own, and answers (after
    // the caller's signature, like any request) that it is sealed, which tells
    // a forwarding node to try another. Nothing but the seal operations runs
    // while sealed.
    facts.forwarded = match parts.headers.get(forward::FORWARDED_BY) {
        Some(from) if state.kms.get().is_ok() => {
            forward::check_forwarded_by(state.kms.cluster().as_deref(), conn, from)?;
            true
        }
        _ => false,
    };
    facts.body = body.clone();
    let caller = sigv4::verify(&parts, &body, &state.credentials, SystemTime::now())
        .inspect_err(|e| log_refused_signature(conn, &parts, e))?;
    facts.caller = Some(caller.clone());
    check_scope(&caller, state.kms.serves(&caller.region), protocol)?;
    match protocol {
        Protocol::Kms(name) => {
            let kms = state.kms.get()?; // a sealed node refuses every KMS request
            let op = api::kms::operation(name).ok_or_else(|| api::kms::unknown_operation(name))?;
            state.throttle.check(&caller.account_id, op.name, &body)?;
            let who =
                state
                    .authz
                    .caller(&caller.access_key_id, &caller.account_id, &caller.user_name);
            let origin = api::kms::Origin {
                source_ip: conn.peer.ip(),
                region: keyfence_core::Region::new(&caller.region),
            };
            let value = match api::kms::place(&kms, &caller.account_id, op, &body) {
                api::kms::Place::Worker => {
                    api::kms::serve(&kms, &state.authz, who.clone(), origin, op, &body)
                }
                api::kms::Place::BlockingPool => {
                    let (kms, state, who, body) = (
                        Arc::clone(&kms),
                        Arc::clone(state),
                        who.clone(),
                        body.clone(),
                    );
                    tokio::task::spawn_blocking(move || {
                        api::kms::serve(&kms, &state.authz, who, origin, op, &body)
                    })
                    .await
                    .map_err(|_| {
                        ApiError::from(keyfence_core::KmsError::Internal(
                            "request task failed".into(),
                        ))
                    })?
                }
                api::kms::Place::HeavyPool => {
                    let (kms, authz, who, body) = (
                        Arc::clone(&kms),
                        Arc::clone(&state.authz),
                        who.clone(),
                        body.clone(),
                    );
                    state
                        .heavy
                        .run(move || api::kms::serve(&kms, &authz, who, origin, op, &body))
                        .await
                        .map_err(api::messages::heavy_refused)?
                }
            };
            let value = match value {
                Ok(value) => value,
                Err(refused) => {
                    match refresh_and_retry(state, &kms, (who, origin), op, &body, refused).await {
                        Ok(value) => value,
                        Err(refused) => {
                            let forwarder = state.kms.forwarder();
                            // Boxed: only a refused request relays, and otherwise
                            // every request's future would carry the relay's too.
                            let relayed = Box::pin(forward::on_refusal(
                                forwarder.as_deref(),
                                &parts,
                                &body,
                                refused,
                            ))
                            .await;
                            return relayed.map(Served::Forwarded);
                        }
                    }
                }
            };
            let body = serde_json::to_vec(&value).expect("JSON values serialize");
            Ok(Served::Local("application/x-amz-json-1.1", body))
        }
        Protocol::Admin(op) if crate::seal::is_seal_operation(op) => {
            // Unsealing opens the KMS over the store: off the async workers.
            let (seal, op) = (state.seal.clone(), op.clone());
            let value = tokio::task::spawn_blocking(move || {
                crate::seal::handle(seal.as_deref(), &caller, &op, &body)
            })
            .await
            .map_err(|_| {
                ApiError::from(keyfence_core::KmsError::Internal("seal task failed".into()))
            })??;
            let body = serde_json::to_vec(&value).expect("JSON values serialize");
            Ok(Served::Local("application/x-amz-json-1.1", body))
        }
        Protocol::Admin(op) => {
            let (state, op) = (Arc::clone(state), op.clone());
            let kms = state.kms.get()?;
            let value = tokio::task::spawn_blocking(move || {
                let cluster = state.kms.cluster();
                let node = crate::admin::Node {
                    cluster: cluster.as_deref(),
                    kms: &kms,
                    approvals: state.approvals.as_deref(),
                    audit: state.audit.as_deref(),
                };
                crate::admin::handle(node, &caller, &op, &body)
            })
            .await
            .map_err(|_| {
                ApiError::from(keyfence_core::KmsError::Internal(
                    "admin task failed".into(),
                ))
            })??;
            let body = serde_json::to_vec(&value).expect("JSON values serialize");
            Ok(Served::Local("application/x-amz-json-1.1", body))
        }
        Protocol::Query => {
            let form = api::sts::parse_form(&body)?;
            let principal = state
                .authz
                .caller(&caller.access_key_id, &caller.account_id, &caller.user_name)
                .principal;
            Ok(Served::Local(
                "text/xml",
                api::sts::handle(&caller, &principal, &form, request_id)?,
            ))
        }
        Protocol::Unknown => Err(ApiError::new(
            "UnknownOperationException",
            "Missing or unrecognized X-Amz-Target header",
        )),
    }
}

/// Leaves one line in the log for a request refused for its credential (an unknown
/// access key id or a wrong signature), at most once per client address per minute.
/// The line names the access key id (an identifier, not a secret) and never the
/// signature or anything derived from the secret key.
fn log_refused_signature(conn: &Connection, parts: &hyper::http::request::Parts, e: &SigV4Error) {
    static LIMIT: OnceLock<LogLimiter> = OnceLock::new();
    let reason = match e {
        SigV4Error::UnrecognizedClient => "unknown access key id",
        SigV4Error::InvalidSignature => "signature does not match",
        _ => return,
    };
    if !LIMIT
        .get_or_init(LogLimiter::per_minute)
        .allow(conn.peer.ip())
    {
        return;
    }
    let access_key_id = parts
        .headers
        .get(hyper::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(access_key_id_of)
        .unwrap_or("none");
    tracing::warn!(peer = %conn.peer, access_key_id, reason, "refused request: {reason}");
}

/// The access key id of a SigV4 `Authorization` header (`… Credential=AKID/date/…`),
/// if it looks like one (letters and digits, at most 128 characters).
fn access_key_id_of(authorization: &str) -> Option<&str> {
    let rest = &authorization[authorization.find("Credential=")? + "Credential=".len()..];
    let id = rest.split('/').next()?;
    (!id.is_empty() && id.len() <= 128 && id.bytes().all(|b| b.is_ascii_alphanumeric()))
        .then_some(id)
}

/// A key fenced to a policy whose record this node has not installed yet
/// (keys arrive through the change feed, fence records by polling): reads the
/// cluster state once and, if it changed, retries here before forwarding.
async fn refresh_and_retry(
    state: &Arc<AppState>,
    kms: &Arc<Kms>,
    (who, origin): (crate::authz::Caller, api::kms::Origin),
    op: &'static api::kms::Operation,
    body: &Bytes,
    refused: ApiError,
) -> Result<serde_json::Value, ApiError> {
    let Some(cluster) = state.kms.cluster() else {
        return Err(refused);
    };
    if refused.fence.is_none() || !cluster.request_refresh_due() {
        return Err(refused);
    }
    let (state, kms, body) = (Arc::clone(state), Arc::clone(kms), body.clone());
    let retried = tokio::task::spawn_blocking(move || match cluster.refresh_for_request(&kms) {
        Ok(true) => Some(api::kms::serve(&kms, &state.authz, who, origin, op, &body)),
        _ => None,
    })
    .await
    .ok()
    .flatten();
    retried.unwrap_or(Err(refused))
}

/// The credential scope must name a region this node serves and the protocol's service.
fn check_scope(caller: &VerifiedCaller, served: bool, protocol: &Protocol) -> Result<(), ApiError> {
    if !served {
        return Err(ApiError::new(
            "InvalidSignatureException",
            format!(
                "Credential should be scoped to a valid region, not '{}'.",
                caller.region
            ),
        ));
    }
    let service = match protocol {
        Protocol::Query => "sts",
        _ => "kms",
    };
    if caller.service != service {
        return Err(ApiError::new(
            "InvalidSignatureException",
            format!("Credential should be scoped to correct service: '{service}'."),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_operation_is_labelled_by_its_name() {
        for op in api::kms::OPERATIONS {
            assert_eq!(
                metric_operation(&Protocol::Kms(op.name.to_string())),
                op.name
            );
        }
        assert_eq!(
            metric_operation(&Protocol::Kms("MadeUpOperation".into())),
            "unknown"
        );
        assert_eq!(metric_operation(&Protocol::Query), "sts");
    }

    /// The size of the future an async fn with three arguments returns.
    fn future_size<A, B, C, F: std::future::Future>(_: fn(A, B, C) -> F) -> usize {
        std::mem::size_of::<F>()
    }

    #[test]
    fn a_request_future_does_not_carry_the_forwarding_path() {
        // Every request's future is moved onto the heap when its connection
        // boxes it; the relay to a peer (with its TLS and HTTP/2 handshakes)
        // made it 9.7 KB before it was boxed on its own.
        let size = future_size(handle);
        assert!(size <= 4096, "http::handle's future is {size} bytes");
    }

    #[test]
    fn access_key_id_is_read_from_the_credential_only() {
        let header = "AWS4-HMAC-SHA256 Credential=AKIAEXAMPLE/20260101/us-east-1/kms/aws4_request, SignedHeaders=host, Signature=abcdef";
        assert_eq!(access_key_id_of(header), Some("AKIAEXAMPLE"));
        assert_eq!(access_key_id_of("Bearer token"), None);
        assert_eq!(access_key_id_of("AWS4-HMAC-SHA256 Credential=a b/x"), None);
    }

    #[test]
    fn request_ids_are_unique_and_uuid_shaped() {
        let (a, b) = (super::request_id(), super::request_id());
        assert_ne!(a, b);
        assert_eq!(a.len(), 36);
        assert_eq!(a.matches('-').count(), 4);
        assert_eq!(a[..19], b[..19], "one process, one prefix");
    }
}
