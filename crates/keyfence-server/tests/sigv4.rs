//! SigV4 verification: AWS's published Signature Version 4 test suite (known answers,
//! signed and verified) and every refusal path.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hyper::header::{HeaderName, HeaderValue, AUTHORIZATION};
use hyper::http::request::Parts;
use keyfence_server::sigv4::{
    sign, verify, Credential, CredentialStore, SigV4Error, SigningParams, VerifiedCaller,
};
use zeroize::Zeroizing;

const SUITE_KEY_ID: &str = "AKIDEXAMPLE";
const SUITE_SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
const SUITE_SCOPE: &str = "20150830/us-east-1/service/aws4_request";
/// 2015-08-30T12:36:00Z, the time of every request in the suite.
const SUITE_EPOCH: u64 = 1_440_938_160;
const SUITE_TOKEN: &str = "AQoDYXdzEPT//////////wEXAMPLEtc764bNrC9SAPBSM22wDOk4x4HIZ8j4FZTwdQWLWsKWHGBuFqwAeMicRXmxfpSPfIeoIYRqTflfKD8YUuwthAx7mSEI/qkPpKPi/kMcGdQrmGdeehM4IC1NtBmUpp2wUE8phUZampKsburEDy0KPkyQDYwT7WZ0wq5VSXDvp75YU9HFvlRd8Tx6q6fE8YQcHNVXAkiY9q6d+xo0rKwT38xVqr7ZD0u0iPPkUL64lIZbqBAz+scqKmlzm8FDrypNC9Yjc8fPOLn9FX9KSYvKTr4rvx3iSIlTJabIQwj2ICCR/oLxBA==";

/// One case of the AWS SigV4 test suite
/// (<https://docs.aws.amazon.com/general/latest/gr/signature-v4-test-suite.html>):
/// the raw request (`.req`; the UTF-8 query key percent-encoded as it is on the wire)
/// and the expected `SignedHeaders` and signature (`.authz`). `Content-Length` is in
/// the form-urlencoded requests but not signed, as in the suite's `.sreq`.
struct Vector {
    name: &'static str,
    request: &'static str,
    signed_headers: &'static str,
    signature: &'static str,
}

