//! Dates as the Date* condition operators read them: ISO 8601 (as in
//! `2026-01-31T12:00:00Z`, with optional fraction and offset, or a bare date)
//! or seconds since the epoch.

use crate::Timestamp;

/// Parses a policy or request date into milliseconds since the epoch.
pub fn parse_date(s: &str) -> Option<Timestamp> {
    let s = s.trim();
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        return s.parse::<i64>().ok()?.checked_mul(1000).map(Timestamp);
    }
    let b = s.as_bytes();
    let num = |from: usize, len: usize| -> Option<i64> {
        let part = b.get(from..from + len)?;
        part.iter()
            .all(u8::is_ascii_digit)
            .then(|| std::str::from_utf8(part).ok()?.parse().ok())?
    };
    if b.len() < 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let (year, month, day) = (num(0, 4)?, num(5, 2)?, num(8, 2)?);
    if !(1..=12).contains(&month) || !(1..=days_in_month(year, month)).contains(&day) {
        return None;
    }
    let mut ms = days_from_civil(year, month, day) * 86_400_000;
    if b.len() == 10 {
        return Some(Timestamp(ms));
    }
    if !matches!(b[10], b'T' | b't') || b.len() < 19 || b[13] != b':' || b[16] != b':' {
        return None;
    }
    let (h, m, sec) = (num(11, 2)?, num(14, 2)?, num(17, 2)?);
    if h > 23 || m > 59 || sec > 60 {
        return None;
    }
    ms += (h * 3600 + m * 60 + sec) * 1000;
    let mut i = 19;
    if b.get(i) == Some(&b'.') {
        let start = i + 1;
        i = start;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        if i == start {
            return None;
        }
        let frac = &s[start..i.min(start + 3)];
        ms += frac.parse::<i64>().ok()? * 10_i64.pow(3 - frac.len() as u32);
    }
    match b.get(i) {
        Some(b'Z' | b'z') if i + 1 == b.len() => Some(Timestamp(ms)),
        Some(sign @ (b'+' | b'-')) if b.len() == i + 6 && b[i + 3] == b':' => {
            let offset = (num(i + 1, 2)? * 60 + num(i + 4, 2)?) * 60_000;
            Some(Timestamp(if *sign == b'+' {
                ms - offset
            } else {
                ms + offset
            }))
        }
        None => Some(Timestamp(ms)),
        _ => None,
    }
}

/// `YYYY-MM-DDTHH:MM:SSZ` of an instant (aws:CurrentTime).
pub(crate) fn format_date(t: Timestamp) -> String {
    let secs = t.0.div_euclid(1000);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if is_leap(y) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The inverse of [`days_from_civil`].
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_parse_in_every_form() {
        let t = Timestamp(1_767_225_600_000); // 2026-01-01T00:00:00Z
        assert_eq!(parse_date("2026-01-01"), Some(t));
        assert_eq!(parse_date("2026-01-01T00:00:00Z"), Some(t));
        assert_eq!(parse_date("2026-01-01T01:00:00+01:00"), Some(t));
        assert_eq!(parse_date("2025-12-31T23:00:00-01:00"), Some(t));
        assert_eq!(parse_date("1767225600"), Some(t));
        assert_eq!(
            parse_date("2026-01-01T00:00:00.250Z"),
            Some(Timestamp(t.0 + 250))
        );
        assert_eq!(parse_date("2024-02-29"), Some(Timestamp(1_709_164_800_000)));
        for bad in [
            "2025-02-29",
            "2026-13-01",
            "2026-01-01T25:00:00Z",
            "yesterday",
            "",
            "2026-01-01T00:00:00Zx",
        ] {
            assert_eq!(parse_date(bad), None, "{bad}");
        }
        assert_eq!(format_date(t), "2026-01-01T00:00:00Z");
        assert_eq!(
            format_date(Timestamp(1_709_164_800_000 + 3_723_000)),
            "2024-02-29T01:02:03Z"
        );
        assert_eq!(
            parse_date(&format_date(Timestamp(4_102_444_799_000))),
            Some(Timestamp(4_102_444_799_000))
        );
    }
}
