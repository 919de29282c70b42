//! Chapter 2, exercise 1: join two paths with exactly one slash.

/// The upstream's base path followed by the request's path, with exactly
/// one `/` where they meet: `/base` + `/x` is `/base/x`, and so are
/// `/base/` + `/x` and `/base` + `x`.
///
/// Hint: there are four cases — does `base` end with a slash, does `path`
/// start with one?
pub fn join_paths(base: &str, path: &str) -> String {
    // A first attempt: glue them together.
    format!("{base}{path}")
}
