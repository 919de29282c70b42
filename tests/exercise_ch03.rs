//! Chapter 3's exercises. Run one against your code with
//! `cargo test --features mine --test exercise_ch03 client_accepts_trailers`.

mod client_accepts_trailers {
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
}

mod remove_hop_by_hop {
    use hyper::header::{HeaderMap, HeaderValue};
    use proxy_workbench::exercises::answers::ch03::remove_hop_by_hop;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.append(*name, HeaderValue::from_static(value));
        }
        headers
    }

    fn names(headers: &HeaderMap) -> Vec<&str> {
        let mut names: Vec<&str> = headers.keys().map(|name| name.as_str()).collect();
        names.sort_unstable();
        names
    }

    #[test]
    fn the_fixed_hop_by_hop_headers_go() {
        let mut h = headers(&[
            ("connection", "keep-alive"),
            ("keep-alive", "timeout=5"),
            ("proxy-connection", "keep-alive"),
            ("proxy-authorization", "Basic YWxpY2U6c2VjcmV0"),
            ("te", "trailers"),
            ("trailer", "x-checksum"),
            ("transfer-encoding", "chunked"),
            ("upgrade", "websocket"),
            ("content-type", "text/plain"),
        ]);
        remove_hop_by_hop(&mut h);
        assert_eq!(names(&h), ["content-type"]);
    }

    #[test]
    fn headers_that_connection_names_go_too() {
        let mut h = headers(&[
            ("connection", "close, X-Secret"),
            ("connection", " x-debug ,x-trace "),
            ("x-secret", "for the proxy only"),
            ("x-debug", "1"),
            ("x-trace", "abc"),
            ("cache-control", "no-cache"),
            ("x-kept", "end to end"),
        ]);
        remove_hop_by_hop(&mut h);
        assert_eq!(names(&h), ["cache-control", "x-kept"]);
    }
}
