//! Chapter 2's exercises. Run one against your code with
//! `cargo test --features mine --test exercise_ch02 join_paths`.

mod join_paths {
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
}

mod join_queries {
    use proxy_workbench::exercises::answers::ch02::join_queries;

    #[test]
    fn both_queries_upstreams_first() {
        assert_eq!(
            join_queries(Some("from=proxy"), Some("x=1&y=2")).as_deref(),
            Some("from=proxy&x=1&y=2")
        );
    }

    #[test]
    fn one_query_alone_and_no_stray_ampersand() {
        assert_eq!(
            join_queries(Some("from=proxy"), None).as_deref(),
            Some("from=proxy")
        );
        assert_eq!(join_queries(None, Some("x=1")).as_deref(), Some("x=1"));
        assert_eq!(join_queries(Some(""), Some("x=1")).as_deref(), Some("x=1"));
        assert_eq!(
            join_queries(Some("from=proxy"), Some("")).as_deref(),
            Some("from=proxy")
        );
    }

    #[test]
    fn no_query_at_all() {
        assert_eq!(join_queries(None, None), None);
        assert_eq!(join_queries(Some(""), Some("")), None);
    }
}
