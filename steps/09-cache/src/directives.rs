//! `Cache-Control`, read strictly (RFC 9111 §5.2).
//!
//! A directive is a token with an optional argument, a token or a quoted
//! string; names are case-insensitive; list elements are separated by
//! commas, and a comma inside a quoted string separates nothing. The
//! lesson is in what a mistake means: a freshness directive a cache cannot
//! read, or that says two different things (`max-age=60, max-age=3600`),
//! makes the response stale (§4.2.1) — a cache that guesses serves what it
//! should have asked about. Directives this cache does not know are
//! ignored, as §5.2.3 says; `must-understand` is not implemented, so a
//! response that carries it is not stored unless `no-store` is absent and
//! the status is one whose caching rules this cache follows.
//!
//! Left out on purpose: the qualified forms `no-cache="Set-Cookie"` and
//! `private="X"` are read as their unqualified forms — a shared cache may
//! be stricter than asked, never looser.

use hyper::HeaderMap;
use hyper::header::{CACHE_CONTROL, HeaderName};

/// RFC 9213's field for caches in front of the origin, such as this one.
pub static CDN_CACHE_CONTROL: HeaderName = HeaderName::from_static("cdn-cache-control");

/// The largest delta-seconds a cache must handle; anything larger means
/// this (§1.2.2).
pub const DELTA_SECONDS_MAX: u64 = 2_147_483_648;

/// A directive's seconds: read, or present but unreadable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seconds {
    Valid(u64),
    /// Present, but not delta-seconds, or given twice with different values.
    Invalid,
}

/// What a request's or a response's `Cache-Control` says.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Directives {
    pub max_age: Option<Seconds>,
    pub s_maxage: Option<Seconds>,
    pub no_store: bool,
    pub no_cache: bool,
    pub private: bool,
    pub public: bool,
    pub must_revalidate: bool,
    pub proxy_revalidate: bool,
    pub must_understand: bool,
    /// Response: a proxy must not change the body (no compression, no
    /// rewriting).
    pub no_transform: bool,
    /// Response: how long after going stale it may still be served while
    /// it is revalidated in the background (RFC 5861).
    pub stale_while_revalidate: Option<Seconds>,
    /// Response or request: how long after going stale it may be served
    /// when the upstream fails (RFC 5861).
    pub stale_if_error: Option<Seconds>,
    /// Request: a stale answer is welcome, this stale at most (`max-stale`
    /// alone: any staleness).
    pub max_stale: Option<Option<Seconds>>,
    /// Request: fresh for at least this much longer.
    pub min_fresh: Option<Seconds>,
    /// Request: answer from the cache or with 504, never go upstream.
    pub only_if_cached: bool,
    /// Read from `CDN-Cache-Control`: `Expires` is ignored too.
    pub targeted: bool,
}

impl Directives {
    /// Read every `Cache-Control` line of `headers`.
    pub fn of(headers: &HeaderMap) -> Self {
        Self::of_field(headers, &CACHE_CONTROL)
    }

    /// What a response's caching follows: its `CDN-Cache-Control` when
    /// that says anything (RFC 9213: a cache that serves many users, in
    /// front of the origin, may be given rules of its own, and then
    /// ignores `Cache-Control` and `Expires`), else its `Cache-Control`.
    /// `CDN-Cache-Control` is a Structured Field (RFC 8941), read as
    /// strictly: a field that does not parse is ignored whole, and a
    /// directive whose value has the wrong type (`max-age="60"`) is
    /// ignored.
    pub fn of_response(headers: &HeaderMap) -> Self {
        let mut targeted = Self::default();
        for line in headers.get_all(&CDN_CACHE_CONTROL) {
            let Some(members) = line.to_str().ok().and_then(structured_dictionary) else {
                return Self::of(headers);
            };
            for (name, value) in members {
                match value {
                    Bare::True => targeted.take(&name, None),
                    Bare::Integer(n) if n >= 0 => targeted.take(&name, Some(&n.to_string())),
                    Bare::Integer(_) | Bare::Other => {}
                }
            }
        }
        if targeted == Self::default() {
            return Self::of(headers);
        }
        Self {
            targeted: true,
            ..targeted
        }
    }

