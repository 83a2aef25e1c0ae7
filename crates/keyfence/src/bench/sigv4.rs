//! SigV4 signing for the load generator, with what is constant precomputed: the
//! signing key (once per day), the `X-Amz-Date` value (once per second) and the
//! payload hash (once per request body, which a workload reuses). The canonical
//! request, string to sign and signature are computed for every request, exactly
//! as `keyfence_server::sigv4::sign` does (a test checks they agree), so the node
//! verifies a real, fresh signature each time — only the client's own cost shrinks,
//! which matters because it shares the CPUs with the node.

use std::time::{SystemTime, UNIX_EPOCH};

use aws_lc_rs::{digest, hmac};
use hyper::header::HeaderValue;

/// The content type every request carries (and signs).
const CONTENT_TYPE: &str = super::client::AMZ_JSON;
/// Headers signed, sorted.
const SIGNED_HEADERS: &str = "content-type;host;x-amz-date;x-amz-target";

/// Hex SHA-256 of a request body.
pub fn payload_hash(body: &[u8]) -> String {
    hex::encode(digest::digest(&digest::SHA256, body))
}

/// A signer for one credential and one endpoint; keep one per connection.
#[derive(Clone)]
pub struct Signer {
    access_key_id: String,
    secret_access_key: String,
    region: String,
    service: String,
    authority: String,
    /// `yyyymmdd` the key below is for.
    day: String,
    key: Option<hmac::Key>,
    /// `AWS4-HMAC-SHA256 Credential=…, SignedHeaders=…, Signature=` for `day`.
    auth_prefix: String,
    /// Unix second `amz_date` is for.
    second: u64,
    amz_date: String,
    canonical: String,
}

impl Signer {
    /// A signer for `authority` (`host:port`, the Host / :authority value).
    pub fn new(
        access_key_id: &str,
        secret_access_key: &str,
        region: &str,
        service: &str,
        authority: &str,
    ) -> Self {
        Self {
            access_key_id: access_key_id.to_string(),
            secret_access_key: secret_access_key.to_string(),
            region: region.to_string(),
            service: service.to_string(),
            authority: authority.to_string(),
            day: String::new(),
            key: None,
            auth_prefix: String::new(),
            second: u64::MAX,
            amz_date: String::new(),
            canonical: String::with_capacity(512),
        }
    }

    /// Signs a POST to `/` with the given `X-Amz-Target` and payload hash at `time`;
    /// gives the `X-Amz-Date` and `Authorization` header values.
    pub fn sign(
        &mut self,
        time: SystemTime,
        target: &str,
        payload_hash: &str,
    ) -> Result<(HeaderValue, HeaderValue), String> {
        let second = time
            .duration_since(UNIX_EPOCH)
            .map_err(|_| "signing time before 1970".to_string())?
            .as_secs();
        if second != self.second {
            self.amz_date = amz_date(second);
            self.second = second;
            if self.day != self.amz_date[..8] || self.key.is_none() {
                self.day = self.amz_date[..8].to_string();
                self.key = Some(signing_key(
                    &self.secret_access_key,
                    &self.day,
                    &self.region,
                    &self.service,
                ));
                self.auth_prefix = format!(
                    "AWS4-HMAC-SHA256 Credential={}/{}/{}/{}/aws4_request, SignedHeaders={SIGNED_HEADERS}, Signature=",
                    self.access_key_id, self.day, self.region, self.service
                );
            }
        }
        let c = &mut self.canonical;
        c.clear();
        c.push_str("POST\n/\n\ncontent-type:");
        c.push_str(CONTENT_TYPE);
        c.push_str("\nhost:");
        c.push_str(&self.authority);
        c.push_str("\nx-amz-date:");
        c.push_str(&self.amz_date);
        c.push_str("\nx-amz-target:");
        c.push_str(target.trim());
        c.push_str("\n\n");
        c.push_str(SIGNED_HEADERS);
        c.push('\n');
        c.push_str(payload_hash);
        let canonical_hash = hex::encode(digest::digest(&digest::SHA256, c.as_bytes()));
        let string_to_sign = format!(
            "AWS4-HMAC-SHA256\n{}\n{}/{}/{}/aws4_request\n{canonical_hash}",
            self.amz_date, self.day, self.region, self.service
        );
        let key = self.key.as_ref().ok_or("no signing key")?;
        let signature = hmac::sign(key, string_to_sign.as_bytes());
        let mut auth = String::with_capacity(self.auth_prefix.len() + 64);
        auth.push_str(&self.auth_prefix);
        auth.push_str(&hex::encode(signature.as_ref()));
        let auth = HeaderValue::from_str(&auth).map_err(|e| format!("authorization: {e}"))?;
        let date = HeaderValue::from_str(&self.amz_date).map_err(|e| format!("date: {e}"))?;
        Ok((date, auth))
    }
}

