//! Step 03's behaviour cases (steps/03-reverse-proxy/tests/cases), run
//! against step 10: the fast path must do everything the clone of Go's
//! ReverseProxy does over HTTP/1.1.

mod support;

include!("../../03-reverse-proxy/tests/cases/http1_behaviours.rs");
