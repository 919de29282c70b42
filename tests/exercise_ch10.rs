//! Chapter 10's exercises. Run one against your code with
//! `cargo test --features mine --test exercise_ch10 request_framing`.

mod request_framing {
    use proxy_workbench::exercises::answers::ch10::request_framing;
    use step10_fast_path::head::Framing;

    fn head(headers: &str) -> String {
        format!("POST /upload HTTP/1.1\r\nHost: a\r\n{headers}\r\n")
    }

    #[test]
    fn a_length_a_chunked_body_or_none() {
        assert_eq!(
            request_framing(&head("Content-Length: 5\r\n")),
            Ok(Framing::Length(5))
        );
        assert_eq!(
            request_framing(&head("Transfer-Encoding: chunked\r\n")),
            Ok(Framing::Chunked)
        );
        assert_eq!(request_framing(&head("")), Ok(Framing::Empty));
    }

    #[test]
    fn names_are_case_insensitive() {
        assert_eq!(
            request_framing(&head("content-length: 7\r\n")),
            Ok(Framing::Length(7))
        );
        assert_eq!(
            request_framing(&head("TRANSFER-ENCODING: gzip, Chunked\r\n")),
            Ok(Framing::Chunked)
        );
    }

    #[test]
    fn transfer_encoding_wins_over_content_length() {
        // A proxy that read the length here, and an upstream that read the
        // chunks, would disagree about where the next request starts.
        assert_eq!(
            request_framing(&head("Content-Length: 4\r\nTransfer-Encoding: chunked\r\n")),
            Ok(Framing::Chunked)
        );
    }

    #[test]
    fn what_two_readers_could_read_two_ways_is_refused() {
        for headers in [
            "Content-Length: +5\r\n",
            "Content-Length: 5\r\nContent-Length: 6\r\n",
            "Content-Length: 0x10\r\n",
            "Transfer-Encoding: chunked, gzip\r\n",
        ] {
            assert!(request_framing(&head(headers)).is_err(), "{headers:?}");
        }
        // The same number twice says one thing.
        assert_eq!(
            request_framing(&head("Content-Length: 5\r\nContent-Length: 5\r\n")),
            Ok(Framing::Length(5))
        );
    }
}

mod keeps_alive {
    use proxy_workbench::exercises::answers::ch10::keeps_alive;

    fn head(version: &str, headers: &str) -> String {
        format!("GET / HTTP/{version}\r\nHost: a\r\n{headers}\r\n")
    }

    #[test]
    fn http_1_1_stays_open_unless_told() {
        assert!(keeps_alive(&head("1.1", "")));
        assert!(!keeps_alive(&head("1.1", "Connection: close\r\n")));
    }

    #[test]
    fn connection_is_a_list_in_any_case() {
        assert!(!keeps_alive(&head("1.1", "connection: Upgrade, CLOSE\r\n")));
        assert!(!keeps_alive(&head(
            "1.1",
            "Connection: keep-alive\r\nConnection: close\r\n"
        )));
        assert!(keeps_alive(&head("1.1", "Connection: closed-captions\r\n")));
    }

    #[test]
    fn http_1_0_closes_unless_asked_to_stay() {
        assert!(!keeps_alive(&head("1.0", "")));
        assert!(keeps_alive(&head("1.0", "Connection: Keep-Alive\r\n")));
    }
}
