//! The evaluator against the AWS KMS Developer Guide's example key policies
//! (default key policy, the console's key-user and key-administrator
//! statements, encryption-context and source-IP conditions, cross-account
//! use) and the IAM condition operators' documented semantics.

use std::collections::BTreeMap;

use super::*;
use crate::Timestamp;

const KEY: &str = "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab";
const OWNER: &str = "111122223333";
const NOW: Timestamp = Timestamp(1_767_225_600_000); // 2026-01-01T00:00:00Z

fn alice() -> Principal {
    Principal::user(OWNER, "alice")
}

fn bob_elsewhere() -> Principal {
    Principal::user("444455556666", "bob")
}

fn key_policy(text: &str) -> Policy {
    Policy::parse(text, PolicyKind::Key).unwrap()
}

fn identity(text: &str) -> Policy {
    Policy::parse(text, PolicyKind::Identity).unwrap()
}

/// An identity policy that allows nothing of KMS.
fn no_kms() -> Policy {
    identity(r#"{"Statement":{"Effect":"Allow","Action":"s3:GetObject","Resource":"*"}}"#)
}

fn decide(
    who: &Principal,
    action: &str,
    key_policy: Option<&Policy>,
    identity: &Policy,
    grants: &[Grant],
    setup: impl FnOnce(&mut ConditionContext),
) -> Decision {
    let mut context = ConditionContext::new(who, NOW);
    setup(&mut context);
    let req = Request {
        principal: who,
        action,
        resource: KEY,
        resource_account: Some(OWNER),
        context: &context,
    };
    evaluate(&req, key_policy, identity, grants)
}

fn ctx(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn default_key_policy_delegates_to_identity_policies() {
    let default = key_policy(&default_key_policy(OWNER));
    let admin = Policy::default_identity(OWNER);
    for p in [None, Some(&default)] {
        assert_eq!(
            decide(&alice(), "kms:Encrypt", p, &admin, &[], |_| {}),
            Decision::Allow
        );
        assert_eq!(
            decide(&alice(), "kms:Encrypt", p, &no_kms(), &[], |_| {}),
            Decision::ImplicitDeny,
            "the default key policy alone allows no user"
        );
        let root = Principal::parse_arn("arn:aws:iam::111122223333:root").unwrap();
        assert_eq!(
            decide(&root, "kms:PutKeyPolicy", p, &no_kms(), &[], |_| {}),
            Decision::Allow
        );
        let bob = bob_elsewhere();
        let bob_admin =
            identity(r#"{"Statement":{"Effect":"Allow","Action":"kms:*","Resource":"*"}}"#);
        assert_eq!(
            decide(&bob, "kms:Encrypt", p, &bob_admin, &[], |_| {}),
            Decision::ImplicitDeny,
            "another account needs the key policy too"
        );
    }
    let deny_decrypt = identity(
        r#"{"Version":"2012-10-17","Statement":[
            {"Effect":"Allow","Action":"kms:*","Resource":"*"},
            {"Effect":"Deny","Action":"kms:Decrypt","Resource":"*"}]}"#,
    );
    assert_eq!(
        decide(&alice(), "kms:Decrypt", None, &deny_decrypt, &[], |_| {}),
        Decision::ExplicitDeny
    );
    assert_eq!(
        decide(&alice(), "kms:Encrypt", None, &deny_decrypt, &[], |_| {}),
        Decision::Allow
    );
}

/// The console's default policy: key administrators and key users by ARN.
const CONSOLE_POLICY: &str = r#"{
  "Id": "key-consolepolicy-3",
  "Version": "2012-10-17",
  "Statement": [
    {"Sid": "Enable IAM User Permissions", "Effect": "Allow",
     "Principal": {"AWS": "arn:aws:iam::111122223333:root"}, "Action": "kms:*", "Resource": "*"},
    {"Sid": "Allow access for Key Administrators", "Effect": "Allow",
     "Principal": {"AWS": ["arn:aws:iam::111122223333:role/KMSAdminRole"]},
     "Action": ["kms:Create*", "kms:Describe*", "kms:Enable*", "kms:List*", "kms:Put*",
                "kms:Update*", "kms:Revoke*", "kms:Disable*", "kms:Get*", "kms:Delete*",
                "kms:TagResource", "kms:UntagResource", "kms:ScheduleKeyDeletion",
                "kms:CancelKeyDeletion"],
     "Resource": "*"},
    {"Sid": "Allow use of the key", "Effect": "Allow",
     "Principal": {"AWS": "arn:aws:iam::111122223333:user/alice"},
     "Action": ["kms:Encrypt", "kms:Decrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:DescribeKey"],
     "Resource": "*"},
    {"Sid": "Allow attachment of persistent resources", "Effect": "Allow",
     "Principal": {"AWS": "arn:aws:iam::111122223333:user/alice"},
     "Action": ["kms:CreateGrant", "kms:ListGrants", "kms:RevokeGrant"], "Resource": "*",
     "Condition": {"Bool": {"kms:GrantIsForAWSResource": "true"}}}
  ]
}"#;