const SUITE: &[Vector] = &[
    Vector {
        name: "get-header-key-duplicate",
        request: "GET / HTTP/1.1\nHost:example.amazonaws.com\nMy-Header1:value2\nMy-Header1:value2\nMy-Header1:value1\nX-Amz-Date:20150830T123600Z",
        signed_headers: "host;my-header1;x-amz-date",
        signature: "c9d5ea9f3f72853aea855b47ea873832890dbdd183b4468f858259531a5138ea",
    },
    Vector {
        name: "get-header-value-order",
        request: "GET / HTTP/1.1\nHost:example.amazonaws.com\nMy-Header1:value4\nMy-Header1:value1\nMy-Header1:value3\nMy-Header1:value2\nX-Amz-Date:20150830T123600Z",
        signed_headers: "host;my-header1;x-amz-date",
        signature: "08c7e5a9acfcfeb3ab6b2185e75ce8b1deb5e634ec47601a50643f830c755c01",
    },
    Vector {
        name: "get-header-value-trim",
        request: "GET / HTTP/1.1\nHost:example.amazonaws.com\nMy-Header1: value1\nMy-Header2: \"a   b   c\"\nX-Amz-Date:20150830T123600Z",
        signed_headers: "host;my-header1;my-header2;x-amz-date",
        signature: "acc3ed3afb60bb290fc8d2dd0098b9911fcaa05412b367055dee359757a9c736",
    },
    Vector {
        name: "get-unreserved",
        request: "GET /-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz HTTP/1.1\nHost:example.amazonaws.com\nX-Amz-Date:20150830T123600Z",
        signed_headers: "host;x-amz-date",
        signature: "07ef7494c76fa4850883e2b006601f940f8a34d404d0cfa977f52a65bbf5f24f",
    },
    Vector {
        name: "get-vanilla",
        request: "GET / HTTP/1.1\nHost:example.amazonaws.com\nX-Amz-Date:20150830T123600Z",
        signed_headers: "host;x-amz-date",
        signature: "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31",
    },
    Vector {
        name: "get-vanilla-empty-query-key",
        request: "GET /?Param1=value1 HTTP/1.1\nHost:example.amazonaws.com\nX-Amz-Date:20150830T123600Z",
        signed_headers: "host;x-amz-date",
        signature: "a67d582fa61cc504c4bae71f336f98b97f1ea3c7a6bfe1b6e45aec72011b9aeb",
    },
    Vector {
        name: "get-vanilla-query",
        request: "GET / HTTP/1.1\nHost:example.amazonaws.com\nX-Amz-Date:20150830T123600Z",
        signed_headers: "host;x-amz-date",
        signature: "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31",
    },
    Vector {
        name: "get-vanilla-query-order-key",
        request: "GET /?Param1=value2&Param1=Value1 HTTP/1.1\nHost:example.amazonaws.com\nX-Amz-Date:20150830T123600Z",
        signed_headers: "host;x-amz-date",
        signature: "eedbc4e291e521cf13422ffca22be7d2eb8146eecf653089df300a15b2382bd1",
    },
    Vector {
        name: "get-vanilla-query-order-key-case",
        request: "GET /?Param2=value2&Param1=value1 HTTP/1.1\nHost:example.amazonaws.com\nX-Amz-Date:20150830T123600Z",
        signed_headers: "host;x-amz-date",
        signature: "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500",
    },
    Vector {
        name: "get-vanilla-query-order-value",
        request: "GET /?Param1=value2&Param1=value1 HTTP/1.1\nHost:example.amazonaws.com\nX-Amz-Date:20150830T123600Z",
        signed_headers: "host;x-amz-date",
        signature: "5772eed61e12b33fae39ee5e7012498b51d56abc0abb7c60486157bd471c4694",
    },
    Vector {
        name: "get-vanilla-query-unreserved",
        request: "GET /?-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz=-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz HTTP/1.1\nHost:example.amazonaws.com\nX-Amz-Date:20150830T123600Z",
        signed_headers: "host;x-amz-date",
        signature: "9c3e54bfcdf0b19771a7f523ee5669cdf59bc7cc0884027167c21bb143a40197",
    },
    Vector {
        name: "get-vanilla-utf8-query",
        request: "GET /?%E1%88%B4=bar HTTP/1.1\nHost:example.amazonaws.com\nX-Amz-Date:20150830T123600Z",
        signed_headers: "host;x-amz-date",
        signature: "2cdec8eed098649ff3a119c94853b13c643bcf08f8b0a1d91e12c9027818dd04",
    },
    Vector {
        name: "post-header-key-case",
        request: "POST / HTTP/1.1\nHost:example.amazonaws.com\nX-Amz-Date:20150830T123600Z",
        signed_headers: "host;x-amz-date",
        signature: "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b",
    },
    Vector {
        name: "post-header-key-sort",
        request: "POST / HTTP/1.1\nHost:example.amazonaws.com\nMy-Header1:value1\nX-Amz-Date:20150830T123600Z",
        signed_headers: "host;my-header1;x-amz-date",
        signature: "c5410059b04c1ee005303aed430f6e6645f61f4dc9e1461ec8f8916fdf18852c",
    },
    Vector {
        name: "post-header-value-case",
        request: "POST / HTTP/1.1\nHost:example.amazonaws.com\nMy-Header1:VALUE1\nX-Amz-Date:20150830T123600Z",
        signed_headers: "host;my-header1;x-amz-date",
        signature: "cdbc9802e29d2942e5e10b5bccfdd67c5f22c7c4e8ae67b53629efa58b974b7d",
    },
    Vector {
        name: "post-vanilla",
        request: "POST / HTTP/1.1\nHost:example.amazonaws.com\nX-Amz-Date:20150830T123600Z",
        signed_headers: "host;x-amz-date",
        signature: "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b",
    },
    Vector {
        name: "post-vanilla-empty-query-value",
        request: "POST /?Param1=value1 HTTP/1.1\nHost:example.amazonaws.com\nX-Amz-Date:20150830T123600Z",
        signed_headers: "host;x-amz-date",
        signature: "28038455d6de14eafc1f9222cf5aa6f1a96197d7deb8263271d420d138af7f11",
    },
    Vector {
        name: "post-vanilla-query",
        request: "POST /?Param1=value1 HTTP/1.1\nHost:example.amazonaws.com\nX-Amz-Date:20150830T123600Z",
        signed_headers: "host;x-amz-date",
        signature: "28038455d6de14eafc1f9222cf5aa6f1a96197d7deb8263271d420d138af7f11",
    },
    Vector {
        name: "post-x-www-form-urlencoded",
        request: "POST / HTTP/1.1\nContent-Type:application/x-www-form-urlencoded\nHost:example.amazonaws.com\nX-Amz-Date:20150830T123600Z\nContent-Length:13\n\nParam1=value1",
        signed_headers: "content-type;host;x-amz-date",
        signature: "ff11897932ad3f4e8b18135d722051e5ac45fc38421b1da7b9d196a0fe09473a",
    },
    Vector {
        name: "post-x-www-form-urlencoded-parameters",
        request: "POST / HTTP/1.1\nContent-Type:application/x-www-form-urlencoded; charset=utf8\nHost:example.amazonaws.com\nX-Amz-Date:20150830T123600Z\nContent-Length:13\n\nParam1=value1",
        signed_headers: "content-type;host;x-amz-date",
        signature: "1a72ec8f64bd914b0e42e42607c7fbce7fb2c7465f63e3092b3b0d39fa77a6fe",
    },
    Vector {
        name: "get-relative",
        request: "GET /example/.. HTTP/1.1\nHost:example.amazonaws.com\nX-Amz-Date:20150830T123600Z",
        signed_headers: "host;x-amz-date",
        signature: "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31",
    },
    Vector {
        name: "get-relative-relative",
        request: "GET /example1/example2/../.. HTTP/1.1\nHost:example.amazonaws.com\nX-Amz-Date:20150830T123600Z",
        signed_headers: "host;x-amz-date",
        signature: "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31",
    },
    Vector {
        name: "get-slash",
        request: "GET // HTTP/1.1\nHost:example.amazonaws.com\nX-Amz-Date:20150830T123600Z",
        signed_headers: "host;x-amz-date",
        signature: "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31",
    },
    Vector {
        name: "get-slash-dot-slash",
        request: "GET /./ HTTP/1.1\nHost:example.amazonaws.com\nX-Amz-Date:20150830T123600Z",
        signed_headers: "host;x-amz-date",
        signature: "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31",
    },
    Vector {
        name: "get-slash-pointless-dot",
        request: "GET /./example HTTP/1.1\nHost:example.amazonaws.com\nX-Amz-Date:20150830T123600Z",
        signed_headers: "host;x-amz-date",
        signature: "ef75d96142cf21edca26f06005da7988e4f8dc83a165a80865db7089db637ec5",
    },
    Vector {
        name: "get-slashes",
        request: "GET //example// HTTP/1.1\nHost:example.amazonaws.com\nX-Amz-Date:20150830T123600Z",
        signed_headers: "host;x-amz-date",
        signature: "9a624bd73a37c9a373b5312afbebe7a714a789de108f0bdfe846570885f57e84",
    },
    Vector {
        name: "post-sts-header-after",
        request: "POST / HTTP/1.1\nHost:example.amazonaws.com\nX-Amz-Date:20150830T123600Z",
        signed_headers: "host;x-amz-date",
        signature: "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b",
    },
    Vector {
        name: "post-sts-header-before",
        request: "POST / HTTP/1.1\nHost:example.amazonaws.com\nX-Amz-Date:20150830T123600Z\nX-Amz-Security-Token:AQoDYXdzEPT//////////wEXAMPLEtc764bNrC9SAPBSM22wDOk4x4HIZ8j4FZTwdQWLWsKWHGBuFqwAeMicRXmxfpSPfIeoIYRqTflfKD8YUuwthAx7mSEI/qkPpKPi/kMcGdQrmGdeehM4IC1NtBmUpp2wUE8phUZampKsburEDy0KPkyQDYwT7WZ0wq5VSXDvp75YU9HFvlRd8Tx6q6fE8YQcHNVXAkiY9q6d+xo0rKwT38xVqr7ZD0u0iPPkUL64lIZbqBAz+scqKmlzm8FDrypNC9Yjc8fPOLn9FX9KSYvKTr4rvx3iSIlTJabIQwj2ICCR/oLxBA==",
        signed_headers: "host;x-amz-date;x-amz-security-token",
        signature: "85d96828115b5dc0cfc3bd16ad9e210dd772bbebba041836c64533a82be05ead",
    },
];

