//! Chapter 2, exercise 1: exactly one slash where two paths meet.

use proxy_workbench::exercises::answers::ch02::join_paths;

#[test]
fn one_slash_whichever_side_brings_it() {
    assert_eq!(join_paths("/base", "/x"), "/base/x");
    assert_eq!(join_paths("/base/", "/x"), "/base/x");
    assert_eq!(join_paths("/base", "x"), "/base/x");
    assert_eq!(join_paths("/base/", "x"), "/base/x");
}

#[test]
fn an_empty_or_root_base_adds_nothing() {
    assert_eq!(join_paths("/", "/x"), "/x");
    assert_eq!(join_paths("/", "/"), "/");
    assert_eq!(join_paths("/base", "/"), "/base/");
}
