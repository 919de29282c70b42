//! Chapter 1's exercises. Run one against your code with
//! `cargo test --features mine --test exercise_ch01 is_off_limits`.

mod is_off_limits {
    use std::net::IpAddr;

    use proxy_workbench::exercises::answers::ch01::is_off_limits;

    fn off_limits(ip: &str) -> bool {
        is_off_limits(ip.parse::<IpAddr>().unwrap())
    }

    #[test]
    fn the_network_behind_the_proxy_is_off_limits() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.9",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "fd00::1",
            "fe80::1",
        ] {
            assert!(
                off_limits(ip),
                "{ip} leads into the network behind the proxy"
            );
        }
    }

    #[test]
    fn ipv4_hidden_in_ipv6_is_judged_as_ipv4() {
        assert!(off_limits("::ffff:127.0.0.1"));
        assert!(off_limits("::ffff:169.254.169.254"));
        assert!(!off_limits("::ffff:93.184.215.14"));
    }

    #[test]
    fn the_internet_is_not() {
        for ip in ["93.184.215.14", "1.1.1.1", "2606:4700:4700::1111"] {
            assert!(!off_limits(ip), "{ip} is on the internet");
        }
    }
}

mod basic_credentials_match {
    use hyper::header::HeaderValue;
    use proxy_workbench::exercises::answers::ch01::basic_credentials_match;

    /// `alice:secret` in base64.
    const ALICE: &str = "YWxpY2U6c2VjcmV0";

    fn matches(offered: &'static str) -> bool {
        basic_credentials_match(Some(&HeaderValue::from_static(offered)), ALICE)
    }

    #[test]
    fn the_right_credentials_in_any_spelling_of_the_scheme() {
        assert!(matches("Basic YWxpY2U6c2VjcmV0"));
        assert!(matches("basic YWxpY2U6c2VjcmV0"));
        assert!(matches("BASIC  YWxpY2U6c2VjcmV0 "));
    }

    #[test]
    fn anything_else_is_refused() {
        assert!(!basic_credentials_match(None, ALICE));
        assert!(!matches("Basic YWxpY2U6d3Jvbmc="));
        assert!(!matches("Basic YWxpY2U6c2VjcmV0AA"));
        assert!(!matches("Bearer YWxpY2U6c2VjcmV0"));
        assert!(!matches("YWxpY2U6c2VjcmV0"));
    }
}
