//! The fuzz targets: one function per parser of untrusted bytes. Each takes
//! arbitrary bytes and must return without panicking; the libFuzzer binaries
//! in `fuzz/fuzz_targets/` and the corpus replay test
//! (`crates/keyfence-server/tests/fuzz_replay.rs`) both call them.

use std::sync::{Arc, OnceLock};
use std::time::{Duration, UNIX_EPOCH};

use keyfence_core::{Kms, LocalRootKey, SystemClock};
use keyfence_crypto::asym::{self, xwing, WrappingAlgorithm};
use keyfence_crypto::blob::{self, CiphertextBlob};
use keyfence_crypto::SymmetricKey;
use keyfence_server::api::kms as api;
use keyfence_server::config::{parse_toml, ConfigFile, CredentialsFile};
use keyfence_server::sigv4::{self, Credential, CredentialStore};
use zeroize::Zeroizing;

/// A fuzz target: arbitrary bytes in, no panic out.
pub type Target = fn(&[u8]);

/// Every target by name, as `scripts/fuzz.sh` and the replay test name them.
pub const TARGETS: &[(&str, Target)] = &[
    ("sigv4", sigv4_request),
    ("json_request", json_request),
    ("ciphertext_blob", ciphertext_blob),
    ("import_wrapping", import_wrapping),
    ("root_key_file", root_key_file),
    ("config_files", config_files),
    ("abe_policy", abe_policy),
    ("abe_native", abe_native),
    ("abe_circl", abe_circl),
];

/// The access key of the fuzzing credential store.
pub const FUZZ_ACCESS_KEY: &str = "AKIAFUZZFUZZFUZZFUZZ";
/// Its secret.
pub const FUZZ_SECRET: &str = "fuzzfuzzfuzzfuzzfuzzfuzzfuzzfuzzfuzzfuzz";
/// The server time of the SigV4 target: 2026-01-01T00:00:00Z.
pub const FUZZ_EPOCH: u64 = 1_767_225_600;

fn text(data: &[u8]) -> &str {
    std::str::from_utf8(data).unwrap_or("")
}

/// SigV4: line 1 is the Authorization value, line 2 the path and query, then
/// `name: value` header lines, then an empty line and the body. Parses the
/// Authorization header, rebuilds the canonical request and verifies.
pub fn sigv4_request(data: &[u8]) {
    let _ = sigv4_verify(data);
}

/// [`sigv4_request`]'s work, with its outcome (`None`: not a request).
pub fn sigv4_verify(data: &[u8]) -> Option<Result<sigv4::VerifiedCaller, sigv4::SigV4Error>> {
    static STORE: OnceLock<CredentialStore> = OnceLock::new();
    let store = STORE.get_or_init(|| {
        CredentialStore::new([Credential {
            access_key_id: FUZZ_ACCESS_KEY.into(),
            secret_access_key: Zeroizing::new(FUZZ_SECRET.into()),
            account_id: "111122223333".into(),
            user_name: "fuzz".into(),
        }])
        .expect("one credential")
    });
    let (head, body) = match data.windows(2).position(|w| w == b"\n\n") {
        Some(at) => (&data[..at], &data[at + 2..]),
        None => (data, &[][..]),
    };
    let mut lines = head.split(|b| *b == b'\n');
    let authorization = lines.next().unwrap_or_default();
    let uri = text(lines.next().unwrap_or_default());
    let mut builder = hyper::Request::builder().method("POST");
    builder = builder.uri(if uri.starts_with('/') { uri } else { "/" });
    if let Ok(v) = hyper::header::HeaderValue::from_bytes(authorization) {
        builder = builder.header(hyper::header::AUTHORIZATION, v);
    }
    for line in lines {
        let Some(colon) = line.iter().position(|b| *b == b':') else {
            continue;
        };
        let name = hyper::header::HeaderName::from_bytes(&line[..colon]);
        let value = hyper::header::HeaderValue::from_bytes(line[colon + 1..].trim_ascii());
        if let (Ok(n), Ok(v)) = (name, value) {
            builder = builder.header(n, v);
        }
    }
    let (parts, ()) = builder.body(()).ok()?.into_parts();
    let now = UNIX_EPOCH + Duration::from_secs(FUZZ_EPOCH);
    Some(sigv4::verify(&parts, body, store, now))
}

