//! The policy language's wildcards: `*` matches any run of characters, `?` any one.

/// Whether `text` matches `pattern` (`*` any run, `?` one character),
/// comparing ASCII letters without case when `ignore_case`.
pub fn wildcard_matches(pattern: &str, text: &str, ignore_case: bool) -> bool {
    let (p, t) = (pattern.as_bytes(), text.as_bytes());
    let eq = |a: u8, b: u8| {
        if ignore_case {
            a.eq_ignore_ascii_case(&b)
        } else {
            a == b
        }
    };
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && p[pi] == b'*' {
            star = Some((pi, ti));
            pi += 1;
        } else if pi < p.len() && p[pi] == b'?' {
            pi += 1;
            ti += char_len(t[ti]);
        } else if pi < p.len() && eq(p[pi], t[ti]) {
            pi += 1;
            ti += 1;
        } else if let Some((sp, st)) = star {
            let next = st + char_len(t[st]);
            star = Some((sp, next));
            pi = sp + 1;
            ti = next;
        } else {
            return false;
        }
    }
    p[pi.min(p.len())..].iter().all(|&c| c == b'*')
}

/// Length of the UTF-8 character starting with byte `b` (1 for a stray continuation byte).
fn char_len(b: u8) -> usize {
    match b {
        0xf0..=0xff => 4,
        0xe0..=0xef => 3,
        0xc0..=0xdf => 2,
        _ => 1,
    }
}

/// ArnLike / ArnEquals: both split into their six `:`-separated parts (the
/// last keeps its colons), each part matched with wildcards, case-sensitively.
pub fn arn_matches(pattern: &str, arn: &str) -> bool {
    if pattern == "*" {
        return true;
    }
    let p: Vec<&str> = pattern.splitn(6, ':').collect();
    let a: Vec<&str> = arn.splitn(6, ':').collect();
    p.len() == 6 && a.len() == 6 && p.iter().zip(&a).all(|(p, a)| wildcard_matches(p, a, false))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards() {
        assert!(wildcard_matches("kms:*", "kms:Encrypt", false));
        assert!(wildcard_matches(
            "kms:Gen*DataKey*",
            "kms:GenerateDataKeyPair",
            false
        ));
        assert!(!wildcard_matches(
            "kms:Gen*Pair",
            "kms:GenerateDataKey",
            false
        ));
        assert!(wildcard_matches("kms:encrypt", "kms:Encrypt", true));
        assert!(!wildcard_matches("kms:encrypt", "kms:Encrypt", false));
        assert!(wildcard_matches("a?c", "abc", false));
        assert!(wildcard_matches("a?c", "aéc", false));
        assert!(!wildcard_matches("a?c", "ac", false));
        assert!(wildcard_matches("*", "", false));
        assert!(!wildcard_matches("", "x", false));
        assert!(wildcard_matches("**x", "abx", false));
        assert!(wildcard_matches("*ab*ab", "xxabyyab", false));
        assert!(!wildcard_matches("*ab*ab", "xxabyya", false));
    }

    #[test]
    fn arns() {
        let key = "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab";
        assert!(arn_matches("arn:aws:kms:*:111122223333:key/*", key));
        assert!(arn_matches(
            "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab",
            key
        ));
        assert!(!arn_matches("arn:aws:kms:*:444455556666:key/*", key));
        assert!(!arn_matches("arn:aws:kms:*:111122223333:alias/*", key));
        assert!(arn_matches("*", key));
        assert!(!arn_matches("arn:aws:kms", key));
    }
}
