//! Which stored response answers which request: the URL, then `Vary`
//! (RFC 9111 §4.1).
//!
//! A response that says `Vary: Accept-Encoding` was chosen by the origin
//! from that request header; it may answer another request only if that
//! request's `Accept-Encoding` is the same. The cache keeps, with each
//! stored response, the values its request had for each varying header,
//! and compares them with the next request's. "The same" is after
//! normalising what cannot change the answer: lines combined, spaces
//! around commas, and the case of values the RFCs make case-insensitive.
//! `Vary: *` matches nothing. A header that was absent matches only its
//! absence.

use hyper::HeaderMap;
use hyper::header::{ACCEPT_ENCODING, ACCEPT_LANGUAGE, HeaderName, VARY};

/// What a response's `Vary` says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Vary {
    /// Any request for the URL may have it.
    None,
    /// Only requests with the same values of these headers.
    Fields(Vec<HeaderName>),
    /// No other request may have it.
    Star,
}

impl Vary {
    pub fn of(headers: &HeaderMap) -> Self {
        let mut fields = Vec::new();
        for line in headers.get_all(VARY) {
            let Ok(line) = line.to_str() else {
                return Self::Star;
            };
            for name in line.split(',').map(str::trim).filter(|n| !n.is_empty()) {
                if name == "*" {
                    return Self::Star;
                }
                match HeaderName::from_bytes(name.as_bytes()) {
                    Ok(name) if !fields.contains(&name) => fields.push(name),
                    Ok(_) => {}
                    // A field name that is not one cannot be matched.
                    Err(_) => return Self::Star,
                }
            }
        }
        if fields.is_empty() {
            Self::None
        } else {
            Self::Fields(fields)
        }
    }

    /// The values `request` has for the varying headers, as they will be
    /// compared.
    pub fn selecting(&self, request: &HeaderMap) -> Selecting {
        match self {
            Self::Fields(fields) => Selecting(
                fields
                    .iter()
                    .map(|name| (name.clone(), normalised(name, request)))
                    .collect(),
            ),
            Self::None | Self::Star => Selecting(Vec::new()),
        }
    }
}

/// A stored response's request values for its `Vary` headers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selecting(Vec<(HeaderName, Option<String>)>);

impl Selecting {
    /// Does `request` have the same values?
    pub fn matches(&self, request: &HeaderMap) -> bool {
        self.0
            .iter()
            .all(|(name, value)| normalised(name, request) == *value)
    }

    /// Bytes this takes in the cache, roughly.
    pub fn size(&self) -> usize {
        self.0
            .iter()
            .map(|(name, value)| name.as_str().len() + value.as_ref().map_or(0, String::len))
            .sum()
    }
}

/// All of `request`'s `name` lines as one list: elements trimmed, empty
/// ones dropped; lower-cased where the header's values are
/// case-insensitive, and sorted where their order says nothing.
fn normalised(name: &HeaderName, request: &HeaderMap) -> Option<String> {
    let mut lines = request.get_all(name).iter().peekable();
    lines.peek()?;
    let insensitive = *name == ACCEPT_ENCODING || *name == ACCEPT_LANGUAGE;
    let mut elements = Vec::new();
    for line in lines {
        let line = String::from_utf8_lossy(line.as_bytes());
        for element in line.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            elements.push(if insensitive {
                element.replace([' ', '\t'], "").to_ascii_lowercase()
            } else {
                element.to_owned()
            });
        }
    }
    if insensitive {
        elements.sort();
    }
    Some(elements.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                value.parse().unwrap(),
            );
        }
        map
    }

    #[test]
    fn a_star_anywhere_matches_nothing() {
        for lines in [&["*"][..], &["Accept, *"], &["Accept", "*"], &[", *"]] {
            let pairs: Vec<_> = lines.iter().map(|l| ("vary", *l)).collect();
            assert_eq!(Vary::of(&headers(&pairs)), Vary::Star, "{lines:?}");
        }
    }

    #[test]
    fn values_are_compared_after_normalising() {
        let vary = Vary::of(&headers(&[("vary", "Foo, Accept-Language")]));
        let stored = vary.selecting(&headers(&[("foo", "a, b"), ("accept-language", "en, FR")]));
        assert!(stored.matches(&headers(&[
            ("foo", "a"),
            ("foo", "b"),
            ("accept-language", "fr,en")
        ])));
        assert!(!stored.matches(&headers(&[("foo", "b, a"), ("accept-language", "fr,en")])));
        assert!(!stored.matches(&headers(&[("foo", "a, b")])));
    }

    #[test]
    fn an_absent_header_matches_only_absence() {
        let vary = Vary::of(&headers(&[("vary", "foo")]));
        let stored = vary.selecting(&headers(&[]));
        assert!(stored.matches(&headers(&[])));
        assert!(!stored.matches(&headers(&[("foo", "")])));
    }
}
