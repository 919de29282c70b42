//! Chapter 11's exercises. Run one against your code with
//! `cargo test --features mine --test exercise_ch11 pick_service`.

mod pick_service {
    use proxy_workbench::exercises::answers::ch11::pick_service;

    #[test]
    fn the_longest_prefix_wins() {
        let prefixes = ["/", "/api", "/api/admin"];
        assert_eq!(pick_service(&prefixes, "/page"), Some(0));
        assert_eq!(pick_service(&prefixes, "/api/users"), Some(1));
        assert_eq!(pick_service(&prefixes, "/api/admin/x"), Some(2));
        assert_eq!(pick_service(&prefixes, "/api"), Some(1));
    }

    #[test]
    fn a_prefix_matches_whole_segments() {
        assert_eq!(pick_service(&["/api"], "/apix"), None);
        assert_eq!(pick_service(&["/", "/api"], "/apix"), Some(0));
        assert_eq!(pick_service(&["/api/"], "/api/x"), Some(0));
    }

    #[test]
    fn no_prefix_no_service() {
        assert_eq!(pick_service(&["/api"], "/other"), None);
        assert_eq!(pick_service(&[], "/"), None);
    }
}

mod client_credentials {
    use base64::Engine;
    use proxy_workbench::exercises::answers::ch11::client_credentials;

    fn basic(scheme: &str, pair: &str) -> String {
        let encoded = base64::engine::general_purpose::STANDARD.encode(pair);
        format!("{scheme} {encoded}")
    }

    fn pair(id: &str, secret: &str) -> Option<(String, String)> {
        Some((id.to_owned(), secret.to_owned()))
    }

    #[test]
    fn id_and_secret() {
        assert_eq!(
            client_credentials(&basic("Basic", "app-a:s3cret")),
            pair("app-a", "s3cret")
        );
    }

    #[test]
    fn the_scheme_is_any_case() {
        assert_eq!(client_credentials(&basic("basic", "a:b")), pair("a", "b"));
        assert_eq!(client_credentials(&basic("BASIC", "a:b")), pair("a", "b"));
    }

    #[test]
    fn a_secret_may_hold_colons() {
        assert_eq!(
            client_credentials(&basic("Basic", "app:x:y:z")),
            pair("app", "x:y:z")
        );
    }

    #[test]
    fn both_parts_are_form_decoded() {
        assert_eq!(
            client_credentials(&basic("Basic", "my%20app:a+b%3Ac")),
            pair("my app", "a b:c")
        );
    }

    #[test]
    fn anything_else_is_none() {
        for value in [
            "Bearer abc",
            "Basic !!!",
            "Basic",
            &basic("Basic", "no-colon"),
        ] {
            assert_eq!(client_credentials(value), None, "{value}");
        }
    }
}

mod set_to_take {
    use proxy_workbench::exercises::answers::ch11::set_to_take;

    fn set(entries: &[&str]) -> Vec<String> {
        entries.iter().map(|e| (*e).to_owned()).collect()
    }

    #[test]
    fn the_first_read_is_taken_sorted_even_empty() {
        assert_eq!(set_to_take(None, set(&["b", "a"])), Some(set(&["a", "b"])));
        assert_eq!(set_to_take(None, set(&[])), Some(set(&[])));
    }

    #[test]
    fn the_same_set_in_another_order_or_with_repeats_is_not_new() {
        let last = set(&["a", "b"]);
        assert_eq!(set_to_take(Some(&last), set(&["b", "a"])), None);
        assert_eq!(set_to_take(Some(&last), set(&["b", "a", "b"])), None);
        assert_eq!(
            set_to_take(None, set(&["b", "a", "a"])),
            Some(set(&["a", "b"]))
        );
    }

    #[test]
    fn a_change_is_taken() {
        let last = set(&["a", "b"]);
        assert_eq!(set_to_take(Some(&last), set(&["a"])), Some(set(&["a"])));
        assert_eq!(
            set_to_take(Some(&last), set(&["c", "a", "b"])),
            Some(set(&["a", "b", "c"]))
        );
    }

    #[test]
    fn empty_after_a_set_is_not_taken() {
        assert_eq!(set_to_take(Some(&set(&["a"])), set(&[])), None);
        // Empty after empty is simply the same.
        assert_eq!(set_to_take(Some(&set(&[])), set(&[])), None);
        // Something after empty is taken.
        assert_eq!(set_to_take(Some(&set(&[])), set(&["a"])), Some(set(&["a"])));
    }
}

mod purged {
    use proxy_workbench::exercises::answers::ch11::purged;

    #[test]
    fn a_path_drops_every_query_of_itself() {
        assert!(purged("/a", "/a"));
        assert!(purged("/a?page=2", "/a"));
        assert!(!purged("/ab", "/a"));
        assert!(!purged("/a/b", "/a"));
    }

    #[test]
    fn a_query_names_one_url() {
        assert!(purged("/a?page=2", "/a?page=2"));
        assert!(!purged("/a?page=22", "/a?page=2"));
        assert!(!purged("/a", "/a?page=2"));
    }

    #[test]
    fn a_star_drops_every_path_it_starts() {
        assert!(purged("/static/app.css", "/static/*"));
        assert!(purged("/static/app.css?v=3", "/static/*"));
        assert!(!purged("/static", "/static/*"));
        assert!(!purged("/other", "/static/*"));
        assert!(purged("/anything", "/*"));
    }
}
