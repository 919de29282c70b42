//! Chapter 3, exercise 1: pass trailers on only to a client that said it
//! can read them.

use hyper::header::{HeaderMap, HeaderValue};
use proxy_workbench::exercises::answers::ch03::client_accepts_trailers;

fn te(values: &[&'static str]) -> HeaderMap {
    let mut headers = HeaderMap::new();
    for value in values {
        headers.append("te", HeaderValue::from_static(value));
    }
    headers
}

#[test]
fn te_trailers_in_any_of_its_spellings() {
    assert!(client_accepts_trailers(&te(&["trailers"])));
    assert!(client_accepts_trailers(&te(&["gzip, trailers"])));
    assert!(client_accepts_trailers(&te(&["gzip", "trailers"])));
    assert!(client_accepts_trailers(&te(&["trailers;q=1"])));
}

#[test]
fn no_te_trailers_no_trailers() {
    assert!(!client_accepts_trailers(&te(&[])));
    assert!(!client_accepts_trailers(&te(&["gzip"])));
    assert!(!client_accepts_trailers(&te(&["trailer"])));
    assert!(!client_accepts_trailers(&te(&["not-trailers"])));
}
