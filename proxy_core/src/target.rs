//! Where a request goes: the incoming URL moved onto an upstream's.
//!
//! Step 02's second move, written once for every proxy here: the upstream's
//! scheme and host, the two paths joined with exactly one slash (Go's
//! `singleJoiningSlash`), the two queries joined with `&`. Step 03's
//! director calls [`target_uri`]; step 10 joins the same way on bytes.

use hyper::Uri;
use hyper::http::uri::PathAndQuery;

/// Join two URL paths with exactly one slash between them (Go's
/// `singleJoiningSlash`): `/base` + `/x`, `/base/` + `/x` and `/base` + `x`
/// all give `/base/x`.
pub fn join_paths(base: &str, path: &str) -> String {
    match (base.ends_with('/'), path.starts_with('/')) {
        (true, true) => format!("{base}{}", &path[1..]),
        (false, false) => format!("{base}/{path}"),
        _ => format!("{base}{path}"),
    }
}

/// The URL of `incoming` moved onto `upstream`: the upstream's scheme and
/// host, the two paths joined, the two queries joined with `&` (upstream's
/// first).
pub fn target_uri(upstream: &Uri, incoming: &Uri) -> Uri {
    let mut parts = upstream.clone().into_parts();
    // The common case — an upstream without path or query — needs no
    // joining: the incoming path and query move over as they are.
    if upstream.path() == "/" && upstream.query().is_none() {
        parts.path_and_query = incoming.path_and_query().cloned();
        if let Ok(uri) = Uri::from_parts(parts) {
            return uri;
        }
        parts = upstream.clone().into_parts();
    }
    let path = join_paths(upstream.path(), incoming.path());
    let path_and_query = match join_queries(upstream.query(), incoming.query()) {
        Some(query) => format!("{path}?{query}"),
        None => path,
    };
    parts.path_and_query = Some(
        PathAndQuery::try_from(path_and_query)
            .expect("joining two valid paths and queries stays valid"),
    );
    Uri::from_parts(parts).expect("scheme and authority come from a valid upstream")
}

/// The upstream's query and the request's, joined with `&` (upstream's
/// first); an empty query counts as none, so no stray `&` or `?` appears.
pub fn join_queries(upstream: Option<&str>, incoming: Option<&str>) -> Option<String> {
    let (upstream, incoming) = (
        upstream.filter(|q| !q.is_empty()),
        incoming.filter(|q| !q.is_empty()),
    );
    match (upstream, incoming) {
        (Some(a), Some(b)) => Some(format!("{a}&{b}")),
        (Some(q), None) | (None, Some(q)) => Some(q.to_owned()),
        (None, None) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_join_with_exactly_one_slash() {
        assert_eq!(join_paths("/base", "/x"), "/base/x");
        assert_eq!(join_paths("/base/", "/x"), "/base/x");
        assert_eq!(join_paths("/base", "x"), "/base/x");
        assert_eq!(join_paths("/", "/x"), "/x");
    }

    #[test]
    fn queries_join_with_an_ampersand() {
        let upstream: Uri = "http://10.0.0.1:9000/base?a=1".parse().unwrap();
        let cases = [
            ("/x?b=2", "http://10.0.0.1:9000/base/x?a=1&b=2"),
            ("/x", "http://10.0.0.1:9000/base/x?a=1"),
        ];
        for (incoming, expected) in cases {
            assert_eq!(target_uri(&upstream, &incoming.parse().unwrap()), expected);
        }
        let bare: Uri = "http://10.0.0.1:9000".parse().unwrap();
        assert_eq!(
            target_uri(&bare, &"/x?b=2".parse().unwrap()),
            "http://10.0.0.1:9000/x?b=2"
        );
    }
}