    fn of_field(headers: &HeaderMap, field: &HeaderName) -> Self {
        let mut directives = Self::default();
        for line in headers.get_all(field) {
            for (name, argument) in elements(line.as_bytes()) {
                directives.take(&name, argument.as_deref());
            }
        }
        directives
    }

    fn take(&mut self, name: &str, argument: Option<&str>) {
        match name {
            "max-age" => seconds_into(&mut self.max_age, argument),
            "s-maxage" => seconds_into(&mut self.s_maxage, argument),
            "stale-while-revalidate" => seconds_into(&mut self.stale_while_revalidate, argument),
            "stale-if-error" => seconds_into(&mut self.stale_if_error, argument),
            "min-fresh" => seconds_into(&mut self.min_fresh, argument),
            "max-stale" => match argument {
                None => self.max_stale = Some(None),
                Some(_) => {
                    let mut limit = self.max_stale.flatten();
                    seconds_into(&mut limit, argument);
                    self.max_stale = Some(limit);
                }
            },
            "no-store" => self.no_store = true,
            "no-cache" => self.no_cache = true,
            "private" => self.private = true,
            "public" => self.public = true,
            "must-revalidate" => self.must_revalidate = true,
            "proxy-revalidate" => self.proxy_revalidate = true,
            "must-understand" => self.must_understand = true,
            "no-transform" => self.no_transform = true,
            "only-if-cached" => self.only_if_cached = true,
            _ => {}
        }
    }
}

/// Keep `argument` as `slot`'s seconds: a second, different value, or one
/// that is not delta-seconds, makes the slot invalid.
fn seconds_into(slot: &mut Option<Seconds>, argument: Option<&str>) {
    let read = argument.map_or(Seconds::Invalid, delta_seconds);
    *slot = match *slot {
        None => Some(read),
        Some(held) if held == read => Some(held),
        Some(_) => Some(Seconds::Invalid),
    };
}

/// A dictionary member's value, as far as cache directives care.
enum Bare {
    /// No value, or `?1`.
    True,
    Integer(i64),
    /// Any other item (a string, a token, a decimal, `?0`...).
    Other,
}

/// An RFC 8941 dictionary: its members' keys and values (parameters are
/// read and dropped); None if it does not parse.
fn structured_dictionary(text: &str) -> Option<Vec<(String, Bare)>> {
    let mut members = Vec::new();
    let mut rest = text.trim_matches(' ');
    while !rest.is_empty() {
        let key_end = rest
            .find(|c: char| !(c.is_ascii_lowercase() || c.is_ascii_digit() || "_-.*".contains(c)))
            .unwrap_or(rest.len());
        let key = &rest[..key_end];
        if !key.starts_with(|c: char| c.is_ascii_lowercase() || c == '*') {
            return None;
        }
        rest = &rest[key_end..];
        let value = match rest.strip_prefix('=') {
            Some(after) => {
                let (value, after) = bare_item(after)?;
                rest = after;
                value
            }
            None => Bare::True,
        };
        // Parameters: `;key[=item]`, read for their syntax only.
        while let Some(after) = rest.strip_prefix(';') {
            let after = after.trim_start_matches(' ');
            let end = after
                .find(|c: char| {
                    !(c.is_ascii_lowercase() || c.is_ascii_digit() || "_-.*".contains(c))
                })
                .unwrap_or(after.len());
            if end == 0 {
                return None;
            }
            rest = &after[end..];
            if let Some(after) = rest.strip_prefix('=') {
                rest = bare_item(after)?.1;
            }
        }
        members.push((key.to_owned(), value));
        rest = rest.trim_start_matches([' ', '\t']);
        if rest.is_empty() {
            break;
        }
        rest = rest.strip_prefix(',')?.trim_start_matches([' ', '\t']);
        if rest.is_empty() {
            return None; // a trailing comma
        }
    }
    Some(members)
}

