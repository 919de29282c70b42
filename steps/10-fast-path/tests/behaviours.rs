//! The behaviour cases every HTTP/1 proxy here passes
//! (`proxy_test_cases::http1`), run against step 10: the fast path must do
//! everything the clone of Go's ReverseProxy does over HTTP/1.1.

mod support;

proxy_test_cases::http1_behaviours!(support::proxy_to);
