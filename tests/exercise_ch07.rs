//! Chapter 7's exercises. Run one against your code with
//! `cargo test --features mine --test exercise_ch07 https_location`.

mod https_location {
    use hyper::http::uri::Authority;
    use proxy_workbench::exercises::answers::ch07::https_location;

    fn location(authority: &'static str, port: u16, path: &str) -> String {
        https_location(&Authority::from_static(authority), port, path)
    }

    #[test]
    fn the_same_host_and_path_on_the_https_port() {
        assert_eq!(
            location("example.com", 8443, "/a/b?c=1"),
            "https://example.com:8443/a/b?c=1"
        );
        assert_eq!(
            location("example.com:8080", 8443, "/"),
            "https://example.com:8443/",
            "the plain-HTTP port is not the HTTPS one"
        );
    }

    #[test]
    fn the_default_port_is_left_out() {
        assert_eq!(
            location("example.com:80", 443, "/x"),
            "https://example.com/x"
        );
        assert_eq!(location("example.com", 443, "/"), "https://example.com/");
    }

    #[test]
    fn an_ipv6_host_keeps_its_brackets() {
        assert_eq!(location("[::1]:8080", 8443, "/"), "https://[::1]:8443/");
    }
}

mod certificate_covers {
    use proxy_workbench::exercises::answers::ch07::certificate_covers;

    #[test]
    fn exact_names_in_any_case() {
        assert!(certificate_covers("example.com", "example.com"));
        assert!(certificate_covers("Example.COM", "example.com"));
        assert!(!certificate_covers("example.com", "www.example.com"));
    }

    #[test]
    fn a_wildcard_stands_for_exactly_one_label() {
        assert!(certificate_covers("*.example.com", "www.example.com"));
        assert!(certificate_covers("*.example.com", "API.Example.com"));
        assert!(!certificate_covers("*.example.com", "example.com"));
        assert!(!certificate_covers("*.example.com", "a.b.example.com"));
        assert!(!certificate_covers("*.example.com", "wwwexample.com"));
        assert!(!certificate_covers("*.example.com", ".example.com"));
    }
}