fn suite_time() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(SUITE_EPOCH)
}

/// Parses a raw HTTP/1.1 request (`\n` line ends) into parts and body.
fn parse_request(raw: &str) -> (Parts, Vec<u8>) {
    let (head, body) = raw.split_once("\n\n").unwrap_or((raw, ""));
    let mut lines = head.lines();
    let mut request_line = lines.next().expect("request line").split(' ');
    let method = request_line.next().expect("method");
    let uri = request_line.next().expect("uri");
    let mut builder = hyper::Request::builder().method(method).uri(uri);
    for line in lines {
        let (name, value) = line.split_once(':').expect("header line");
        builder = builder.header(name, value);
    }
    let (parts, ()) = builder.body(()).expect("request").into_parts();
    (parts, body.as_bytes().to_vec())
}

fn suite_store() -> CredentialStore {
    CredentialStore::new([Credential {
        access_key_id: SUITE_KEY_ID.into(),
        secret_access_key: Zeroizing::new(SUITE_SECRET.into()),
        account_id: "111122223333".into(),
        user_name: "example".into(),
    }])
    .unwrap()
    .with_services(&["service"])
}

fn suite_authorization(signed_headers: &str, signature: &str) -> String {
    format!(
        "AWS4-HMAC-SHA256 Credential={SUITE_KEY_ID}/{SUITE_SCOPE}, \
         SignedHeaders={signed_headers}, Signature={signature}"
    )
}

#[test]
fn aws_suite_requests_verify() {
    assert!(SUITE.len() >= 28);
    let store = suite_store();
    for v in SUITE {
        let (mut parts, body) = parse_request(v.request);
        parts.headers.insert(
            AUTHORIZATION,
            HeaderValue::from_str(&suite_authorization(v.signed_headers, v.signature)).unwrap(),
        );
        if v.name.starts_with("post-sts-header") {
            // keyfence has only permanent credentials: a session token, signed
            // (before) or added after signing (after), is refused.
            if v.name == "post-sts-header-after" {
                parts.headers.insert(
                    "x-amz-security-token",
                    HeaderValue::from_static(SUITE_TOKEN),
                );
            }
            assert_eq!(
                verify(&parts, &body, &store, suite_time()),
                Err(SigV4Error::UnrecognizedClient),
                "{}",
                v.name
            );
            parts.headers.remove("x-amz-security-token");
            if v.name == "post-sts-header-before" {
                continue;
            }
        }
        let caller = verify(&parts, &body, &store, suite_time())
            .unwrap_or_else(|e| panic!("{}: {e:?}", v.name));
        assert_eq!(
            caller,
            VerifiedCaller {
                access_key_id: SUITE_KEY_ID.into(),
                account_id: "111122223333".into(),
                user_name: "example".into(),
                region: "us-east-1".into(),
                service: "service".into(),
            },
            "{}",
            v.name
        );
        assert_eq!(caller.arn(), "arn:aws:iam::111122223333:user/example");

        // Any other signature for the same request is refused.
        let mut wrong = v.signature.as_bytes().to_vec();
        wrong[10] = if wrong[10] == b'0' { b'1' } else { b'0' };
        let tampered = suite_authorization(v.signed_headers, std::str::from_utf8(&wrong).unwrap());
        parts
            .headers
            .insert(AUTHORIZATION, HeaderValue::from_str(&tampered).unwrap());
        assert_eq!(
            verify(&parts, &body, &store, suite_time()),
            Err(SigV4Error::InvalidSignature),
            "{}",
            v.name
        );
    }
}

#[test]
fn aws_suite_requests_sign_to_the_published_authorization() {
    for v in SUITE {
        let (mut parts, body) = parse_request(v.request);
        // `sign` signs every header present; drop the ones the suite leaves unsigned.
        let signed: Vec<&str> = v.signed_headers.split(';').collect();
        let unsigned: Vec<HeaderName> = parts
            .headers
            .keys()
            .filter(|n| !signed.contains(&n.as_str()))
            .cloned()
            .collect();
        for name in unsigned {
            parts.headers.remove(name);
        }
        let params = SigningParams {
            access_key_id: SUITE_KEY_ID,
            secret_access_key: SUITE_SECRET,
            region: "us-east-1",
            service: "service",
            time: suite_time(),
        };
        sign(&mut parts, &body, &params).unwrap();
        assert_eq!(
            parts.headers[AUTHORIZATION].to_str().unwrap(),
            suite_authorization(v.signed_headers, v.signature),
            "{}",
            v.name
        );
    }
}