/// A KMS whose keys the JSON target reaches through aliases: `alias/s`
/// (symmetric), `alias/e` (ECC P-256 signing), `alias/h` (HMAC-256).
fn fuzz_kms() -> &'static Kms {
    static KMS: OnceLock<(Kms, tempfile::TempDir)> = OnceLock::new();
    let (kms, _dir) = KMS.get_or_init(|| {
        let dir = tempfile::tempdir().expect("temporary directory");
        let store = keyfence_store::SqliteStore::open(&dir.path().join("fuzz.db")).expect("store");
        let root = LocalRootKey::new(SymmetricKey::generate().expect("key"));
        let kms =
            Kms::open(Arc::new(store), &root, Arc::new(SystemClock), "us-east-1").expect("kms");
        for (alias, spec, usage) in [
            ("alias/s", "SYMMETRIC_DEFAULT", "ENCRYPT_DECRYPT"),
            ("alias/e", "ECC_NIST_P256", "SIGN_VERIFY"),
            ("alias/h", "HMAC_256", "GENERATE_VERIFY_MAC"),
        ] {
            let body = serde_json::json!({"KeySpec": spec, "KeyUsage": usage});
            let op = api::operation("CreateKey").expect("CreateKey");
            let made = api::handle(&kms, ACCOUNT, op, body.to_string().as_bytes()).expect("key");
            let id = made["KeyMetadata"]["KeyId"]
                .as_str()
                .expect("id")
                .to_string();
            let body = serde_json::json!({"AliasName": alias, "TargetKeyId": id});
            let op = api::operation("CreateAlias").expect("CreateAlias");
            api::handle(&kms, ACCOUNT, op, body.to_string().as_bytes()).expect("alias");
        }
        (kms, dir)
    });
    kms
}

const ACCOUNT: &str = "111122223333";

/// Operations without side effects (writes would make runs slow and
/// unrepeatable; key-pair generation is slow by design).
const READ_ONLY: &[&str] = &[
    "Encrypt",
    "Decrypt",
    "ReEncrypt",
    "GenerateDataKey",
    "GenerateDataKeyWithoutPlaintext",
    "GenerateRandom",
    "DescribeKey",
    "ListKeys",
    "ListAliases",
    "GetKeyRotationStatus",
    "ListKeyRotations",
    "ListResourceTags",
    "Sign",
    "Verify",
    "GetPublicKey",
    "GenerateMac",
    "VerifyMac",
];

/// JSON request shapes: byte 0 picks a read-only operation, the rest is its
/// body, parsed and run against a real KMS. A 5xx is a bug.
pub fn json_request(data: &[u8]) {
    let Some((&pick, body)) = data.split_first() else {
        return;
    };
    let name = READ_ONLY[usize::from(pick) % READ_ONLY.len()];
    let op = api::operation(name).expect("a row of the table");
    if let Err(e) = api::handle(fuzz_kms(), ACCOUNT, op, body) {
        assert!(e.status < 500, "{name}: {} {}", e.code, e.message);
    }
}

/// The ciphertext blob: parse, then open with a fixed backing key.
pub fn ciphertext_blob(data: &[u8]) {
    static KEY: OnceLock<SymmetricKey> = OnceLock::new();
    let key = KEY.get_or_init(|| SymmetricKey::from_slice(&[7; 32]).expect("32 bytes"));
    if let Ok(parsed) = CiphertextBlob::parse(data) {
        assert_eq!(
            parsed.to_bytes(),
            data,
            "a parsed blob re-encodes to itself"
        );
        let _ = blob::open(key, &parsed, b"{}");
    }
}