fn signing_key(secret: &str, day: &str, region: &str, service: &str) -> hmac::Key {
    let step = |key: &[u8], data: &str| {
        hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, key), data.as_bytes())
    };
    let k_date = step(format!("AWS4{secret}").as_bytes(), day);
    let k_region = step(k_date.as_ref(), region);
    let k_service = step(k_region.as_ref(), service);
    let k_signing = step(k_service.as_ref(), "aws4_request");
    hmac::Key::new(hmac::HMAC_SHA256, k_signing.as_ref())
}

/// `yyyymmddThhmmssZ` for a Unix time (UTC, proleptic Gregorian calendar).
fn amz_date(unix: u64) -> String {
    let days = (unix / 86_400) as i64;
    let rem = unix % 86_400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}{month:02}{day:02}T{:02}{:02}{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use hyper::Request;
    use keyfence_server::sigv4::{self, SigningParams};

    use super::*;

    #[test]
    fn dates_are_formatted_in_utc() {
        assert_eq!(amz_date(0), "19700101T000000Z");
        assert_eq!(amz_date(951_782_400), "20000229T000000Z");
        assert_eq!(amz_date(1_440_938_160), "20150830T123600Z");
        assert_eq!(amz_date(4_102_444_799), "20991231T235959Z");
    }

    /// The same request signed by the node's reference signer and by this one.
    fn both(time: SystemTime, target: &str, body: &[u8]) -> (String, String) {
        let authority = "127.0.0.1:8443";
        let (mut parts, ()) = Request::post("/")
            .header("host", authority)
            .header("x-amz-target", target)
            .header("content-type", CONTENT_TYPE)
            .body(())
            .unwrap()
            .into_parts();
        sigv4::sign(
            &mut parts,
            body,
            &SigningParams {
                access_key_id: "AKIDEXAMPLE",
                secret_access_key: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
                region: "eu-west-3",
                service: "kms",
                time,
            },
        )
        .unwrap();
        let reference = parts.headers["authorization"].to_str().unwrap().to_string();
        let mut signer = Signer::new(
            "AKIDEXAMPLE",
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            "eu-west-3",
            "kms",
            authority,
        );
        let (date, auth) = signer.sign(time, target, &payload_hash(body)).unwrap();
        assert_eq!(date, parts.headers["x-amz-date"]);
        (reference, auth.to_str().unwrap().to_string())
    }

    #[test]
    fn signatures_match_the_reference_signer() {
        let t = UNIX_EPOCH + Duration::from_secs(1_763_900_000);
        let (a, b) = both(
            t,
            "TrentService.Encrypt",
            br#"{"KeyId":"k","Plaintext":"AA=="}"#,
        );
        assert_eq!(a, b);
        let (a, b) = both(
            t + Duration::from_secs(86_400 * 40 + 7),
            "TrentService.Decrypt",
            b"",
        );
        assert_eq!(a, b);
    }

    #[test]
    fn cached_key_and_date_follow_the_clock() {
        let t = UNIX_EPOCH + Duration::from_secs(1_763_942_399); // 23:59:59
        let mut s = Signer::new("AKID", "secret", "us-east-1", "kms", "h:1");
        let h = payload_hash(b"{}");
        let (d1, a1) = s.sign(t, "TrentService.Encrypt", &h).unwrap();
        let (d1b, a1b) = s.sign(t, "TrentService.Encrypt", &h).unwrap();
        assert_eq!((&d1, &a1), (&d1b, &a1b));
        let (d2, a2) = s
            .sign(t + Duration::from_secs(1), "TrentService.Encrypt", &h)
            .unwrap();
        assert_ne!(d1, d2);
        assert!(a1.to_str().unwrap().contains("/20251123/"), "{a1:?}");
        assert!(a2.to_str().unwrap().contains("/20251124/"), "{a2:?}");
        // After the day changed, a fresh signer agrees with the cached one.
        let mut fresh = Signer::new("AKID", "secret", "us-east-1", "kms", "h:1");
        let (_, a3) = fresh
            .sign(t + Duration::from_secs(1), "TrentService.Encrypt", &h)
            .unwrap();
        assert_eq!(a2, a3);
    }
}
