//! Request-rate quotas per account, as AWS KMS applies them: the
//! cryptographic operations share one quota per kind of key (symmetric, RSA,
//! ECC, ML-DSA), the data-key-pair operations have one quota per pair spec,
//! and every key-management operation has its own. A request over its quota is
//! refused with `ThrottlingException` (HTTP 400), which the AWS SDKs retry.
//!
//! Off by default: a self-hosted node should not be slower than its hardware.
//! When on, each (account, quota) pair is a token bucket holding one second
//! of its rate (at least one request), kept as a single atomic "theoretical
//! arrival time" (GCRA): taking a token is one compare-and-swap, with no lock.
//! The accounts are the node's credentials, known at start, so the table of
//! buckets is built once and only read afterwards.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use serde::Deserialize;

use crate::api::{messages, ApiError};
use crate::metrics::Metrics;

/// Every quota: its name (a metrics label and the key in `[throttle.rates]`)
/// and AWS's default rate in requests per second.
///
/// The shared cryptographic quotas: `symmetric` (AWS: 5,500 to 100,000
/// depending on the Region; 10,000 here, the rate of e.g. Europe (London)),
/// `rsa`, `ecc` and `ml_dsa` (1,000 each). `ml_kem` is keyfence's own (AWS has
/// no ML-KEM keys); it takes the ML-DSA rate. The key-management rates are
/// AWS's per-operation defaults; RotateKeyOnDemand and ListKeyRotations,
/// absent from AWS's table, take the rates of EnableKeyRotation and
/// GetKeyRotationStatus.
pub const QUOTAS: &[(&str, f64)] = &[
    ("symmetric", 10_000.0),
    ("rsa", 1_000.0),
    ("ecc", 1_000.0),
    ("ml_dsa", 1_000.0),
    ("ml_kem", 1_000.0),
    ("GenerateDataKeyPair (ECC_NIST_P256)", 25.0),
    ("GenerateDataKeyPair (ECC_NIST_P384)", 10.0),
    ("GenerateDataKeyPair (ECC_NIST_P521)", 5.0),
    ("GenerateDataKeyPair (ECC_SECG_P256K1)", 25.0),
    ("GenerateDataKeyPair (RSA_2048)", 1.0),
    ("GenerateDataKeyPair (RSA_3072)", 0.5),
    ("GenerateDataKeyPair (RSA_4096)", 0.1),
    ("CancelKeyDeletion", 5.0),
    ("CreateAlias", 5.0),
    ("CreateKey", 5.0),
    ("DeleteAlias", 15.0),
    ("DeleteImportedKeyMaterial", 5.0),
    ("DescribeKey", 2_000.0),
    ("DisableKey", 5.0),
    ("DisableKeyRotation", 5.0),
    ("EnableKey", 5.0),
    ("EnableKeyRotation", 15.0),
    ("GetKeyRotationStatus", 1_000.0),
    ("GetParametersForImport", 0.25),
    ("GetPublicKey", 2_000.0),
    ("ImportKeyMaterial", 5.0),
    ("ListAliases", 500.0),
    ("ListKeyRotations", 1_000.0),
    ("ListKeys", 500.0),
    ("ListResourceTags", 2_000.0),
    ("RotateKeyOnDemand", 15.0),
    ("ScheduleKeyDeletion", 15.0),
    ("TagResource", 10.0),
    ("UntagResource", 5.0),
    ("UpdateAlias", 5.0),
    ("UpdateKeyDescription", 5.0),
];

/// Index of a quota in [`QUOTAS`].
fn index(name: &str) -> Option<usize> {
    QUOTAS.iter().position(|(n, _)| *n == name)
}

const SYMMETRIC: usize = 0;
const RSA: usize = 1;
const ECC: usize = 2;
const ML_DSA: usize = 3;
const ML_KEM: usize = 4;
const PAIR_P256: usize = 5;

/// The members that decide which shared quota a cryptographic request uses.
#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
struct Algorithms<'a> {
    #[serde(borrow)]
    encryption_algorithm: Option<&'a str>,
    #[serde(borrow)]
    destination_encryption_algorithm: Option<&'a str>,
    #[serde(borrow)]
    signing_algorithm: Option<&'a str>,
    #[serde(borrow)]
    key_pair_spec: Option<&'a str>,
}

