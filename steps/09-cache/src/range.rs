//! A byte range of a stored response (RFC 9110 §14): a client that asks
//! for part of what the cache holds whole gets that part, `206 Partial
//! Content`, without the origin.
//!
//! Only the simple case: one range (`bytes=0-1`, `bytes=5-`,
//! `bytes=-3`) of a stored `200`. Several ranges, `If-Range`, and a range
//! past the end go to the origin, which knows how it wants to answer
//! them; a `206` is never stored.

use hyper::header::{CONTENT_LENGTH, CONTENT_RANGE, HeaderValue};

/// The first and last byte `spec` (a `Range` value) asks of a body of
/// `length` bytes; None unless it is one satisfiable byte range.
pub fn single(spec: &HeaderValue, length: u64) -> Option<(u64, u64)> {
    let spec = spec.to_str().ok()?.trim();
    let (unit, ranges) = spec.split_once('=')?;
    if !unit.trim().eq_ignore_ascii_case("bytes") || ranges.contains(',') || length == 0 {
        return None;
    }
    let (first, last) = ranges.trim().split_once('-')?;
    let number = |text: &str| -> Option<u64> {
        let text = text.trim();
        (!text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()))
            .then(|| text.parse().ok())
            .flatten()
    };
    match (first.trim().is_empty(), last.trim().is_empty()) {
        // bytes=-N: the last N bytes.
        (true, false) => {
            let suffix = number(last)?;
            (suffix > 0).then(|| (length.saturating_sub(suffix), length - 1))
        }
        // bytes=N-: from N to the end.
        (false, true) => {
            let first = number(first)?;
            (first < length).then_some((first, length - 1))
        }
        (false, false) => {
            let (first, last) = (number(first)?, number(last)?);
            (first <= last && first < length).then_some((first, last.min(length - 1)))
        }
        (true, true) => None,
    }
}

/// The headers of a 206 for bytes `first..=last` of a body of `length`:
/// the stored ones, with the part's length and where it sits.
pub fn part_headers(headers: &mut hyper::HeaderMap, (first, last): (u64, u64), length: u64) {
    headers.insert(CONTENT_LENGTH, HeaderValue::from(last - first + 1));
    if let Ok(range) = HeaderValue::from_str(&format!("bytes {first}-{last}/{length}")) {
        headers.insert(CONTENT_RANGE, range);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(spec: &str, length: u64) -> Option<(u64, u64)> {
        single(&HeaderValue::from_str(spec).unwrap(), length)
    }

    #[test]
    fn the_three_forms_of_one_range() {
        assert_eq!(range("bytes=0-1", 11), Some((0, 1)));
        assert_eq!(range("bytes=5-", 11), Some((5, 10)));
        assert_eq!(range("bytes=-3", 11), Some((8, 10)));
        assert_eq!(range("bytes=5-100", 11), Some((5, 10)));
        assert_eq!(range("bytes=-100", 11), Some((0, 10)));
    }

    #[test]
    fn what_the_cache_leaves_to_the_origin() {
        for spec in [
            "bytes=0-1,3-4",
            "bytes=11-",
            "bytes=3-2",
            "items=0-1",
            "bytes=-0",
            "bytes=a-b",
            "bytes=-",
        ] {
            assert_eq!(range(spec, 11), None, "{spec}");
        }
    }
}