#[test]
fn get_vanilla_known_answer() {
    let v = SUITE.iter().find(|v| v.name == "get-vanilla").unwrap();
    assert_eq!(
        v.signature,
        "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"
    );
}

// ------------------------------------------------------------------ refusals

const KEY_ID: &str = "AKIAKEYFENCETEST0001";
const SECRET: &str = "kf/secret/0123456789abcdefghijklmnopqrstu";
const KMS_BODY: &[u8] = br#"{"KeyId":"alias/test","Plaintext":"aGVsbG8="}"#;

fn store() -> CredentialStore {
    CredentialStore::new([Credential {
        access_key_id: KEY_ID.into(),
        secret_access_key: Zeroizing::new(SECRET.into()),
        account_id: "123456789012".into(),
        user_name: "alice".into(),
    }])
    .unwrap()
}

fn now() -> SystemTime {
    suite_time()
}

/// An unsigned KMS Encrypt request.
fn kms_request() -> Parts {
    let (parts, ()) = hyper::Request::builder()
        .method("POST")
        .uri("/")
        .header("host", "kms.eu-central-1.keyfence.test:8443")
        .header("content-type", "application/x-amz-json-1.1")
        .header("x-amz-target", "TrentService.Encrypt")
        .header("user-agent", "aws-cli/2.15 test")
        .body(())
        .unwrap()
        .into_parts();
    parts
}

fn signed_kms_request_with(secret: &str, key_id: &str, time: SystemTime) -> Parts {
    let mut parts = kms_request();
    let params = SigningParams {
        access_key_id: key_id,
        secret_access_key: secret,
        region: "eu-central-1",
        service: "kms",
        time,
    };
    sign(&mut parts, KMS_BODY, &params).unwrap();
    parts
}

fn signed_kms_request() -> Parts {
    signed_kms_request_with(SECRET, KEY_ID, now())
}

fn with_authorization(mut parts: Parts, value: &str) -> Parts {
    parts
        .headers
        .insert(AUTHORIZATION, HeaderValue::from_str(value).unwrap());
    parts
}

fn authorization(parts: &Parts) -> String {
    parts.headers[AUTHORIZATION].to_str().unwrap().to_owned()
}

fn incomplete_message(result: Result<VerifiedCaller, SigV4Error>) -> String {
    match result {
        Err(e @ SigV4Error::IncompleteSignature(_)) => {
            assert_eq!(e.aws_code(), "IncompleteSignatureException");
            e.to_string()
        }
        other => panic!("expected IncompleteSignature, got {other:?}"),
    }
}

#[test]
fn valid_kms_request_verifies() {
    let parts = signed_kms_request();
    let auth = authorization(&parts);
    assert!(
        auth.contains("SignedHeaders=content-type;host;x-amz-date;x-amz-target,"),
        "{auth}"
    );
    let caller = verify(&parts, KMS_BODY, &store(), now()).unwrap();
    assert_eq!(caller.arn(), "arn:aws:iam::123456789012:user/alice");
    assert_eq!(caller.region, "eu-central-1");
    assert_eq!(caller.service, "kms");
}

#[test]
fn missing_authorization_header() {
    let parts = kms_request();
    let err = verify(&parts, KMS_BODY, &store(), now()).unwrap_err();
    assert_eq!(err, SigV4Error::MissingAuthenticationToken);
    assert_eq!(err.aws_code(), "MissingAuthenticationTokenException");
    assert_eq!(err.to_string(), "Missing Authentication Token");
}

#[test]
fn malformed_authorization_headers() {
    let good = authorization(&signed_kms_request());
    let (prefix, rest) = good.split_once(' ').unwrap();
    let fields: Vec<&str> = rest.split(", ").collect();
    assert_eq!(fields.len(), 3);
    let without = |i: usize| {
        let kept: Vec<&str> = fields
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != i)
            .map(|(_, f)| *f)
            .collect();
        format!("{prefix} {}", kept.join(", "))
    };

    let msg = incomplete_message(verify(
        &with_authorization(signed_kms_request(), &without(0)),
        KMS_BODY,
        &store(),
        now(),
    ));
    assert_eq!(msg, "Authorization header requires 'Credential' parameter.");
    let msg = incomplete_message(verify(
        &with_authorization(signed_kms_request(), &without(1)),
        KMS_BODY,
        &store(),
        now(),
    ));
    assert_eq!(
        msg,
        "Authorization header requires 'SignedHeaders' parameter."
    );
    let msg = incomplete_message(verify(
        &with_authorization(signed_kms_request(), &without(2)),
        KMS_BODY,
        &store(),
        now(),
    ));
    assert_eq!(msg, "Authorization header requires 'Signature' parameter.");
    let msg = incomplete_message(verify(
        &with_authorization(signed_kms_request(), "AWS4-HMAC-SHA256"),
        KMS_BODY,
        &store(),
        now(),
    ));
    assert_eq!(
        msg,
        "Authorization header requires 'Credential' parameter. \
         Authorization header requires 'Signature' parameter. \
         Authorization header requires 'SignedHeaders' parameter."
    );

    for garbage in [
        "",
        " ",
        "garbage",
        "Bearer abc.def.ghi",
        "AWS4-HMAC-SHA1 Credential=a/b/c/d/e, SignedHeaders=host, Signature=00",
        "AWS4-HMAC-SHA256 Credential",
        "AWS4-HMAC-SHA256 Credential=, SignedHeaders=, Signature=",
        "AWS4-HMAC-SHA256 ,,,,",
        "AWS4-HMAC-SHA256 Credential=AKIAKEYFENCETEST0001/20150830/eu-central-1/kms, SignedHeaders=host, Signature=00",
        "AWS4-HMAC-SHA256 Credential=AKIAKEYFENCETEST0001/20150830/eu-central-1/kms/aws4_request/x, SignedHeaders=host, Signature=00",
        "AWS4-HMAC-SHA256 Credential=/20150830/eu-central-1/kms/aws4_request, SignedHeaders=host, Signature=00",
        "AWS4-HMAC-SHA256 Credential=AKIAKEYFENCETEST0001/2015-08-30/eu-central-1/kms/aws4_request, SignedHeaders=host, Signature=00",
        "AWS4-HMAC-SHA256 Credential=AKIAKEYFENCETEST0001/20150830/eu-central-1/kms/aws4_request, SignedHeaders=Host;x-amz-date, Signature=00",
        "AWS4-HMAC-SHA256 Credential=AKIAKEYFENCETEST0001/20150830/eu-central-1/kms/aws4_request, SignedHeaders=host;;x-amz-date, Signature=00",
        "AWS4-HMAC-SHA256 Credential=AKIAKEYFENCETEST0001/20150830/eu-central-1/kms/aws4_request, Credential=x, SignedHeaders=host, Signature=00",
        "AWS4-HMAC-SHA256 Credential=AKIAKEYFENCETEST0001/20150830/eu-central-1/kms/aws4_request, Foo=bar, SignedHeaders=host, Signature=00",
    ] {
        let parts = with_authorization(signed_kms_request(), garbage);
        incomplete_message(verify(&parts, KMS_BODY, &store(), now()));
    }

    // Non-UTF-8 bytes in the header value.
    let mut parts = signed_kms_request();
    parts.headers.insert(
        AUTHORIZATION,
        HeaderValue::from_bytes(b"AWS4-HMAC-SHA256 Credential=\xff\xfe").unwrap(),
    );
    incomplete_message(verify(&parts, KMS_BODY, &store(), now()));

    // Two Authorization headers.
    let mut parts = signed_kms_request();
    let again = parts.headers[AUTHORIZATION].clone();
    parts.headers.append(AUTHORIZATION, again);
    incomplete_message(verify(&parts, KMS_BODY, &store(), now()));
}

