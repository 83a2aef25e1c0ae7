//! Key policies and grants over a real node: who may do what, AWS's error
//! shapes, grants with constraints, retire and revoke, cross-account use by
//! key ARN, explicit denies, and the metrics by outcome.

mod support;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use keyfence_server::config::{parse_toml, Config, ConfigFile, Overrides};
use keyfence_server::tls::ClientGroups;
use keyfence_server::Node;
use serde_json::{json, Value};
use support::{scrape, Client, Reply, Signer};

const OWNER: &str = "111122223333";
const OTHER: &str = "444455556666";

/// A node with three more credentials: alice (the owner's account, an
/// identity policy without KMS), bob (another account, kms:* on any key),
/// carol (another account, the default identity policy).
async fn node(dir: &std::path::Path) -> Node {
    let toml = format!(
        r#"
listen = "127.0.0.1:0"
metrics_listen = "127.0.0.1:0"
[[credentials]]
access_key_id = "AKIAALICE"
secret_access_key = "alice-secret"
account_id = "{OWNER}"
user_name = "alice"
identity_policy = '{{"Statement":{{"Effect":"Allow","Action":"s3:GetObject","Resource":"*"}}}}'
[[credentials]]
access_key_id = "AKIABOB"
secret_access_key = "bob-secret"
account_id = "{OTHER}"
user_name = "bob"
identity_policy = '{{"Statement":{{"Effect":"Allow","Action":"kms:*","Resource":"*"}}}}'
[[credentials]]
access_key_id = "AKIACAROL"
secret_access_key = "carol-secret"
account_id = "{OTHER}"
user_name = "carol"
"#
    );
    let file: ConfigFile = parse_toml(&toml, std::path::Path::new("t.toml")).unwrap();
    let config = Config::resolve(
        file,
        Overrides {
            data_dir: Some(dir.to_path_buf()),
            ..Default::default()
        },
    )
    .unwrap();
    Node::start(config).await.expect("node starts")
}

fn signer(id: &str, secret: &str) -> Signer {
    Signer {
        access_key_id: id.into(),
        secret: secret.into(),
        region: "us-east-1".into(),
        time: std::time::SystemTime::now(),
    }
}

fn ok(r: &Reply) -> Value {
    assert_eq!(r.status, 200, "{:?}", r.json());
    r.json()
}