#[test]
fn console_policy_key_users_and_administrators() {
    let p = key_policy(CONSOLE_POLICY);
    let none = no_kms();
    for action in [
        "kms:Encrypt",
        "kms:ReEncryptFrom",
        "kms:GenerateDataKeyWithoutPlaintext",
    ] {
        assert_eq!(
            decide(&alice(), action, Some(&p), &none, &[], |_| {}),
            Decision::Allow,
            "{action}"
        );
    }
    assert_eq!(
        decide(
            &alice(),
            "kms:ScheduleKeyDeletion",
            Some(&p),
            &none,
            &[],
            |_| {}
        ),
        Decision::ImplicitDeny
    );
    assert_eq!(
        decide(&alice(), "kms:CreateGrant", Some(&p), &none, &[], |c| {
            c.set(keys::GRANT_IS_FOR_AWS_RESOURCE, "false")
        }),
        Decision::ImplicitDeny
    );
    assert_eq!(
        decide(&alice(), "kms:CreateGrant", Some(&p), &none, &[], |c| {
            c.set(keys::GRANT_IS_FOR_AWS_RESOURCE, "TRUE")
        }),
        Decision::Allow,
        "Bool ignores case"
    );
    let admin = Principal::parse_arn("arn:aws:iam::111122223333:role/KMSAdminRole").unwrap();
    assert_eq!(
        decide(&admin, "kms:PutKeyPolicy", Some(&p), &none, &[], |_| {}),
        Decision::Allow
    );
    assert_eq!(
        decide(&admin, "kms:Decrypt", Some(&p), &none, &[], |_| {}),
        Decision::ImplicitDeny
    );
    assert_eq!(
        decide(
            &admin,
            "kms:Decrypt",
            Some(&p),
            &Policy::default_identity(OWNER),
            &[],
            |_| {}
        ),
        Decision::Allow,
        "the root statement delegates to the role's identity policy"
    );
}

#[test]
fn encryption_context_conditions() {
    let p = key_policy(
        r#"{"Version":"2012-10-17","Statement":[{
          "Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:user/alice"},
          "Action":["kms:Encrypt","kms:Decrypt"],"Resource":"*",
          "Condition":{"StringEquals":{"kms:EncryptionContext:Department":"IT"},
                       "ForAllValues:StringEquals":{"kms:EncryptionContextKeys":["Department","Project"]}}}]}"#,
    );
    let with = |pairs: &'static [(&str, &str)]| {
        move |c: &mut ConditionContext| c.set_encryption_context(&ctx(pairs))
    };
    let none = no_kms();
    let d = |f| decide(&alice(), "kms:Encrypt", Some(&p), &none, &[], f);
    assert_eq!(d(Box::new(with(&[("Department", "IT")]))), Decision::Allow);
    assert_eq!(
        d(Box::new(with(&[("Department", "IT"), ("Project", "x")]))),
        Decision::Allow
    );
    assert_eq!(
        d(Box::new(with(&[("Department", "it")]))),
        Decision::ImplicitDeny,
        "values are case-sensitive"
    );
    assert_eq!(
        d(Box::new(with(&[("Department", "IT"), ("Other", "x")]))),
        Decision::ImplicitDeny
    );
    assert_eq!(d(Box::new(with(&[]))), Decision::ImplicitDeny);
    let p_any = key_policy(
        r#"{"Statement":{"Effect":"Allow","Principal":"*","Action":"kms:Decrypt","Resource":"*",
            "Condition":{"ForAnyValue:StringLike":{"kms:EncryptionContextKeys":"app*"}}}}"#,
    );
    let any = |pairs: &'static [(&str, &str)]| {
        decide(&alice(), "kms:Decrypt", Some(&p_any), &none, &[], |c| {
            c.set_encryption_context(&ctx(pairs))
        })
    };
    assert_eq!(any(&[("x", "1"), ("appName", "2")]), Decision::Allow);
    assert_eq!(any(&[("x", "1")]), Decision::ImplicitDeny);
    assert_eq!(
        any(&[]),
        Decision::ImplicitDeny,
        "ForAnyValue on an absent key is false"
    );
}