#[test]
fn bad_signature_encodings_are_invalid_signatures() {
    let good = authorization(&signed_kms_request());
    let (head, sig) = good.rsplit_once("Signature=").unwrap();
    for bad in [
        String::new(),
        "zz".repeat(32),
        sig[..62].to_owned(),
        format!("{sig}00"),
        sig.to_uppercase().replace(char::is_numeric, "G"),
        format!("{}!", &sig[..63]),
    ] {
        let parts = with_authorization(signed_kms_request(), &format!("{head}Signature={bad}"));
        let err = verify(&parts, KMS_BODY, &store(), now()).unwrap_err();
        assert_eq!(err, SigV4Error::InvalidSignature, "{bad:?}");
    }
    // Upper-case hex of the right signature is the same bytes, accepted as AWS does.
    let parts = with_authorization(
        signed_kms_request(),
        &format!("{head}Signature={}", sig.to_uppercase()),
    );
    assert!(verify(&parts, KMS_BODY, &store(), now()).is_ok());
}

#[test]
fn unknown_access_key() {
    let parts = signed_kms_request_with(SECRET, "AKIAUNKNOWNKEY000000", now());
    let err = verify(&parts, KMS_BODY, &store(), now()).unwrap_err();
    assert_eq!(err, SigV4Error::UnrecognizedClient);
    assert_eq!(err.aws_code(), "UnrecognizedClientException");
    assert_eq!(
        err.to_string(),
        "The security token included in the request is invalid."
    );
}

#[test]
fn cached_signing_keys_change_nothing() {
    let store = store();
    let good = signed_kms_request();
    for _ in 0..3 {
        verify(&good, KMS_BODY, &store, now()).unwrap();
    }
    let wrong = signed_kms_request_with("not-the-secret", KEY_ID, now());
    assert_eq!(
        verify(&wrong, KMS_BODY, &store, now()).unwrap_err(),
        SigV4Error::InvalidSignature,
        "a warm cache for the scope must not let another secret through"
    );
    let next_day = now() + std::time::Duration::from_secs(86_400);
    let tomorrow = signed_kms_request_with(SECRET, KEY_ID, next_day);
    verify(&tomorrow, KMS_BODY, &store, next_day).unwrap();
    verify(&good, KMS_BODY, &store, now()).unwrap();
}

#[test]
fn wrong_secret_is_invalid_signature() {
    let parts = signed_kms_request_with("not-the-secret", KEY_ID, now());
    let err = verify(&parts, KMS_BODY, &store(), now()).unwrap_err();
    assert_eq!(err, SigV4Error::InvalidSignature);
    assert_eq!(err.aws_code(), "InvalidSignatureException");
    assert!(err.to_string().starts_with(
        "The request signature we calculated does not match the signature you provided."
    ));
    assert!(!err.to_string().contains(SECRET));
}

#[test]
fn any_flipped_body_byte_is_refused() {
    let parts = signed_kms_request();
    for i in 0..KMS_BODY.len() {
        let mut body = KMS_BODY.to_vec();
        body[i] ^= 0x01;
        assert_eq!(
            verify(&parts, &body, &store(), now()),
            Err(SigV4Error::InvalidSignature),
            "byte {i}"
        );
    }
    let mut longer = KMS_BODY.to_vec();
    longer.push(b' ');
    assert_eq!(
        verify(&parts, &longer, &store(), now()),
        Err(SigV4Error::InvalidSignature)
    );
    assert_eq!(
        verify(&parts, b"", &store(), now()),
        Err(SigV4Error::InvalidSignature)
    );
}