/// The quota a request for `operation` with `body` counts against; `None` for
/// an operation without one. The kind of key comes from the algorithm the
/// request names (AWS requires it for every asymmetric key), so no key is
/// looked up; a body that does not parse counts as the operation's common
/// case (it is refused right after, but it was a request).
pub fn quota_of(operation: &str, body: &[u8]) -> Option<usize> {
    let algorithms = || serde_json::from_slice::<Algorithms<'_>>(body).unwrap_or_default();
    let q = match operation {
        "Encrypt" | "Decrypt" => match algorithms().encryption_algorithm {
            Some(a) if a.starts_with("RSAES_") => RSA,
            _ => SYMMETRIC,
        },
        "ReEncrypt" => match algorithms().destination_encryption_algorithm {
            Some(a) if a.starts_with("RSAES_") => RSA,
            _ => SYMMETRIC,
        },
        "GenerateDataKey"
        | "GenerateDataKeyWithoutPlaintext"
        | "GenerateMac"
        | "VerifyMac"
        | "GenerateRandom" => SYMMETRIC,
        "Sign" | "Verify" => match algorithms().signing_algorithm {
            Some(a) if a.starts_with("RSASSA_") => RSA,
            Some(a) if a.starts_with("ML_DSA_") => ML_DSA,
            _ => ECC,
        },
        "DeriveSharedSecret" => ECC,
        "Encapsulate" | "Decapsulate" => ML_KEM,
        "GenerateDataKeyPair" | "GenerateDataKeyPairWithoutPlaintext" => {
            match algorithms().key_pair_spec {
                Some(spec) => QUOTAS
                    .iter()
                    .position(|(n, _)| {
                        n.strip_prefix("GenerateDataKeyPair (")
                            .and_then(|r| r.strip_suffix(')'))
                            == Some(spec)
                    })
                    .unwrap_or(PAIR_P256),
                None => PAIR_P256,
            }
        }
        other => return index(other),
    };
    Some(q)
}

/// The `[throttle]` table of the configuration file.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ThrottleFile {
    /// Whether quotas apply (default false).
    pub enabled: Option<bool>,
    /// Rates overriding AWS's defaults, in requests per second, by quota name
    /// (see [`QUOTAS`]): e.g. `symmetric = 50000`, `CreateKey = 20`.
    #[serde(default)]
    pub rates: BTreeMap<String, f64>,
}

impl ThrottleFile {
    /// The settings this table describes, checked.
    pub fn resolve(self) -> Result<Throttling, String> {
        let mut throttling = Throttling {
            enabled: self.enabled.unwrap_or(false),
            ..Throttling::default()
        };
        for (name, rate) in self.rates {
            throttling.set_rate(&name, rate)?;
        }
        Ok(throttling)
    }
}

/// Throttling settings: on or off, and a rate per quota.
#[derive(Debug, Clone, PartialEq)]
pub struct Throttling {
    /// Whether quotas apply.
    pub enabled: bool,
    /// Requests per second of each quota, in the order of [`QUOTAS`].
    pub rates: Vec<f64>,
}

impl Default for Throttling {
    /// Off, with AWS's default rates.
    fn default() -> Self {
        Self {
            enabled: false,
            rates: QUOTAS.iter().map(|(_, r)| *r).collect(),
        }
    }
}

