//! Chapter 9's exercises: how old a stored response is, and whether a
//! client already has it.

use std::time::SystemTime;

/// Exercise 1. The age of a stored response now (RFC 9111 §4.2.3): it was
/// asked for at `requested`, its head arrived at `received` carrying
/// `Age: age_header` (0 without one) and `Date: date`, and it has sat in
/// the cache since. On arrival it was at least as old as its `Age` plus
/// the time the exchange took, and at least as old as `received - date`;
/// take the larger, then add the time it spent here. Whole seconds; a
/// time that runs backwards counts as 0.
///
/// Hint: `SystemTime::duration_since` fails when the other time is later.
pub fn current_age(
    age_header: u64,
    date: SystemTime,
    requested: SystemTime,
    received: SystemTime,
    now: SystemTime,
) -> u64 {
    // A first attempt: how long it has been here.
    let _ = (age_header, date, requested);
    now.duration_since(received).map_or(0, |d| d.as_secs())
}

/// Exercise 2. Is the stored `etag` in the client's `If-None-Match` list
/// `list`? The list is `*` (anything matches) or entity tags separated by
/// commas, `"x"` or weak `W/"x"`; `If-None-Match` compares weakly
/// (RFC 9110 §13.1.2): `W/"x"` and `"x"` match each other.
///
/// Hint: trim each element, and the `W/` prefix.
pub fn etag_listed(list: &str, etag: &str) -> bool {
    // A first attempt: the header must be the tag.
    list == etag
}