#[test]
fn tampered_signed_header_method_path_or_query_is_refused() {
    let mut parts = signed_kms_request();
    parts.headers.insert(
        "x-amz-target",
        HeaderValue::from_static("TrentService.Decrypt"),
    );
    assert_eq!(
        verify(&parts, KMS_BODY, &store(), now()),
        Err(SigV4Error::InvalidSignature)
    );

    let mut parts = signed_kms_request();
    parts.method = hyper::Method::PUT;
    assert_eq!(
        verify(&parts, KMS_BODY, &store(), now()),
        Err(SigV4Error::InvalidSignature)
    );

    let mut parts = signed_kms_request();
    parts.uri = "/?Action=Decrypt".parse().unwrap();
    assert_eq!(
        verify(&parts, KMS_BODY, &store(), now()),
        Err(SigV4Error::InvalidSignature)
    );

    // Unsigned headers may change (user-agent is not signed).
    let mut parts = signed_kms_request();
    parts
        .headers
        .insert("user-agent", HeaderValue::from_static("boto3/1.34"));
    assert!(verify(&parts, KMS_BODY, &store(), now()).is_ok());
}

#[test]
fn signed_header_missing_from_request() {
    let mut parts = signed_kms_request();
    parts.headers.remove("x-amz-target");
    let msg = incomplete_message(verify(&parts, KMS_BODY, &store(), now()));
    assert!(msg.contains("x-amz-target"), "{msg}");
}

#[test]
fn expired_and_future_requests() {
    let signed_at = now();
    let parts = signed_kms_request_with(SECRET, KEY_ID, signed_at);

    let later = signed_at + Duration::from_secs(16 * 60);
    let err = verify(&parts, KMS_BODY, &store(), later).unwrap_err();
    assert_eq!(err.aws_code(), "InvalidSignatureException");
    assert_eq!(
        err.to_string(),
        "Signature expired: 20150830T123600Z is now earlier than 20150830T123700Z \
         (20150830T125200Z - 15 min.)"
    );
    assert!(matches!(err, SigV4Error::SignatureExpired { .. }));

    let earlier = signed_at - Duration::from_secs(16 * 60);
    let err = verify(&parts, KMS_BODY, &store(), earlier).unwrap_err();
    assert_eq!(err.aws_code(), "InvalidSignatureException");
    assert_eq!(
        err.to_string(),
        "Signature not yet current: 20150830T123600Z is still later than 20150830T123500Z \
         (20150830T122000Z + 15 min.)"
    );

    // Exactly 15 minutes either way is still inside the window.
    for skew in [Duration::from_secs(15 * 60), Duration::ZERO] {
        assert!(verify(&parts, KMS_BODY, &store(), signed_at + skew).is_ok());
        assert!(verify(&parts, KMS_BODY, &store(), signed_at - skew).is_ok());
    }
}

#[test]
fn host_must_be_signed() {
    let good = authorization(&signed_kms_request());
    let without_host = good.replace(";host;", ";");
    assert_ne!(good, without_host);
    let msg = incomplete_message(verify(
        &with_authorization(signed_kms_request(), &without_host),
        KMS_BODY,
        &store(),
        now(),
    ));
    assert_eq!(
        msg,
        "'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization."
    );
}

#[test]
fn scope_date_must_match_request_date() {
    let good = authorization(&signed_kms_request());
    let shifted = good.replace("/20150830/", "/20150831/");
    let err = verify(
        &with_authorization(signed_kms_request(), &shifted),
        KMS_BODY,
        &store(),
        now(),
    )
    .unwrap_err();
    assert_eq!(err.aws_code(), "InvalidSignatureException");
    assert_eq!(
        err.to_string(),
        "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date \
         from HTTP: '20150831' != '20150830', from '20150830T123600Z'."
    );
}

#[test]
fn scope_service_and_terminator_are_checked() {
    let good = authorization(&signed_kms_request());
    let s3 = good.replace("/kms/", "/s3/");
    let err = verify(
        &with_authorization(signed_kms_request(), &s3),
        KMS_BODY,
        &store(),
        now(),
    )
    .unwrap_err();
    assert_eq!(err.aws_code(), "InvalidSignatureException");
    assert_eq!(
        err.to_string(),
        "Credential should be scoped to correct service: 'kms'."
    );

    let term = good.replace("/aws4_request", "/aws4_reqest");
    let err = verify(
        &with_authorization(signed_kms_request(), &term),
        KMS_BODY,
        &store(),
        now(),
    )
    .unwrap_err();
    assert!(matches!(err, SigV4Error::InvalidScope(_)), "{err:?}");

    // An STS-scoped signature is accepted by the default store.
    let mut parts = kms_request();
    let params = SigningParams {
        access_key_id: KEY_ID,
        secret_access_key: SECRET,
        region: "eu-central-1",
        service: "sts",
        time: now(),
    };
    sign(&mut parts, KMS_BODY, &params).unwrap();
    assert_eq!(
        verify(&parts, KMS_BODY, &store(), now()).unwrap().service,
        "sts"
    );
}

#[test]
fn date_headers() {
    let mut parts = signed_kms_request();
    parts.headers.remove("x-amz-date");
    let msg = incomplete_message(verify(&parts, KMS_BODY, &store(), now()));
    assert_eq!(
        msg,
        "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header."
    );

    let mut parts = signed_kms_request();
    parts.headers.insert(
        "x-amz-date",
        HeaderValue::from_static("2015-08-30T12:36:00Z"),
    );
    let msg = incomplete_message(verify(&parts, KMS_BODY, &store(), now()));
    assert!(
        msg.starts_with("Date must be in ISO-8601 'basic format'."),
        "{msg}"
    );
}

