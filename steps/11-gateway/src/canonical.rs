//! One path and one host, however a client spells them.
//!
//! A gateway decides by path and host: which service, so which access
//! rules and limits. A backend behind it decides again, by its own reading
//! of the same bytes — and most frameworks decode `%70` into `p`, resolve
//! `/x/../`, merge `//` and drop a trailing dot from a host. If the
//! gateway routed on the raw text, `/%70rivate/x` or `/x/../private/x`
//! would miss the `/private` service (and its allow-list), land on the
//! catch-all, and reach a backend that reads `/private/x`: an access-control
//! bypass. So the gateway routes on, and forwards, the canonical form:
//!
//! - percent-encoded *unreserved* characters (letters, digits, `-._~`)
//!   are decoded — they mean the same either way (RFC 3986 §2.3) — and
//!   other percent-encodings have their hex in upper case;
//! - an encoded `/` or `\` and an encoded NUL are refused (400): no
//!   reading of them is safe, since servers disagree on whether `%2F`
//!   separates segments;
//! - dot segments are removed (RFC 3986 §5.2.4: `/a/./b/../c` → `/a/c`,
//!   never above the root) and runs of `/` merged;
//! - a host is compared in lower case, without its port or a trailing dot.
//!
//! Path parameters (`/private;x=1/x`) are not removed — servers differ on
//! them — but a prefix ends at a `;` as it ends at a `/` ([`crate::router`]),
//! so `/private;x=1` belongs to `/private`.

use std::borrow::Cow;

/// The canonical form of `path` (no query), or why it is refused. Most
/// paths are already canonical and come back borrowed: checking costs a
/// scan, rewriting an allocation.
pub fn path(raw: &str) -> Result<Cow<'_, str>, String> {
    if is_canonical(raw) {
        return Ok(Cow::Borrowed(raw));
    }
    let decoded = decode_unreserved(raw)?;
    Ok(Cow::Owned(remove_dot_segments(&decoded)))
}

/// A path the rewriting would leave as it is: from the root, nothing
/// encoded, and no empty, `.` or `..` segment (but a trailing `/`).
fn is_canonical(raw: &str) -> bool {
    let Some(rest) = raw.strip_prefix('/') else {
        return false;
    };
    if raw.contains('%') {
        return false;
    }
    let mut segments = rest.split('/').peekable();
    while let Some(segment) = segments.next() {
        let last = segments.peek().is_none();
        if (segment.is_empty() && !last) || segment == "." || segment == ".." {
            return false;
        }
    }
    true
}

/// The host as routes name it: lower case, no port, no trailing dot
/// (borrowed when it is that already).
pub fn host(host: &str) -> Cow<'_, str> {
    let trimmed = host.trim_end_matches('.');
    if trimmed.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Owned(trimmed.to_ascii_lowercase())
    } else {
        Cow::Borrowed(trimmed)
    }
}

/// The host of an authority as sent (`Host` or the target's), without its
/// port: `a.example:80` → `a.example`, `[::1]:80` → `[::1]`.
pub fn host_of(authority: &[u8]) -> Option<&str> {
    let authority = std::str::from_utf8(authority).ok()?;
    let host = if authority.starts_with('[') {
        &authority[..=authority.find(']')?]
    } else {
        authority
            .rsplit_once(':')
            .map_or(authority, |(host, _)| host)
    };
    (!host.is_empty()).then_some(host)
}

fn decode_unreserved(raw: &str) -> Result<String, String> {
    let bytes = raw.as_bytes();
    let mut out = String::with_capacity(raw.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'%' {
            out.push(bytes[i] as char);
            i += 1;
            continue;
        }
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok())
            .ok_or_else(|| format!("{raw:?}: a % must be followed by two hex digits"))?;
        match hex {
            b'/' | b'\\' | 0 => {
                return Err(format!(
                    "{raw:?}: an encoded '/', '\\' or NUL in a path is refused"
                ));
            }
            b if b.is_ascii_alphanumeric() || b"-._~".contains(&b) => out.push(b as char),
            b => out.push_str(&format!("%{b:02X}")),
        }
        i += 3;
    }
    Ok(out)
}

/// RFC 3986 §5.2.4 on a path whose runs of `/` are merged first.
fn remove_dot_segments(path: &str) -> String {
    let mut kept: Vec<&str> = Vec::new();
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    for segment in &segments {
        match *segment {
            "." => {}
            ".." => {
                kept.pop();
            }
            other => kept.push(other),
        }
    }
    // A path that ended in a directory (`/a/`, `/a/.`, `/a/b/..`) keeps
    // its trailing slash.
    let ends_as_directory =
        path.ends_with('/') || matches!(segments.last(), Some(&".") | Some(&".."));
    let mut out = String::from("/");
    out.push_str(&kept.join("/"));
    if ends_as_directory && !kept.is_empty() {
        out.push('/');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_spelling_of_one_path_is_one_path() {
        for spelling in [
            "/private/x",
            "//private/x",
            "/x/../private/x",
            "/./private/x",
            "/%70rivate/x",
            "/%70%72ivate/x",
            "/private/./x",
            "/a/b/../../private/x",
            "/../private/x",
            "/private//x",
        ] {
            assert_eq!(path(spelling).as_deref(), Ok("/private/x"), "{spelling}");
        }
    }

    #[test]
    fn encoded_separators_and_nul_are_refused() {
        for refused in [
            "/private%2fx",
            "/private%2Fx",
            "/a%5cb",
            "/a%00b",
            "/a%zz",
            "/a%2",
        ] {
            assert!(path(refused).is_err(), "{refused}");
        }
    }

    #[test]
    fn other_encodings_stay_encoded_in_one_case() {
        assert_eq!(path("/a%20b%c3%a9").as_deref(), Ok("/a%20b%C3%A9"));
        assert_eq!(path("/a/b/").as_deref(), Ok("/a/b/"));
        assert_eq!(path("/a/b/..").as_deref(), Ok("/a/"));
        assert_eq!(path("/").as_deref(), Ok("/"));
        assert_eq!(path("/..").as_deref(), Ok("/"));
    }

    #[test]
    fn a_canonical_path_is_borrowed_and_only_that() {
        for canonical in ["/", "/a", "/a/b/", "/a;x=1/b", "/a.b/c..d"] {
            assert!(
                matches!(path(canonical), Ok(Cow::Borrowed(_))),
                "{canonical}"
            );
        }
        for rewritten in ["//a", "/a//b", "/a/./b", "/a/..", "/%41", "*", ""] {
            assert!(!is_canonical(rewritten), "{rewritten}");
        }
    }

    #[test]
    fn a_host_loses_its_port() {
        assert_eq!(host_of(b"a.example:8080"), Some("a.example"));
        assert_eq!(host_of(b"a.example"), Some("a.example"));
        assert_eq!(host_of(b"[::1]:80"), Some("[::1]"));
        assert_eq!(host_of(b":80"), None);
    }

    #[test]
    fn hosts_lose_case_and_a_trailing_dot() {
        assert_eq!(host("Internal.Localhost."), "internal.localhost");
        assert_eq!(host("internal.localhost"), "internal.localhost");
    }
}
