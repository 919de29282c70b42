//! Chapter 11's exercises: routing by prefix, reading a token request's
//! credentials, and judging a set read from the registry.

/// Exercise 1. Which of the services, given by their path prefixes, takes
/// `path`: the longest prefix that matches whole segments — `/api` takes
/// `/api` and `/api/x`, not `/apix` — or none. `/` takes every path.
///
/// Hint: a prefix matches if the path is the prefix, or goes on with `/`
/// after it (or the prefix ends in `/`); keep the longest.
pub fn pick_service(prefixes: &[&str], path: &str) -> Option<usize> {
    // A first attempt: the first prefix the path starts with.
    prefixes.iter().position(|prefix| path.starts_with(prefix))
}

/// Exercise 2. The app id and secret in a token request's
/// `Authorization` value: `Basic base64(id:secret)`. The scheme is
/// case-insensitive; the id ends at the first colon (a secret may hold
/// colons); both are form-encoded before the base64 (RFC 6749 §2.3.1), so
/// `%3A` is a colon and `+` a space. Anything else: `None`.
///
/// Hint: `base64::engine::general_purpose::STANDARD`, `split_once`,
/// `form_urlencoded`.
pub fn client_credentials(authorization: &str) -> Option<(String, String)> {
    use base64::Engine;
    // A first attempt: one spelling of the scheme, the last colon, and the
    // parts as they are.
    let encoded = authorization.strip_prefix("Basic ")?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (id, secret) = text.rsplit_once(':')?;
    Some((id.to_owned(), secret.to_owned()))
}

/// Exercise 3. A gateway follows a registry: each time ZooKeeper's watch
/// fires, it reads the data of a path's children, and decides whether to
/// take what it read. `last` is the set it took last (`None` before the
/// first read). Return the set to take — sorted, each entry once — or
/// `None`: when it is the set taken last (whatever the order, whatever
/// repeats), and when it is empty after a set that was not (an empty
/// registry is likelier a registry's problem than a fleet that died at
/// once: the last set keeps serving).
///
/// Hint: sort and dedup what was read before comparing.
pub fn set_to_take(last: Option<&[String]>, read: Vec<String>) -> Option<Vec<String>> {
    // A first attempt: whatever was read, as it was read.
    let _ = last;
    Some(read)
}

/// Exercise 4. An operator purges `purge` from a service's cache
/// (`POST /services/NAME/purge?path=P`): does that drop the stored URL
/// whose path and query are `stored`? A path drops itself with any query
/// or none (`/a` drops `/a` and `/a?page=2`, not `/ab` or `/a/b`); a path
/// with a query drops that one URL; a final `*` drops every path and query
/// it starts (`/static/*` drops `/static/app.css`).
///
/// Hint: `strip_suffix`, `split_once('?')`.
pub fn purged(stored: &str, purge: &str) -> bool {
    // A first attempt: the one URL named.
    stored == purge
}