impl Throttling {
    /// Sets the rate of the quota `name` (requests per second, more than zero).
    pub fn set_rate(&mut self, name: &str, rate: f64) -> Result<(), String> {
        let i = index(name).ok_or_else(|| {
            format!(
                "throttle.rates: no quota named {:?} (quotas: {})",
                name.chars().take(64).collect::<String>(),
                QUOTAS
                    .iter()
                    .map(|(n, _)| *n)
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        })?;
        if !(rate.is_finite() && rate > 0.0) {
            return Err(format!(
                "throttle.rates.{name} must be a number of requests per second above zero"
            ));
        }
        self.rates[i] = rate;
        Ok(())
    }
}

/// A rate as the bucket uses it: nanoseconds per request, and how far ahead
/// of now the bucket may be booked (its capacity: one second, at least one
/// request).
#[derive(Debug, Clone, Copy)]
struct Rate {
    interval_ns: u64,
    tolerance_ns: u64,
}

impl Rate {
    fn new(per_second: f64) -> Self {
        let interval_ns = (1e9 / per_second).clamp(1.0, u64::MAX as f64 / 4.0) as u64;
        let capacity = per_second.floor().max(1.0);
        let tolerance_ns = (interval_ns as f64 * capacity).min(u64::MAX as f64 / 4.0) as u64;
        Self {
            interval_ns,
            tolerance_ns,
        }
    }
}

/// One token bucket: the time (ns since the throttle's epoch) at which it
/// will be empty again. On its own cache line, so that an account's quotas do
/// not slow each other.
#[derive(Debug, Default)]
#[repr(align(64))]
struct Bucket {
    tat_ns: AtomicU64,
}

impl Bucket {
    /// Takes one token at `now_ns`; false if the bucket is empty.
    fn take(&self, rate: Rate, now_ns: u64) -> bool {
        let mut tat = self.tat_ns.load(Ordering::Relaxed);
        loop {
            let next = tat.max(now_ns) + rate.interval_ns;
            if next - now_ns > rate.tolerance_ns {
                return false;
            }
            match self
                .tat_ns
                .compare_exchange_weak(tat, next, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => return true,
                Err(seen) => tat = seen,
            }
        }
    }
}

/// The quotas of a node: a bucket per (account, quota), or nothing when off.
#[derive(Debug)]
pub struct Throttle {
    epoch: Instant,
    rates: Vec<Rate>,
    accounts: HashMap<String, Box<[Bucket]>>,
    metrics: Arc<Metrics>,
}

impl Throttle {
    /// Quotas for `accounts` (the accounts of the node's credentials) with
    /// `settings`; when they are off, every request passes without a look.
    pub fn new<'a>(
        settings: &Throttling,
        accounts: impl IntoIterator<Item = &'a str>,
        metrics: Arc<Metrics>,
    ) -> Self {
        let accounts = if settings.enabled {
            accounts
                .into_iter()
                .map(|a| {
                    let buckets = QUOTAS.iter().map(|_| Bucket::default()).collect();
                    (a.to_owned(), buckets)
                })
                .collect()
        } else {
            HashMap::new()
        };
        Self {
            epoch: Instant::now(),
            rates: settings.rates.iter().copied().map(Rate::new).collect(),
            accounts,
            metrics,
        }
    }