#[test]
fn content_sha256_header_must_match_body() {
    let mut parts = kms_request();
    parts.headers.insert(
        "x-amz-content-sha256",
        HeaderValue::from_static(
            "0000000000000000000000000000000000000000000000000000000000000000",
        ),
    );
    let params = SigningParams {
        access_key_id: KEY_ID,
        secret_access_key: SECRET,
        region: "eu-central-1",
        service: "kms",
        time: now(),
    };
    sign(&mut parts, KMS_BODY, &params).unwrap();
    let err = verify(&parts, KMS_BODY, &store(), now()).unwrap_err();
    assert_eq!(err, SigV4Error::PayloadHashMismatch);
    assert_eq!(err.aws_code(), "InvalidSignatureException");

    // The right hash is accepted.
    let mut parts = kms_request();
    let hash = hex::encode(aws_lc_rs::digest::digest(
        &aws_lc_rs::digest::SHA256,
        KMS_BODY,
    ));
    parts.headers.insert(
        "x-amz-content-sha256",
        HeaderValue::from_str(&hash).unwrap(),
    );
    sign(&mut parts, KMS_BODY, &params).unwrap();
    assert!(verify(&parts, KMS_BODY, &store(), now()).is_ok());
}

#[test]
fn a_security_token_is_refused_for_permanent_credentials() {
    let mut parts = kms_request();
    parts.headers.insert(
        "x-amz-security-token",
        HeaderValue::from_static(SUITE_TOKEN),
    );
    let params = SigningParams {
        access_key_id: KEY_ID,
        secret_access_key: SECRET,
        region: "eu-central-1",
        service: "kms",
        time: now(),
    };
    sign(&mut parts, KMS_BODY, &params).unwrap();
    assert!(authorization(&parts).contains("x-amz-security-token"));
    let err = verify(&parts, KMS_BODY, &store(), now()).unwrap_err();
    assert_eq!(err, SigV4Error::UnrecognizedClient);
    assert_eq!(err.aws_code(), "UnrecognizedClientException");
}

/// Signs `parts` with only `signed` in SignedHeaders (as a client that
/// leaves headers out would).
fn sign_only(parts: &mut Parts, signed: &[&str]) {
    let mut full = parts.clone();
    full.headers.retain_names(signed);
    let params = SigningParams {
        access_key_id: KEY_ID,
        secret_access_key: SECRET,
        region: "eu-central-1",
        service: "kms",
        time: now(),
    };
    sign(&mut full, KMS_BODY, &params).unwrap();
    for name in ["authorization", "x-amz-date", "host"] {
        parts
            .headers
            .insert(HeaderName::from_static(name), full.headers[name].clone());
    }
}

trait RetainNames {
    fn retain_names(&mut self, keep: &[&str]);
}

impl RetainNames for hyper::HeaderMap {
    fn retain_names(&mut self, keep: &[&str]) {
        let drop: Vec<HeaderName> = self
            .keys()
            .filter(|n| !keep.contains(&n.as_str()))
            .cloned()
            .collect();
        for n in drop {
            self.remove(n);
        }
    }
}

#[test]
fn unsigned_target_content_type_or_amz_headers_are_refused() {
    // Signed with everything: verifies.
    let mut parts = kms_request();
    sign_only(
        &mut parts,
        &["host", "x-amz-date", "x-amz-target", "content-type"],
    );
    assert!(verify(&parts, KMS_BODY, &store(), now()).is_ok());

    // A captured DescribeKey whose X-Amz-Target was unsigned could be replayed
    // as DisableKey: refused whatever the target says.
    for (left_out, header) in [
        (vec!["host", "x-amz-date", "content-type"], "x-amz-target"),
        (vec!["host", "x-amz-date", "x-amz-target"], "content-type"),
    ] {
        let mut parts = kms_request();
        sign_only(&mut parts, &left_out);
        let message = incomplete_message(verify(&parts, KMS_BODY, &store(), now()));
        assert_eq!(
            message,
            format!("'{header}' must be a 'SignedHeader' in the AWS Authorization.")
        );
    }

    // Any x-amz-* header present must be signed.
    let mut parts = kms_request();
    sign_only(
        &mut parts,
        &["host", "x-amz-date", "x-amz-target", "content-type"],
    );
    parts
        .headers
        .insert("x-amz-extra", HeaderValue::from_static("1"));
    let message = incomplete_message(verify(&parts, KMS_BODY, &store(), now()));
    assert!(message.contains("'x-amz-extra'"), "{message}");
}

#[test]
fn the_scope_is_checked_before_any_key_is_derived_or_cached() {
    let store = store();
    // A 300 KB region (and 300 of them) grows nothing: refused before any
    // signing key is derived.
    let huge = "a".repeat(300_000);
    for i in 0..300 {
        let parts = with_authorization(
            signed_kms_request(),
            &format!(
                "AWS4-HMAC-SHA256 Credential={KEY_ID}/20150830/{huge}{i}/kms/aws4_request, \
                 SignedHeaders=content-type;host;x-amz-date;x-amz-target, Signature={}",
                "0".repeat(64)
            ),
        );
        let err = verify(&parts, KMS_BODY, &store, now()).unwrap_err();
        assert_eq!(err.aws_code(), "InvalidSignatureException");
        assert!(err.to_string().len() < 200, "message echoes a short prefix");
    }
    assert_eq!(store.cached_signing_keys(), 0);

    // Well-formed scopes with wrong signatures are not cached either.
    for region in ["eu-west-1", "eu-west-2", "ap-south-1"] {
        let parts = with_authorization(
            signed_kms_request(),
            &format!(
                "AWS4-HMAC-SHA256 Credential={KEY_ID}/20150830/{region}/kms/aws4_request, \
                 SignedHeaders=content-type;host;x-amz-date;x-amz-target, Signature={}",
                "0".repeat(64)
            ),
        );
        assert_eq!(
            verify(&parts, KMS_BODY, &store, now()),
            Err(SigV4Error::InvalidSignature)
        );
    }
    assert_eq!(store.cached_signing_keys(), 0);

    // A verified signature caches its key, once.
    for _ in 0..3 {
        assert!(verify(&signed_kms_request(), KMS_BODY, &store, now()).is_ok());
    }
    assert_eq!(store.cached_signing_keys(), 1);
}