/// Import wrapping formats: byte 0 picks RSA-OAEP, RSA+AES-KWP (SHA-1 or
/// SHA-256) or X-Wing; the rest is the wrapped material.
pub fn import_wrapping(data: &[u8]) {
    static RSA: OnceLock<asym::PrivateKey> = OnceLock::new();
    static XWING: OnceLock<xwing::XWingPrivateKey> = OnceLock::new();
    let Some((&pick, wrapped)) = data.split_first() else {
        return;
    };
    let algorithm = match pick % 5 {
        0 => WrappingAlgorithm::RsaesOaepSha1,
        1 => WrappingAlgorithm::RsaesOaepSha256,
        2 => WrappingAlgorithm::RsaAesKeyWrapSha1,
        3 => WrappingAlgorithm::RsaAesKeyWrapSha256,
        _ => {
            let key = XWING.get_or_init(|| xwing::XWingPrivateKey::generate().expect("X-Wing"));
            let _ = xwing::unwrap_key_material(key, wrapped);
            return;
        }
    };
    let key =
        RSA.get_or_init(|| asym::PrivateKey::generate(asym::KeySpec::Rsa2048).expect("RSA-2048"));
    let _ = asym::unwrap_import(key, algorithm, wrapped);
    let _ = asym::aes_kwp_unwrap(&[3; 32], wrapped);
}

/// The root key file (without a passphrase: a sealed file is refused before
/// its iteration count is used).
pub fn root_key_file(data: &[u8]) {
    let _ = keyfence_server::root_key::parse(data, None);
}

/// credentials.toml and the configuration file.
pub fn config_files(data: &[u8]) {
    let path = std::path::Path::new("fuzz.toml");
    let text = text(data);
    if let Ok(file) = parse_toml::<CredentialsFile>(text, path) {
        for entry in file.credentials {
            let _ = entry.into_credential();
        }
    }
    if let Ok(file) = parse_toml::<ConfigFile>(text, path) {
        // Resolving checks every value ([limits], [throttle], the store, ...).
        let _ = keyfence_server::Config::resolve(file, Default::default());
    }
}

/// The ABE policy and attribute-set parsers (text).
pub fn abe_policy(data: &[u8]) {
    let text = text(data);
    if let Ok(policy) = keyfence_abe::Policy::parse(text) {
        let bytes = policy.to_bytes();
        assert!(
            keyfence_abe::Policy::from_bytes(&bytes).is_ok(),
            "round trip"
        );
    }
    let _ = keyfence_abe::Attributes::parse(text);
}

/// The native ABE encodings: byte 0 picks the type.
pub fn abe_native(data: &[u8]) {
    use keyfence_abe::{
        AttributeKey, Attributes, Ciphertext, MasterPublicKey, MasterSecretKey, Policy,
    };
    let Some((&pick, bytes)) = data.split_first() else {
        return;
    };
    match pick % 6 {
        0 => drop(Policy::from_bytes(bytes)),
        1 => drop(Attributes::from_bytes(bytes)),
        2 => drop(MasterPublicKey::from_bytes(bytes)),
        3 => drop(MasterSecretKey::from_bytes(bytes)),
        4 => drop(AttributeKey::from_bytes(bytes)),
        _ => drop(Ciphertext::from_bytes(bytes)),
    }
}

/// The CIRCL-compatible ABE encodings: byte 0 picks the type.
pub fn abe_circl(data: &[u8]) {
    use keyfence_abe::{AttributeKey, Ciphertext, MasterPublicKey, MasterSecretKey};
    let Some((&pick, bytes)) = data.split_first() else {
        return;
    };
    match pick % 4 {
        0 => drop(MasterPublicKey::from_circl_bytes(bytes)),
        1 => drop(MasterSecretKey::from_circl_bytes(bytes)),
        2 => drop(AttributeKey::from_circl_bytes(bytes)),
        _ => drop(Ciphertext::from_circl_bytes(bytes)),
    }
}