fn denied(r: &Reply) -> String {
    assert_eq!(
        r.error_code().as_deref(),
        Some("AccessDeniedException"),
        "{:?}",
        r.json()
    );
    assert_eq!(r.status, 400);
    r.json()["message"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn policies_grants_and_cross_account_use() {
    let dir = tempfile::tempdir().unwrap();
    let node = node(&dir.path().join("data")).await;
    let client = Client::new(&node, ClientGroups::HybridOnly);
    let admin = Signer::of(&node);
    let alice = signer("AKIAALICE", "alice-secret");
    let bob = signer("AKIABOB", "bob-secret");
    let carol = signer("AKIACAROL", "carol-secret");
    let alice_arn = format!("arn:aws:iam::{OWNER}:user/alice");
    let bob_arn = format!("arn:aws:iam::{OTHER}:user/bob");

    let key = ok(&client.kms(&admin, "CreateKey", json!({})).await);
    let key_id = key["KeyMetadata"]["KeyId"].as_str().unwrap().to_string();
    let key_arn = key["KeyMetadata"]["Arn"].as_str().unwrap().to_string();

    // The default key policy, as AWS words it.
    let got = ok(&client
        .kms(
            &admin,
            "GetKeyPolicy",
            json!({"KeyId": key_id, "PolicyName": "default"}),
        )
        .await);
    let policy: Value = serde_json::from_str(got["Policy"].as_str().unwrap()).unwrap();
    assert_eq!(
        policy["Statement"][0]["Principal"]["AWS"],
        format!("arn:aws:iam::{OWNER}:root")
    );
    let names = ok(&client
        .kms(&admin, "ListKeyPolicies", json!({"KeyId": key_id}))
        .await);
    assert_eq!(names["PolicyNames"], json!(["default"]));

    // alice's identity policy allows no KMS action: the default key policy delegates to it.
    let encrypt = |ctx: Value| json!({"KeyId": key_id, "Plaintext": B64.encode(b"secret"), "EncryptionContext": ctx});
    let message = denied(
        &client
            .kms(&alice, "Encrypt", encrypt(json!({"purpose": "test"})))
            .await,
    );
    assert_eq!(
        message,
        format!("User: {alice_arn} is not authorized to perform: kms:Encrypt on resource: {key_arn} because no resource-based policy allows the kms:Encrypt action")
    );

    // A grant allows her, within its encryption-context constraint, at once.
    let grant = ok(&client
        .kms(
            &admin,
            "CreateGrant",
            json!({
            "KeyId": key_id, "GranteePrincipal": alice_arn, "RetiringPrincipal": alice_arn,
            "Operations": ["Encrypt", "Decrypt"], "Name": "alice-test",
            "Constraints": {"EncryptionContextEquals": {"purpose": "test"}}}),
        )
        .await);
    let (grant_id, token) = (
        grant["GrantId"].as_str().unwrap().to_string(),
        grant["GrantToken"].as_str().unwrap().to_string(),
    );
    assert_eq!(grant_id.len(), 64);
    let ct = ok(&client.kms(&alice, "Encrypt", json!({"KeyId": key_id, "Plaintext": B64.encode(b"secret"), "EncryptionContext": {"purpose": "test"}, "GrantTokens": [token]})).await);
    let ct = ct["CiphertextBlob"].as_str().unwrap().to_string();
    denied(
        &client
            .kms(&alice, "Encrypt", encrypt(json!({"purpose": "prod"})))
            .await,
    );
    denied(&client.kms(&alice, "GenerateDataKey", json!({"KeyId": key_id, "KeySpec": "AES_256", "EncryptionContext": {"purpose": "test"}})).await);
    let plain = ok(&client
        .kms(
            &alice,
            "Decrypt",
            json!({"CiphertextBlob": ct, "EncryptionContext": {"purpose": "test"}}),
        )
        .await);
    assert_eq!(plain["Plaintext"], B64.encode(b"secret"));

    // The same Name and parameters: the same grant.
    let again = ok(&client
        .kms(
            &admin,
            "CreateGrant",
            json!({
            "KeyId": key_id, "GranteePrincipal": alice_arn, "RetiringPrincipal": alice_arn,
            "Operations": ["Encrypt", "Decrypt"], "Name": "alice-test",
            "Constraints": {"EncryptionContextEquals": {"purpose": "test"}}}),
        )
        .await);
    assert_eq!(again["GrantId"], grant_id);
    let listed = ok(&client
        .kms(&admin, "ListGrants", json!({"KeyId": key_id}))
        .await);
    assert_eq!(listed["Grants"].as_array().unwrap().len(), 1);
    assert_eq!(
        listed["Grants"][0]["Constraints"]["EncryptionContextEquals"]["purpose"],
        "test"
    );
    assert_eq!(
        listed["Grants"][0]["IssuingAccount"],
        format!("arn:aws:iam::{OWNER}:root")
    );
    let retirable = ok(&client
        .kms(
            &admin,
            "ListRetirableGrants",
            json!({"RetiringPrincipal": alice_arn}),
        )
        .await);
    assert_eq!(retirable["Grants"][0]["GrantId"], grant_id);

    // alice retires it (she is its retiring principal); then she is refused again.
    ok(&client
        .kms(
            &alice,
            "RetireGrant",
            json!({"KeyId": key_id, "GrantId": grant_id}),
        )
        .await);
    denied(
        &client
            .kms(&alice, "Encrypt", encrypt(json!({"purpose": "test"})))
            .await,
    );
    let not_found = client
        .kms(
            &admin,
            "RevokeGrant",
            json!({"KeyId": key_id, "GrantId": grant_id}),
        )
        .await;
    assert_eq!(not_found.error_code().as_deref(), Some("NotFoundException"));

    // DryRun: every check, no grant.
    let dry = client
        .kms(&admin, "CreateGrant", json!({"KeyId": key_id, "GranteePrincipal": alice_arn, "Operations": ["Encrypt"], "DryRun": true}))
        .await;
    assert_eq!(
        dry.error_code().as_deref(),
        Some("DryRunOperationException")
    );
    denied(&client.kms(&alice, "Encrypt", encrypt(json!({}))).await);
    assert_eq!(
        ok(&client
            .kms(&admin, "ListGrants", json!({"KeyId": key_id}))
            .await)["Grants"],
        json!([])
    );

    // Revoke: by the admin, under the key policy.
    let g2 = ok(&client
        .kms(
            &admin,
            "CreateGrant",
            json!({"KeyId": key_id, "GranteePrincipal": alice_arn, "Operations": ["Encrypt"]}),
        )
        .await);
    ok(&client.kms(&alice, "Encrypt", encrypt(json!({}))).await);
    denied(
        &client
            .kms(
                &alice,
                "RetireGrant",
                json!({"GrantToken": g2["GrantToken"]}),
            )
            .await,
    );
    ok(&client
        .kms(
            &admin,
            "RevokeGrant",
            json!({"KeyId": key_id, "GrantId": g2["GrantId"]}),
        )
        .await);
    denied(&client.kms(&alice, "Encrypt", encrypt(json!({}))).await);

    // Another account: refused by ARN under the default key policy, NotFound by id.
    let by_arn = json!({"KeyId": key_arn, "Plaintext": B64.encode(b"x")});
    denied(&client.kms(&bob, "Encrypt", by_arn.clone()).await);
    let by_id = client
        .kms(
            &bob,
            "Encrypt",
            json!({"KeyId": key_id, "Plaintext": B64.encode(b"x")}),
        )
        .await;
    assert_eq!(by_id.error_code().as_deref(), Some("NotFoundException"));

    // A policy that lets bob's account in, and denies alice explicitly.
    let shared = json!({"Version": "2012-10-17", "Statement": [
        {"Sid": "Enable IAM User Permissions", "Effect": "Allow", "Principal": {"AWS": format!("arn:aws:iam::{OWNER}:root")}, "Action": "kms:*", "Resource": "*"},
        {"Sid": "External", "Effect": "Allow", "Principal": {"AWS": format!("arn:aws:iam::{OTHER}:root")}, "Action": ["kms:Encrypt", "kms:Decrypt", "kms:DescribeKey"], "Resource": "*"},
        {"Sid": "Not alice", "Effect": "Deny", "Principal": {"AWS": alice_arn}, "Action": "kms:*", "Resource": "*"}]})
    .to_string();
    ok(&client
        .kms(
            &admin,
            "PutKeyPolicy",
            json!({"KeyId": key_id, "PolicyName": "default", "Policy": shared}),
        )
        .await);
    let got = ok(&client
        .kms(&admin, "GetKeyPolicy", json!({"KeyId": key_id}))
        .await);
    assert_eq!(got["Policy"], shared, "returned as given");
    let ct = ok(&client.kms(&bob, "Encrypt", by_arn.clone()).await);
    assert_eq!(ct["KeyId"], key_arn);
    let plain = ok(&client
        .kms(
            &bob,
            "Decrypt",
            json!({"CiphertextBlob": ct["CiphertextBlob"]}),
        )
        .await);
    assert_eq!(plain["Plaintext"], B64.encode(b"x"));
    let by_id = client
        .kms(
            &bob,
            "Encrypt",
            json!({"KeyId": key_id, "Plaintext": B64.encode(b"x")}),
        )
        .await;
    assert_eq!(
        by_id.error_code().as_deref(),
        Some("NotFoundException"),
        "never by id or alias"
    );
    denied(
        &client
            .kms(
                &bob,
                "GenerateDataKey",
                json!({"KeyId": key_arn, "KeySpec": "AES_256"}),
            )
            .await,
    );
    let carol_says = denied(&client.kms(&carol, "Encrypt", by_arn.clone()).await);
    assert!(
        carol_says.contains(&format!("arn:aws:iam::{OTHER}:user/carol")),
        "{carol_says}"
    );

    // An explicit deny beats a grant.
    ok(&client
        .kms(
            &admin,
            "CreateGrant",
            json!({"KeyId": key_id, "GranteePrincipal": alice_arn, "Operations": ["Encrypt"]}),
        )
        .await);
    let message = denied(&client.kms(&alice, "Encrypt", encrypt(json!({}))).await);
    assert!(message.ends_with("with an explicit deny"), "{message}");
    let bob_grant = ok(&client.kms(&admin, "CreateGrant", json!({"KeyId": key_id, "GranteePrincipal": bob_arn, "Operations": ["GenerateDataKey"]})).await);
    ok(&client.kms(&bob, "GenerateDataKey", json!({"KeyId": key_arn, "KeySpec": "AES_256", "GrantTokens": [bob_grant["GrantToken"]]})).await);

    // Malformed and self-locking policies.
    let bad = client
        .kms(
            &admin,
            "PutKeyPolicy",
            json!({"KeyId": key_id, "Policy": "{\"Statement\": 3}"}),
        )
        .await;
    assert_eq!(
        bad.error_code().as_deref(),
        Some("MalformedPolicyDocumentException")
    );
    let locking = json!({"Statement": {"Effect": "Allow", "Principal": {"AWS": bob_arn}, "Action": "kms:*", "Resource": "*"}}).to_string();
    let refused = client
        .kms(
            &admin,
            "PutKeyPolicy",
            json!({"KeyId": key_id, "Policy": locking}),
        )
        .await;
    assert_eq!(
        refused.error_code().as_deref(),
        Some("MalformedPolicyDocumentException")
    );
    assert!(refused.json()["message"]
        .as_str()
        .unwrap()
        .contains("will not allow you to update the key policy"));
    let created = client
        .kms(&admin, "CreateKey", json!({"Policy": locking}))
        .await;
    assert_eq!(
        created.error_code().as_deref(),
        Some("MalformedPolicyDocumentException")
    );
    let created = ok(&client
        .kms(
            &admin,
            "CreateKey",
            json!({"Policy": locking, "BypassPolicyLockoutSafetyCheck": true}),
        )
        .await);
    let locked = created["KeyMetadata"]["KeyId"].as_str().unwrap();
    denied(
        &client
            .kms(&admin, "DescribeKey", json!({"KeyId": locked}))
            .await,
    );
    ok(&client
        .kms(
            &bob,
            "DescribeKey",
            json!({"KeyId": created["KeyMetadata"]["Arn"]}),
        )
        .await);

    // Refusals are counted by outcome.
    let metrics = scrape(&node).await;
    assert!(
        metrics.lines().any(|l| l.contains("operation=\"Encrypt\"")
            && l.contains("outcome=\"AccessDeniedException\"")),
        "{metrics}"
    );
}