    fn now_ns(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX / 4)
    }

    /// Counts a request of `account` for the KMS operation `operation`;
    /// `ThrottlingException` if its quota is used up for now. An account the
    /// node has no credential for is never throttled (it cannot have signed).
    pub fn check(&self, account: &str, operation: &str, body: &[u8]) -> Result<(), ApiError> {
        if self.accounts.is_empty() {
            return Ok(());
        }
        let Some(buckets) = self.accounts.get(account) else {
            return Ok(());
        };
        let Some(q) = quota_of(operation, body) else {
            return Ok(());
        };
        if buckets[q].take(self.rates[q], self.now_ns()) {
            Ok(())
        } else {
            self.metrics.record_throttled(QUOTAS[q].0);
            Err(messages::rate_exceeded())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn on(rates: &[(&str, f64)]) -> Throttling {
        let mut t = Throttling {
            enabled: true,
            ..Throttling::default()
        };
        for (n, r) in rates {
            t.set_rate(n, *r).unwrap();
        }
        t
    }

    #[test]
    fn operations_count_against_the_quota_of_their_kind_of_key() {
        let q = |op: &str, body: &str| quota_of(op, body.as_bytes()).map(|i| QUOTAS[i].0);
        assert_eq!(
            q("Encrypt", r#"{"KeyId":"k","Plaintext":"AA=="}"#),
            Some("symmetric")
        );
        assert_eq!(
            q(
                "Decrypt",
                r#"{"KeyId":"k","EncryptionAlgorithm":"RSAES_OAEP_SHA_256"}"#
            ),
            Some("rsa")
        );
        assert_eq!(
            q(
                "ReEncrypt",
                r#"{"DestinationEncryptionAlgorithm":"RSAES_OAEP_SHA_1"}"#
            ),
            Some("rsa")
        );
        assert_eq!(
            q("Sign", r#"{"SigningAlgorithm":"ECDSA_SHA_256"}"#),
            Some("ecc")
        );
        assert_eq!(
            q("Verify", r#"{"SigningAlgorithm":"ML_DSA_SHAKE_256"}"#),
            Some("ml_dsa")
        );
        assert_eq!(
            q("Sign", r#"{"SigningAlgorithm":"RSASSA_PSS_SHA_256"}"#),
            Some("rsa")
        );
        assert_eq!(q("GenerateRandom", "{}"), Some("symmetric"));
        assert_eq!(q("GenerateMac", "not json"), Some("symmetric"));
        assert_eq!(
            q("GenerateDataKeyPair", r#"{"KeyPairSpec":"RSA_4096"}"#),
            Some("GenerateDataKeyPair (RSA_4096)")
        );
        assert_eq!(
            q(
                "GenerateDataKeyPairWithoutPlaintext",
                r#"{"KeyPairSpec":"nope"}"#
            ),
            Some("GenerateDataKeyPair (ECC_NIST_P256)")
        );
        assert_eq!(q("CreateKey", "{}"), Some("CreateKey"));
        assert_eq!(q("Encapsulate", "{}"), Some("ml_kem"));
        assert_eq!(q("MadeUp", "{}"), None);
    }

    #[test]
    fn a_burst_beyond_the_rate_is_refused_and_refills() {
        let throttle = Throttle::new(
            &on(&[("CreateKey", 5.0)]),
            ["111122223333", "444455556666"],
            Metrics::new(),
        );
        let (a, b) = (
            &throttle.accounts["111122223333"],
            &throttle.accounts["444455556666"],
        );
        let ck = index("CreateKey").unwrap();
        let rate = throttle.rates[ck];
        let t0 = 1_000_000_000;
        let passed = (0..20).filter(|_| a[ck].take(rate, t0)).count();
        assert_eq!(passed, 5, "one second of the rate at once");
        assert!(b[ck].take(rate, t0), "another account has its own bucket");
        assert!(
            a[SYMMETRIC].take(throttle.rates[SYMMETRIC], t0),
            "and another quota"
        );
        assert!(
            !a[ck].take(rate, t0 + 100_000_000),
            "0.1 s: not yet a token"
        );
        assert!(a[ck].take(rate, t0 + 200_000_000), "0.2 s: one token back");
        assert!(!a[ck].take(rate, t0 + 200_000_000));
        let later = t0 + 10_000_000_000;
        assert_eq!(
            (0..20).filter(|_| a[ck].take(rate, later)).count(),
            5,
            "full again, not more"
        );
    }

    #[test]
    fn slow_rates_allow_one_request_per_interval() {
        let rate = Rate::new(0.25);
        let bucket = Bucket::default();
        assert!(bucket.take(rate, 10));
        assert!(!bucket.take(rate, 10 + 3_900_000_000));
        assert!(bucket.take(rate, 10 + 4_000_000_000));
    }

    #[test]
    fn check_refuses_with_aws_throttling_and_counts_it() {
        let metrics = Metrics::new();
        let throttle = Throttle::new(&on(&[("ListKeys", 1.0)]), ["111122223333"], metrics.clone());
        assert!(throttle.check("111122223333", "ListKeys", b"{}").is_ok());
        let e = throttle
            .check("111122223333", "ListKeys", b"{}")
            .unwrap_err();
        assert_eq!((e.status, e.code), (400, "ThrottlingException"));
        assert!(metrics
            .encode()
            .contains(r#"keyfence_throttled_requests_total{quota="ListKeys"} 1"#));
        let off = Throttle::new(&Throttling::default(), ["111122223333"], Metrics::new());
        assert!((0..100).all(|_| off.check("111122223333", "ListKeys", b"{}").is_ok()));
    }

    #[test]
    fn the_table_parses_and_bad_rates_are_named() {
        let file: ThrottleFile =
            toml::from_str("enabled = true\n[rates]\nsymmetric = 50000\nCreateKey = 0.5\n")
                .unwrap();
        let t = file.resolve().unwrap();
        assert!(t.enabled);
        assert_eq!(t.rates[SYMMETRIC], 50_000.0);
        assert_eq!(t.rates[index("CreateKey").unwrap()], 0.5);
        assert_eq!(t.rates[RSA], 1_000.0);
        assert!(!ThrottleFile::default().resolve().unwrap().enabled);
        let bad: ThrottleFile = toml::from_str("[rates]\nCreatKey = 5\n").unwrap();
        assert!(bad.resolve().unwrap_err().contains("CreatKey"));
        let zero: ThrottleFile = toml::from_str("[rates]\nrsa = 0\n").unwrap();
        assert!(zero.resolve().unwrap_err().contains("rsa"));
    }
}