#[test]
fn http2_requests_take_host_from_authority() {
    let mut parts = signed_kms_request();
    parts.headers.remove("host");
    parts.uri = "https://kms.eu-central-1.keyfence.test:8443/"
        .parse()
        .unwrap();
    assert!(verify(&parts, KMS_BODY, &store(), now()).is_ok());
    parts.uri = "https://other.keyfence.test/".parse().unwrap();
    assert_eq!(
        verify(&parts, KMS_BODY, &store(), now()),
        Err(SigV4Error::InvalidSignature)
    );
}

#[test]
fn duplicate_access_keys_are_rejected() {
    let c = Credential {
        access_key_id: KEY_ID.into(),
        secret_access_key: Zeroizing::new(SECRET.into()),
        account_id: "123456789012".into(),
        user_name: "alice".into(),
    };
    let err = CredentialStore::new([c.clone(), c]).unwrap_err();
    assert_eq!(err.0, KEY_ID);
    let shown = format!("{:?}", store());
    assert!(!shown.contains(SECRET), "{shown}");
}

/// Deterministic xorshift, so failures reproduce.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

#[test]
fn mutated_headers_never_panic_or_verify() {
    let base = signed_kms_request();
    let good = authorization(&base).into_bytes();
    let alphabet: &[u8] =
        b" ,;=/AWS4-HMAC-SHA256Credential=SignedHeaders=Signature=\t0123456789abcdef\x80\xff";
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut verified = 0;
    for _ in 0..20_000 {
        let mut header = good.clone();
        for _ in 0..=rng.below(4) {
            match rng.below(4) {
                0 if !header.is_empty() => {
                    let i = rng.below(header.len());
                    header[i] = alphabet[rng.below(alphabet.len())];
                }
                1 if !header.is_empty() => {
                    let i = rng.below(header.len());
                    header.remove(i);
                }
                2 => {
                    let i = rng.below(header.len() + 1);
                    header.insert(i, alphabet[rng.below(alphabet.len())]);
                }
                _ => {
                    let i = rng.below(header.len() + 1);
                    header.truncate(i);
                }
            }
        }
        let Ok(value) = HeaderValue::from_bytes(&header) else {
            continue;
        };
        let mut parts = signed_kms_request();
        parts.headers.insert(AUTHORIZATION, value);
        // Random date headers too.
        if rng.below(8) == 0 {
            let date: Vec<u8> = (0..rng.below(20))
                .map(|_| alphabet[rng.below(alphabet.len())])
                .collect();
            if let Ok(v) = HeaderValue::from_bytes(&date) {
                parts
                    .headers
                    .insert(HeaderName::from_static("x-amz-date"), v);
            }
        }
        if verify(&parts, KMS_BODY, &store(), now()).is_ok() {
            verified += 1;
            // Only mutations that keep the signed content equivalent may pass, e.g.
            // upper-casing hex digits or extra separators.
            assert!(header.windows(10).any(|w| w == b"Signature="));
        }
    }
    assert!(verified < 20_000);
}

// ------------------------------------------------ interoperability with botocore

/// 2026-11-23T11:45:00Z.
const BOTOCORE_EPOCH: u64 = 1_795_434_300;

fn botocore_time() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(BOTOCORE_EPOCH)
}

fn build(method: &str, uri: &str, headers: &[(&str, &str)]) -> Parts {
    let mut builder = hyper::Request::builder().method(method).uri(uri);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    builder.body(()).unwrap().into_parts().0
}

/// A KMS Encrypt request signed by botocore 1.43 (`SigV4Auth.add_auth`, as boto3 and
/// the AWS CLI do), with the headers urllib3 puts on the wire.
#[test]
fn botocore_signed_kms_request_verifies() {
    let body = br#"{"KeyId": "alias/test", "Plaintext": "aGVsbG8="}"#;
    let parts = build(
        "POST",
        "/",
        &[
            ("host", "localhost:8443"),
            ("content-type", "application/x-amz-json-1.1"),
            ("x-amz-target", "TrentService.Encrypt"),
            ("user-agent", "Boto3/1.40 md/Botocore#1.43"),
            ("amz-sdk-invocation-id", "7f2b5a3e-1111-2222-3333-444455556666"),
            ("amz-sdk-request", "attempt=1"),
            ("x-amz-date", "20261123T114500Z"),
            ("content-length", "48"),
            (
                "authorization",
                "AWS4-HMAC-SHA256 Credential=AKIAKEYFENCETEST0001/20261123/eu-central-1/kms/aws4_request, \
                 SignedHeaders=amz-sdk-invocation-id;amz-sdk-request;content-type;host;x-amz-date;x-amz-target, \
                 Signature=21379f263282d1b36114ddb6efdde3d1278ccb41c7e0f3f700071a0bcde010f3",
            ),
        ],
    );
    let caller = verify(&parts, body, &store(), botocore_time()).unwrap();
    assert_eq!(caller.user_name, "alice");
    assert_eq!(caller.region, "eu-central-1");
}

/// botocore's canonical path (normalized, encoded twice for non-S3 services) and
/// query (decoded, re-encoded, sorted by key then value).
#[test]
fn botocore_signed_path_and_query_verify() {
    let parts = build(
        "GET",
        "/keys/a%20b/c~d?b=2&a=x%20y&a=%2F&empty=",
        &[
            ("host", "localhost:8443"),
            ("x-amz-date", "20261123T114500Z"),
            (
                "authorization",
                "AWS4-HMAC-SHA256 Credential=AKIAKEYFENCETEST0001/20261123/eu-central-1/kms/aws4_request, \
                 SignedHeaders=host;x-amz-date, \
                 Signature=0331ef43a35eb77ebeba8ff19f4fad578374f871b754d07125d94e335e6a95b1",
            ),
        ],
    );
    verify(&parts, b"", &store(), botocore_time()).unwrap();
}