#[test]
fn explicit_deny_beats_every_allow() {
    let p = key_policy(
        r#"{"Statement":[
          {"Effect":"Allow","Principal":{"AWS":"111122223333"},"Action":"kms:*","Resource":"*"},
          {"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:user/alice"},"Action":"kms:*","Resource":"*"},
          {"Sid":"Deny outside the office","Effect":"Deny","Principal":"*","Action":"kms:*","Resource":"*",
           "Condition":{"NotIpAddress":{"aws:SourceIp":["192.0.2.0/24","203.0.113.0/24"]}}}]}"#,
    );
    let grant = grant_for(
        &alice(),
        &[GrantOperation::Encrypt],
        GrantConstraints::default(),
    );
    let admin = Policy::default_identity(OWNER);
    let from = |ip: &str| {
        let ip = ip.parse().unwrap();
        decide(
            &alice(),
            "kms:Encrypt",
            Some(&p),
            &admin,
            std::slice::from_ref(&grant),
            move |c| c.set_source_ip(ip),
        )
    };
    assert_eq!(from("192.0.2.7"), Decision::Allow);
    assert_eq!(
        from("198.51.100.1"),
        Decision::ExplicitDeny,
        "not even a grant overrides a deny"
    );
    assert_eq!(
        decide(&alice(), "kms:Encrypt", Some(&p), &admin, &[], |_| {}),
        Decision::ExplicitDeny,
        "NotIpAddress without a source address is true"
    );
}

#[test]
fn cross_account_needs_key_policy_and_identity_policy() {
    let p = key_policy(
        r#"{"Statement":[
          {"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:root"},"Action":"kms:*","Resource":"*"},
          {"Sid":"Allow an external account to use this KMS key","Effect":"Allow",
           "Principal":{"AWS":["arn:aws:iam::444455556666:root"]},
           "Action":["kms:Encrypt","kms:Decrypt","kms:ReEncrypt*","kms:GenerateDataKey*","kms:DescribeKey"],
           "Resource":"*"}]}"#,
    );
    let bob = bob_elsewhere();
    let bob_identity = identity(&format!(
        r#"{{"Statement":{{"Effect":"Allow","Action":["kms:Encrypt","kms:Decrypt"],"Resource":"{KEY}"}}}}"#
    ));
    assert_eq!(
        decide(&bob, "kms:Encrypt", Some(&p), &bob_identity, &[], |_| {}),
        Decision::Allow
    );
    assert_eq!(
        decide(
            &bob,
            "kms:GenerateDataKey",
            Some(&p),
            &bob_identity,
            &[],
            |_| {}
        ),
        Decision::ImplicitDeny,
        "the identity policy does not allow it"
    );
    assert_eq!(
        decide(
            &bob,
            "kms:Encrypt",
            Some(&p),
            &Policy::default_identity("444455556666"),
            &[],
            |_| {}
        ),
        Decision::ImplicitDeny,
        "the default identity policy covers only its own account's keys"
    );
    assert_eq!(
        decide(&bob, "kms:Encrypt", None, &bob_identity, &[], |_| {}),
        Decision::ImplicitDeny,
        "the default key policy allows no other account"
    );
}