/// One bare item at the start of `text`, and what follows it.
fn bare_item(text: &str) -> Option<(Bare, &str)> {
    let first = text.chars().next()?;
    if first == '-' || first.is_ascii_digit() {
        let end = text[1..]
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .map_or(text.len(), |end| end + 1);
        let number = &text[..end];
        let digits = number.trim_start_matches('-');
        if digits.is_empty() || !digits.starts_with(|c: char| c.is_ascii_digit()) {
            return None;
        }
        let value = match digits.split_once('.') {
            None if digits.len() <= 15 => Bare::Integer(number.parse().ok()?),
            Some((whole, fraction))
                if whole.len() <= 12
                    && (1..=3).contains(&fraction.len())
                    && !fraction.contains('.') =>
            {
                Bare::Other
            }
            _ => return None,
        };
        return Some((value, &text[end..]));
    }
    match first {
        '"' => {
            let mut escaped = false;
            for (at, c) in text.char_indices().skip(1) {
                match c {
                    _ if escaped => escaped = false,
                    '\\' => escaped = true,
                    '"' => return Some((Bare::Other, &text[at + 1..])),
                    ' '..='~' => {}
                    _ => return None,
                }
            }
            None
        }
        '?' => match text.get(1..2)? {
            "1" => Some((Bare::True, &text[2..])),
            "0" => Some((Bare::Other, &text[2..])),
            _ => None,
        },
        ':' => {
            let end = text[1..].find(':')? + 1;
            text[1..end]
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "+/=".contains(c))
                .then(|| (Bare::Other, &text[end + 1..]))
        }
        c if c.is_ascii_alphabetic() || c == '*' => {
            let end = text
                .find(|c: char| !(c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~:/".contains(c)))
                .unwrap_or(text.len());
            Some((Bare::Other, &text[end..]))
        }
        _ => None,
    }
}

/// `1*DIGIT`, capped at [`DELTA_SECONDS_MAX`].
pub fn delta_seconds(text: &str) -> Seconds {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Seconds::Invalid;
    }
    Seconds::Valid(
        text.parse::<u64>()
            .map_or(DELTA_SECONDS_MAX, |n| n.min(DELTA_SECONDS_MAX)),
    )
}

/// The directives of one field line, names lower-cased, quoted arguments
/// unquoted. A malformed element is skipped: it says nothing this cache
/// could act on.
fn elements(line: &[u8]) -> Vec<(String, Option<String>)> {
    let mut found = Vec::new();
    let mut rest = line;
    loop {
        rest = trim_start(rest);
        if rest.is_empty() {
            return found;
        }
        let name_end = rest
            .iter()
            .position(|b| !is_tchar(*b))
            .unwrap_or(rest.len());
        let name = String::from_utf8_lossy(&rest[..name_end]).to_ascii_lowercase();
        rest = &rest[name_end..];
        let mut argument = None;
        let mut well_formed = name_end > 0;
        // No whitespace around `=`: `max-age =60` is not a max-age.
        if let [b'=', after @ ..] = rest {
            rest = after;
            match rest {
                [b'"', quoted @ ..] => match unquote(quoted) {
                    Some((text, after)) => {
                        argument = Some(text);
                        rest = after;
                    }
                    None => return found,
                },
                _ => {
                    let end = rest
                        .iter()
                        .position(|b| !is_tchar(*b))
                        .unwrap_or(rest.len());
                    well_formed &= end > 0;
                    argument = Some(String::from_utf8_lossy(&rest[..end]).into_owned());
                    rest = &rest[end..];
                }
            }
        }
        rest = trim_start(rest);
        match rest {
            [] | [b',', ..] => {}
            _ => well_formed = false,
        }
        if well_formed {
            found.push((name, argument));
        }
        // On to the next element, past anything this one left unread.
        match rest.iter().position(|b| *b == b',') {
            Some(comma) => rest = &rest[comma + 1..],
            None => return found,
        }
    }
}

/// A quoted string's text (its escapes undone) and what follows its
/// closing quote; None when it never closes.
fn unquote(after_quote: &[u8]) -> Option<(String, &[u8])> {
    let mut text = Vec::new();
    let mut bytes = after_quote.iter().enumerate();
    while let Some((at, byte)) = bytes.next() {
        match byte {
            b'"' => {
                return Some((
                    String::from_utf8_lossy(&text).into_owned(),
                    &after_quote[at + 1..],
                ));
            }
            b'\\' => text.push(*bytes.next()?.1),
            _ => text.push(*byte),
        }
    }
    None
}

