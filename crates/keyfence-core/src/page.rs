//! Limit/Marker paging as the AWS List* operations do it.

use crate::{Bound, KmsError, Member};

/// One page of results.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<T> {
    /// The items on this page.
    pub items: Vec<T>,
    /// Marker for the next page, if there is one.
    pub next_marker: Option<String>,
}

/// Validates a caller's Limit (1..=`max`), defaulting to `default`.
pub fn limit(limit: Option<i64>, default: usize, max: usize) -> Result<usize, KmsError> {
    match limit {
        None => Ok(default),
        Some(n) if n >= 1 && n as u64 <= max as u64 => Ok(n as usize),
        Some(n) => Err(KmsError::OutOfBounds {
            member: Member::Limit,
            bound: Bound::Value {
                value: n,
                min: 1,
                max: max as i64,
            },
        }),
    }
}

/// Prefix of every marker this service issues.
const MARKER_PREFIX: &str = "kf1.";

fn encode_marker(sort_key: &str) -> String {
    format!("{MARKER_PREFIX}{}", hex::encode(sort_key))
}

fn decode_marker(marker: &str) -> Result<String, KmsError> {
    let invalid = || KmsError::InvalidMarker;
    let hex_part = marker.strip_prefix(MARKER_PREFIX).ok_or_else(invalid)?;
    let bytes = hex::decode(hex_part).map_err(|_| invalid())?;
    String::from_utf8(bytes).map_err(|_| invalid())
}

/// Pages `items`, already sorted by `sort_key` ascending and unique in it:
/// the page starts after the item a previous page's marker points at.
/// Markers are opaque; one this service did not issue is InvalidMarkerException.
pub fn paginate<T>(
    items: Vec<T>,
    sort_key: impl Fn(&T) -> String,
    marker: Option<&str>,
    limit: usize,
) -> Result<Page<T>, KmsError> {
    let mut rest: Vec<T> = match marker {
        Some(m) => {
            let after = decode_marker(m)?;
            items.into_iter().filter(|t| sort_key(t) > after).collect()
        }
        None => items,
    };
    let next_marker = if rest.len() > limit {
        rest.truncate(limit);
        rest.last().map(|t| encode_marker(&sort_key(t)))
    } else {
        None
    };
    Ok(Page {
        items: rest,
        next_marker,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_cover_everything_once() {
        let items: Vec<String> = (0..7).map(|i| format!("k{i}")).collect();
        let mut seen = Vec::new();
        let mut marker = None;
        loop {
            let page = paginate(items.clone(), |s| s.clone(), marker.as_deref(), 3).unwrap();
            seen.extend(page.items);
            match page.next_marker {
                Some(m) => marker = Some(m),
                None => break,
            }
        }
        assert_eq!(seen, items);
    }

    #[test]
    fn foreign_markers_are_refused() {
        for bad in ["definitely-not-a-marker", "kf1.zz", "kf1.ff", ""] {
            assert!(
                matches!(
                    paginate(vec![1], |i| i.to_string(), Some(bad), 1),
                    Err(KmsError::InvalidMarker)
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn limits() {
        assert_eq!(limit(None, 100, 1000), Ok(100));
        assert_eq!(limit(Some(1000), 100, 1000), Ok(1000));
        assert!(limit(Some(0), 100, 1000).is_err());
        assert!(limit(Some(1001), 100, 1000).is_err());
    }
}