fn grant_for(who: &Principal, ops: &[GrantOperation], constraints: GrantConstraints) -> Grant {
    Grant {
        id: "0".repeat(64),
        key_id: crate::KeyId::from_bytes([7; 16]),
        key_account: OWNER.into(),
        name: None,
        grantee: who.arn().into(),
        retiring: None,
        operations: ops.to_vec(),
        constraints,
        issuer: "arn:aws:iam::111122223333:root".into(),
        created: NOW,
    }
}

#[test]
fn grants_allow_their_operations_within_their_constraints() {
    let deny_alice = key_policy(
        r#"{"Statement":{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:role/Admin"},"Action":"kms:*","Resource":"*"}}"#,
    );
    let admin = Policy::default_identity(OWNER);
    let equals = grant_for(
        &alice(),
        &[GrantOperation::Encrypt, GrantOperation::Decrypt],
        GrantConstraints {
            equals: Some(ctx(&[("purpose", "test")])),
            subset: None,
        },
    );
    let d = |action: &str, g: &Grant, pairs: &[(&str, &str)]| {
        let c = ctx(pairs);
        decide(
            &alice(),
            action,
            Some(&deny_alice),
            &admin,
            std::slice::from_ref(g),
            |x| x.set_encryption_context(&c),
        )
    };
    assert_eq!(d("kms:Encrypt", &equals, &[]), Decision::ImplicitDeny);
    assert_eq!(
        d("kms:Encrypt", &equals, &[("purpose", "test")]),
        Decision::Allow
    );
    assert_eq!(
        d("kms:Encrypt", &equals, &[("purpose", "prod")]),
        Decision::ImplicitDeny
    );
    assert_eq!(
        d("kms:Encrypt", &equals, &[("purpose", "test"), ("x", "y")]),
        Decision::ImplicitDeny
    );
    assert_eq!(
        d("kms:GenerateDataKey", &equals, &[("purpose", "test")]),
        Decision::ImplicitDeny
    );
    let subset = grant_for(
        &alice(),
        &[GrantOperation::Decrypt],
        GrantConstraints {
            equals: None,
            subset: Some(ctx(&[("purpose", "test")])),
        },
    );
    assert_eq!(
        d("kms:Decrypt", &subset, &[("purpose", "test"), ("x", "y")]),
        Decision::Allow
    );
    assert_eq!(
        d("kms:Decrypt", &subset, &[("x", "y")]),
        Decision::ImplicitDeny
    );
    let bob_grant = grant_for(
        &bob_elsewhere(),
        &[GrantOperation::Decrypt],
        GrantConstraints::default(),
    );
    assert_eq!(
        d("kms:Decrypt", &bob_grant, &[]),
        Decision::ImplicitDeny,
        "a grant allows its grantee only"
    );
    assert!(equals.constraints.within(&subset.constraints));
    assert!(!subset.constraints.within(&equals.constraints));
    assert!(equals.constraints.within(&GrantConstraints::default()));
    assert!(!GrantConstraints::default().within(&subset.constraints));
    assert_eq!(
        GrantOperation::from_name("ReEncryptFrom"),
        Some(GrantOperation::ReEncryptFrom)
    );
    assert_eq!(GrantOperation::from_name("Nope"), None);
}

