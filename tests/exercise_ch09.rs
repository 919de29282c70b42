//! Chapter 9's exercises. Run one against your code with
//! `cargo test --features mine --test exercise_ch09 current_age`.

mod current_age {
    use std::time::{Duration, SystemTime};

    use proxy_workbench::exercises::answers::ch09::current_age;

    fn at(seconds: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000 + seconds)
    }

    #[test]
    fn a_fresh_arrival_ages_while_it_sits_here() {
        assert_eq!(current_age(0, at(100), at(100), at(100), at(130)), 30);
    }

    #[test]
    fn an_age_from_upstream_counts_with_the_time_on_the_way() {
        // Sent at 100, arrived at 103 saying Age: 20 — it was at least 23.
        assert_eq!(current_age(20, at(103), at(100), at(103), at(103)), 23);
        assert_eq!(current_age(20, at(103), at(100), at(103), at(110)), 30);
    }

    #[test]
    fn a_date_in_the_past_says_it_was_older_still() {
        assert_eq!(current_age(5, at(40), at(100), at(100), at(100)), 60);
    }

    #[test]
    fn a_date_from_the_future_makes_nothing_younger() {
        assert_eq!(current_age(0, at(500), at(100), at(100), at(110)), 10);
    }
}

mod etag_listed {
    use proxy_workbench::exercises::answers::ch09::etag_listed;

    #[test]
    fn the_same_tag_matches() {
        assert!(etag_listed("\"v1\"", "\"v1\""));
        assert!(!etag_listed("\"v2\"", "\"v1\""));
    }

    #[test]
    fn weak_and_strong_match_each_other() {
        assert!(etag_listed("W/\"v1\"", "\"v1\""));
        assert!(etag_listed("\"v1\"", "W/\"v1\""));
    }

    #[test]
    fn any_tag_of_a_list_matches_and_a_star_matches_all() {
        assert!(etag_listed("\"v0\", W/\"v1\" ,\"v2\"", "\"v1\""));
        assert!(etag_listed("*", "\"anything\""));
        assert!(!etag_listed("\"v0\", \"v2\"", "\"v1\""));
    }
}