fn trim_start(bytes: &[u8]) -> &[u8] {
    let start = bytes
        .iter()
        .position(|b| !matches!(b, b' ' | b'\t'))
        .unwrap_or(bytes.len());
    &bytes[start..]
}

/// RFC 9110 §5.6.2's `tchar`.
fn is_tchar(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&byte)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(lines: &[&str]) -> Directives {
        let mut headers = HeaderMap::new();
        for line in lines {
            headers.append(CACHE_CONTROL, line.parse().unwrap());
        }
        Directives::of(&headers)
    }

    #[test]
    fn names_are_case_insensitive_and_arguments_may_be_quoted() {
        let d = read(&["Max-Age=60, PUBLIC", "s-maxage=\"120\""]);
        assert_eq!(d.max_age, Some(Seconds::Valid(60)));
        assert_eq!(d.s_maxage, Some(Seconds::Valid(120)));
        assert!(d.public);
    }

    #[test]
    fn a_comma_inside_quotes_separates_nothing() {
        let d = read(&["no-cache=\"a, max-age=5\", private"]);
        assert!(d.no_cache && d.private);
        assert_eq!(d.max_age, None);
    }

    #[test]
    fn unreadable_or_conflicting_seconds_are_invalid() {
        for line in [
            "max-age=-1",
            "max-age=1.5",
            "max-age",
            "max-age='60'",
            "max-age=60, max-age=61",
        ] {
            assert_eq!(read(&[line]).max_age, Some(Seconds::Invalid), "{line}");
        }
        assert_eq!(
            read(&["max-age=60, max-age=60"]).max_age,
            Some(Seconds::Valid(60))
        );
        // Not a directive at all: an element the grammar does not allow.
        for line in ["max-age=", "max-age= 60", "max-age =60"] {
            assert_eq!(read(&[line]).max_age, None, "{line}");
        }
    }

    #[test]
    fn huge_seconds_are_capped() {
        let d = read(&["max-age=99999999999999999999999"]);
        assert_eq!(d.max_age, Some(Seconds::Valid(DELTA_SECONDS_MAX)));
    }

    #[test]
    fn cdn_cache_control_replaces_cache_control_when_it_says_anything() {
        let mut headers = HeaderMap::new();
        headers.insert(CACHE_CONTROL, "max-age=60".parse().unwrap());
        assert_eq!(
            Directives::of_response(&headers).max_age,
            Some(Seconds::Valid(60))
        );
        headers.insert(&CDN_CACHE_CONTROL, "private".parse().unwrap());
        let targeted = Directives::of_response(&headers);
        assert!(targeted.private && targeted.targeted);
        assert_eq!(targeted.max_age, None);
        // Empty, not a Structured Field, or the wrong type: not a word.
        for ignored in [
            "",
            "max-age=10000, &&&&&",
            "max-age=\"10000\"",
            "max-age=60,",
        ] {
            headers.insert(&CDN_CACHE_CONTROL, ignored.parse().unwrap());
            let read = Directives::of_response(&headers);
            assert!(!read.targeted, "{ignored}");
            assert_eq!(read.max_age, Some(Seconds::Valid(60)), "{ignored}");
        }
        headers.insert(
            &CDN_CACHE_CONTROL,
            "max-age=600;a=1, no-cache, x=?1".parse().unwrap(),
        );
        let read = Directives::of_response(&headers);
        assert_eq!(read.max_age, Some(Seconds::Valid(600)));
        assert!(read.no_cache && read.targeted);
    }

    #[test]
    fn max_stale_may_have_no_argument() {
        assert_eq!(read(&["max-stale"]).max_stale, Some(None));
        assert_eq!(
            read(&["max-stale=10"]).max_stale,
            Some(Some(Seconds::Valid(10)))
        );
    }

    #[test]
    fn malformed_elements_are_skipped_and_the_rest_read() {
        let d = read(&["max-age=60 junk, no-store, =5, s-maxage =9, public"]);
        assert_eq!((d.max_age, d.s_maxage), (None, None));
        assert!(d.no_store && d.public);
    }
}