#[test]
fn operators_follow_iam() {
    let holds = |op: &str, key: &str, values: &str, set: &dyn Fn(&mut ConditionContext)| {
        let block: serde_json::Value =
            serde_json::from_str(&format!(r#"{{"{key}":{values}}}"#)).unwrap();
        let cs = Condition::parse_block(op, &block).unwrap();
        let mut c = ConditionContext::new(&alice(), NOW);
        set(&mut c);
        cs.iter().all(|x| x.holds(&c))
    };
    let nothing = |_: &mut ConditionContext| {};
    let spec = |c: &mut ConditionContext| c.set(keys::KEY_SPEC, "RSA_2048");
    assert!(holds(
        "StringEquals",
        "kms:KeySpec",
        r#"["ECC_NIST_P256","RSA_2048"]"#,
        &spec
    ));
    assert!(!holds(
        "StringNotEquals",
        "kms:KeySpec",
        r#"["ECC_NIST_P256","RSA_2048"]"#,
        &spec
    ));
    assert!(
        holds("StringNotEquals", "kms:KeySpec", r#""RSA_2048""#, &nothing),
        "negated on an absent key"
    );
    assert!(!holds(
        "StringEquals",
        "kms:KeySpec",
        r#""RSA_2048""#,
        &nothing
    ));
    assert!(holds(
        "StringEqualsIfExists",
        "kms:KeySpec",
        r#""X""#,
        &nothing
    ));
    assert!(
        holds(
            "StringEqualsIgnoreCase",
            "KMS:KEYSPEC",
            r#""rsa_2048""#,
            &spec
        ),
        "key names ignore case"
    );
    assert!(holds("StringLike", "kms:KeySpec", r#""RSA_*""#, &spec));
    assert!(holds("StringNotLike", "kms:KeySpec", r#""ECC_*""#, &spec));
    assert!(holds("Null", "kms:KeySpec", "true", &nothing));
    assert!(holds("Null", "kms:KeySpec", "false", &spec));
    assert!(!holds("Null", "kms:KeySpec", "true", &spec));
    assert!(holds(
        "StringEquals",
        "kms:CallerAccount",
        r#""111122223333""#,
        &nothing
    ));
    assert!(holds(
        "ArnLike",
        "aws:PrincipalArn",
        r#""arn:aws:iam::111122223333:user/*""#,
        &nothing
    ));
    assert!(holds(
        "ArnEquals",
        "aws:PrincipalArn",
        r#""arn:aws:iam::*:user/alice""#,
        &nothing
    ));
    assert!(holds(
        "ArnNotLike",
        "aws:PrincipalArn",
        r#""arn:aws:iam::*:role/*""#,
        &nothing
    ));
    assert!(holds(
        "DateLessThan",
        "aws:CurrentTime",
        r#""2026-06-30T00:00:00Z""#,
        &nothing
    ));
    assert!(!holds(
        "DateGreaterThan",
        "aws:CurrentTime",
        r#""2026-06-30T00:00:00Z""#,
        &nothing
    ));
    assert!(holds("DateEquals", "aws:EpochTime", "1767225600", &nothing));
    assert!(holds(
        "NumericLessThan",
        "aws:EpochTime",
        "1767225601",
        &nothing
    ));
    assert!(holds(
        "NumericGreaterThanEquals",
        "aws:EpochTime",
        "1767225600",
        &nothing
    ));
    assert!(!holds(
        "NumericEquals",
        "aws:EpochTime",
        r#""not a number""#,
        &nothing
    ));
    let ops = |c: &mut ConditionContext| {
        c.set_all(
            keys::GRANT_OPERATIONS,
            vec!["Encrypt".into(), "Decrypt".into()],
        )
    };
    assert!(holds(
        "ForAllValues:StringEquals",
        "kms:GrantOperations",
        r#"["Encrypt","Decrypt","ReEncryptTo"]"#,
        &ops
    ));
    assert!(!holds(
        "ForAllValues:StringEquals",
        "kms:GrantOperations",
        r#"["Encrypt"]"#,
        &ops
    ));
    assert!(holds(
        "ForAnyValue:StringEquals",
        "kms:GrantOperations",
        r#"["Encrypt"]"#,
        &ops
    ));
    assert!(
        holds(
            "ForAllValues:StringEquals",
            "kms:GrantOperations",
            r#"["Encrypt"]"#,
            &nothing
        ),
        "vacuously"
    );
    assert!(holds(
        "ForAnyValue:StringNotEquals",
        "kms:GrantOperations",
        r#"["Encrypt"]"#,
        &ops
    ));
    assert!(!holds(
        "ForAllValues:StringNotEquals",
        "kms:GrantOperations",
        r#"["Encrypt"]"#,
        &ops
    ));
    assert!(holds(
        "Bool",
        "kms:GrantIsForAWSResource",
        "false",
        &|c: &mut ConditionContext| { c.set(keys::GRANT_IS_FOR_AWS_RESOURCE, "false") }
    ));
    let ip = |c: &mut ConditionContext| c.set_source_ip("10.1.2.3".parse().unwrap());
    assert!(holds("IpAddress", "aws:SourceIp", r#""10.0.0.0/8""#, &ip));
    assert!(holds(
        "NotIpAddress",
        "aws:SourceIp",
        r#""192.168.0.0/16""#,
        &ip
    ));
}

#[test]
fn actions_resources_and_not_action() {
    let p = key_policy(
        r#"{"Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:user/alice"},
            "NotAction":["kms:ScheduleKeyDeletion","kms:Put*"],"Resource":"arn:aws:kms:*:111122223333:key/*"}]}"#,
    );
    let none = no_kms();
    assert_eq!(
        decide(&alice(), "kms:Encrypt", Some(&p), &none, &[], |_| {}),
        Decision::Allow
    );
    assert_eq!(
        decide(&alice(), "KMS:ENCRYPT", Some(&p), &none, &[], |_| {}),
        Decision::Allow,
        "actions ignore case"
    );
    assert_eq!(
        decide(&alice(), "kms:PutKeyPolicy", Some(&p), &none, &[], |_| {}),
        Decision::ImplicitDeny
    );
    let other_key = key_policy(
        r#"{"Statement":{"Effect":"Allow","Principal":"*","Action":"kms:*","Resource":"arn:aws:kms:*:*:key/other"}}"#,
    );
    assert_eq!(
        decide(
            &alice(),
            "kms:Encrypt",
            Some(&other_key),
            &none,
            &[],
            |_| {}
        ),
        Decision::ImplicitDeny
    );
    let not_principal = key_policy(
        r#"{"Statement":[{"Effect":"Allow","Principal":"*","Action":"kms:*"},
            {"Effect":"Deny","NotPrincipal":{"AWS":"arn:aws:iam::111122223333:user/alice"},"Action":"kms:Decrypt"}]}"#,
    );
    assert_eq!(
        decide(
            &alice(),
            "kms:Decrypt",
            Some(&not_principal),
            &none,
            &[],
            |_| {}
        ),
        Decision::Allow
    );
    let carol = Principal::user(OWNER, "carol");
    assert_eq!(
        decide(
            &carol,
            "kms:Decrypt",
            Some(&not_principal),
            &none,
            &[],
            |_| {}
        ),
        Decision::ExplicitDeny
    );
}

#[test]
fn actions_on_no_key_ask_the_identity_policy_only() {
    let c = ConditionContext::new(&alice(), NOW);
    let req = Request {
        principal: &alice(),
        action: "kms:CreateKey",
        resource: "*",
        resource_account: None,
        context: &c,
    };
    assert_eq!(
        evaluate(&req, None, &Policy::default_identity(OWNER), &[]),
        Decision::Allow
    );
    assert_eq!(evaluate(&req, None, &no_kms(), &[]), Decision::ImplicitDeny);
    let deny = identity(
        r#"{"Statement":[{"Effect":"Allow","Action":"kms:*","Resource":"*"},{"Effect":"Deny","Action":"kms:Create*","Resource":"*"}]}"#,
    );
    assert_eq!(evaluate(&req, None, &deny, &[]), Decision::ExplicitDeny);
}

#[test]
fn malformed_policies_are_typed_errors() {
    let key = |t: &str| Policy::parse(t, PolicyKind::Key).err();
    assert!(matches!(key("not json"), Some(PolicyError::NotJson(_))));
    assert!(matches!(key("[]"), Some(PolicyError::NotJson(_))));
    assert_eq!(
        key(r#"{"Version":"2012-10-17"}"#),
        Some(PolicyError::NoStatement)
    );
    assert_eq!(key(r#"{"Statement":[]}"#), Some(PolicyError::NoStatement));
    assert_eq!(
        key(r#"{"Statement":{"Effect":"allow","Principal":"*","Action":"kms:*"}}"#),
        Some(PolicyError::Effect)
    );
    assert_eq!(
        key(r#"{"Statement":{"Effect":"Allow","Action":"kms:*","Resource":"*"}}"#),
        Some(PolicyError::Principal)
    );
    assert_eq!(
        key(
            r#"{"Statement":{"Effect":"Allow","Principal":"*","Action":"kms:*","NotAction":"kms:Decrypt"}}"#
        ),
        Some(PolicyError::Action)
    );
    assert_eq!(
        key(r#"{"Statement":{"Effect":"Allow","Principal":"*"}}"#),
        Some(PolicyError::Action)
    );
    assert!(matches!(
        key(
            r#"{"Statement":{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::1:user/x"},"Action":"kms:*"}}"#
        ),
        Some(PolicyError::InvalidPrincipal(_))
    ));
    assert!(matches!(
        key(
            r#"{"Statement":{"Effect":"Allow","Principal":"*","Action":"kms:*","Condition":{"StringSortOf":{"a":"b"}}}}"#
        ),
        Some(PolicyError::ConditionOperator(_))
    ));
    assert!(matches!(
        key(r#"{"Statement":{"Effect":"Allow","Principal":"*","Action":"Encrypt"}}"#),
        Some(PolicyError::InvalidAction(_))
    ));
    assert!(matches!(
        key(
            r#"{"Version":"2020-01-01","Statement":{"Effect":"Allow","Principal":"*","Action":"kms:*"}}"#
        ),
        Some(PolicyError::Version(_))
    ));
    assert!(matches!(
        key(r#"{"Statement":{"Effect":"Allow","Principal":"*","Action":"kms:*","Extra":1}}"#),
        Some(PolicyError::UnknownElement(_))
    ));
    let big = format!(
        r#"{{"Statement":{{"Effect":"Allow","Principal":"*","Action":"kms:*","Sid":"{}"}}}}"#,
        "x".repeat(40_000)
    );
    assert!(matches!(key(&big), Some(PolicyError::TooLong(..))));
    let id = |t: &str| Policy::parse(t, PolicyKind::Identity).err();
    assert!(matches!(
        id(r#"{"Statement":{"Effect":"Allow","Principal":"*","Action":"kms:*","Resource":"*"}}"#),
        Some(PolicyError::UnknownElement(_))
    ));
    assert_eq!(
        id(r#"{"Statement":{"Effect":"Allow","Action":"kms:*"}}"#),
        Some(PolicyError::Resource)
    );
    assert!(Policy::parse(&default_key_policy(OWNER), PolicyKind::Key).is_ok());
}

#[test]
fn condition_keys_are_built_only_when_a_condition_reads_them() {
    use std::cell::{Cell, LazyCell};
    let builds = Cell::new(0);
    let decide_lazily = |policy: &Policy| {
        let context = LazyCell::new(|| {
            builds.set(builds.get() + 1);
            let mut c = ConditionContext::new(&alice(), NOW);
            c.set_encryption_context(&ctx(&[("app", "demo")]));
            c
        });
        let req = Request {
            principal: &alice(),
            action: "kms:Decrypt",
            resource: KEY,
            resource_account: Some(OWNER),
            context: &context,
        };
        evaluate(&req, Some(policy), &Policy::default_identity(OWNER), &[])
    };
    // The default key policy has no condition: nothing is built.
    let default = key_policy(&default_key_policy(OWNER));
    assert_eq!(decide_lazily(&default), Decision::Allow);
    assert_eq!(builds.get(), 0);
    // A statement with a condition builds the keys once, and reads them.
    let conditional = key_policy(&format!(
        r#"{{"Statement":[{{"Effect":"Allow","Principal":{{"AWS":"arn:aws:iam::{OWNER}:user/alice"}},
            "Action":"kms:Decrypt","Resource":"*",
            "Condition":{{"StringEquals":{{"kms:EncryptionContext:app":"demo"}}}}}}]}}"#
    ));
    assert_eq!(decide_lazily(&conditional), Decision::Allow);
    assert_eq!(builds.get(), 1);
    let denying = key_policy(
        r#"{"Statement":[{"Effect":"Deny","Principal":{"AWS":"*"},
            "Action":"kms:Decrypt","Resource":"*",
            "Condition":{"StringNotEquals":{"kms:EncryptionContext:app":"other"}}}]}"#,
    );
    assert_eq!(decide_lazily(&denying), Decision::ExplicitDeny);
    assert_eq!(builds.get(), 2);
}
