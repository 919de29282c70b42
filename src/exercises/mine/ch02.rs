//! Chapter 2's exercises: the two joins that move a request's URL onto an
//! upstream's.

/// Exercise 1. The upstream's base path followed by the request's path,
/// with exactly one `/` where they meet: `/base` + `/x` is `/base/x`, and
/// so are `/base/` + `/x` and `/base` + `x`.
///
/// Hint: there are four cases — does `base` end with a slash, does `path`
/// start with one?
pub fn join_paths(base: &str, path: &str) -> String {
    // A first attempt: glue them together.
    format!("{base}{path}")
}

/// Exercise 2. The upstream's query (from `--upstream
/// 'http://host/base?from=proxy'`) and the request's, joined with `&`,
/// the upstream's first. No query at all when neither has one, and an
/// empty query (a URL ending in `?`) counts as none: no stray `&`.
///
/// Hint: `Option::filter` drops the empty ones; then match on the pair.
pub fn join_queries(upstream: Option<&str>, incoming: Option<&str>) -> Option<String> {
    // A first attempt: always both, with `&` between.
    Some(format!(
        "{}&{}",
        upstream.unwrap_or(""),
        incoming.unwrap_or("")
    ))
}
