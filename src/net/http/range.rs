//! HTTP `Range` headers (RFC 9110 §14), single ranges, resolved against a size: what both of
//! Syncy's HTTP servers answer.

/// A byte range request, resolved against the size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeAnswer {
    /// No Range header: the whole file.
    Whole,
    /// `start..=end`.
    Partial(u64, u64),
    /// Cannot be satisfied.
    Unsatisfiable,
}

/// Parses a `Range` header value against a file of `size` bytes (single ranges only).
pub fn parse_range(value: Option<&str>, size: u64) -> RangeAnswer {
    let Some(v) = value else { return RangeAnswer::Whole };
    let Some(spec) = v.trim().strip_prefix("bytes=") else { return RangeAnswer::Whole };
    if spec.contains(',') {
        // Multiple ranges: answer with the whole file, as RFC 9110 allows.
        return RangeAnswer::Whole;
    }
    let Some((a, b)) = spec.split_once('-') else { return RangeAnswer::Unsatisfiable };
    let (a, b) = (a.trim(), b.trim());
    let range = match (a.parse::<u64>(), b.parse::<u64>()) {
        (Ok(s), Ok(e)) if s <= e => Some((s, e.min(size.saturating_sub(1)))),
        (Ok(s), Err(_)) if b.is_empty() => Some((s, size.saturating_sub(1))),
        (Err(_), Ok(n)) if a.is_empty() && n > 0 => Some((size.saturating_sub(n), size.saturating_sub(1))),
        _ => None,
    };
    match range {
        Some((s, e)) if s < size && s <= e => RangeAnswer::Partial(s, e),
        _ => RangeAnswer::Unsatisfiable,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ranges() {
        use RangeAnswer::*;
        assert_eq!(parse_range(None, 100), Whole);
        assert_eq!(parse_range(Some("bytes=0-"), 100), Partial(0, 99));
        assert_eq!(parse_range(Some("bytes=10-19"), 100), Partial(10, 19));
        assert_eq!(parse_range(Some("bytes=90-200"), 100), Partial(90, 99));
        assert_eq!(parse_range(Some("bytes=-10"), 100), Partial(90, 99));
        assert_eq!(parse_range(Some("bytes=100-"), 100), Unsatisfiable);
        assert_eq!(parse_range(Some("bytes=20-10"), 100), Unsatisfiable);
        assert_eq!(parse_range(Some("bytes=x-y"), 100), Unsatisfiable);
        assert_eq!(parse_range(Some("bytes=0-1,5-6"), 100), Whole);
        assert_eq!(parse_range(Some("items=0-1"), 100), Whole);
    }
}
