//! Chapter 4's exercises. Run one against your code with
//! `cargo test --features mine --test exercise_ch04 first_available`.

use std::sync::Arc;
use std::time::Duration;

use load_balance::{Balancer, HealthPolicy, Kind, Options, Outcome, Strategy, Upstream};

fn upstreams(n: usize) -> Vec<Arc<Upstream>> {
    (1..=n)
        .map(|i| Upstream::new(format!("http://10.0.0.{i}:80").parse().unwrap(), 1))
        .collect()
}

fn picked(strategy: &dyn Strategy) -> String {
    strategy
        .pick(b"")
        .map_or("none".to_owned(), |u| u.url.to_string())
}

/// Eject `set[at]` the way step 04's passive health does: a failure
/// reported to a balancer over the same upstreams.
fn eject(set: &[Arc<Upstream>], at: usize) {
    let balancer = Balancer::new(Kind::RoundRobin, set.to_vec(), Options::default()).unwrap();
    let policy = HealthPolicy {
        max_fails: 1,
        cooldown: Duration::from_secs(60),
    };
    balancer.report(
        &set[at],
        &policy,
        Outcome::Unreachable("connection refused"),
    );
}

mod first_available {
    use proxy_workbench::exercises::answers::ch04::FirstAvailable;

    use super::{eject, picked, upstreams};

    #[test]
    fn the_primary_while_healthy_then_the_first_standby() {
        let set = upstreams(3);
        let strategy = FirstAvailable::new(set.clone());
        for _ in 0..5 {
            assert_eq!(picked(&strategy), "http://10.0.0.1:80/");
        }
        eject(&set, 0);
        assert_eq!(picked(&strategy), "http://10.0.0.2:80/");
        eject(&set, 1);
        assert_eq!(picked(&strategy), "http://10.0.0.3:80/");
        eject(&set, 2);
        assert_eq!(
            picked(&strategy),
            "none",
            "no healthy upstream: nothing to pick"
        );
    }
}

mod least_response_time {
    use std::time::Duration;

    use load_balance::Strategy;
    use proxy_workbench::exercises::answers::ch04::LeastResponseTime;

    use super::{eject, picked, upstreams};

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn an_upstream_never_measured_is_tried_first() {
        let set = upstreams(3);
        let strategy = LeastResponseTime::new(set.clone());
        assert_eq!(picked(&strategy), "http://10.0.0.1:80/");
        strategy.record(&set[0], ms(5));
        assert_eq!(picked(&strategy), "http://10.0.0.2:80/");
        strategy.record(&set[1], ms(5));
        assert_eq!(picked(&strategy), "http://10.0.0.3:80/");
    }

    #[test]
    fn the_fastest_on_average_and_one_slow_answer_does_not_flip_it() {
        let set = upstreams(2);
        let strategy = LeastResponseTime::new(set.clone());
        for _ in 0..5 {
            strategy.record(&set[0], ms(10));
            strategy.record(&set[1], ms(20));
        }
        assert_eq!(picked(&strategy), "http://10.0.0.1:80/");
        // 0.8 × 10 + 0.2 × 50 = 18 ms: still faster than 20.
        strategy.record(&set[0], ms(50));
        assert_eq!(picked(&strategy), "http://10.0.0.1:80/");
        // A run of slow answers moves it: 24.4, 29.5, 33.6 ms.
        for _ in 0..3 {
            strategy.record(&set[0], ms(50));
        }
        assert_eq!(picked(&strategy), "http://10.0.0.2:80/");
    }

    #[test]
    fn an_ejected_upstream_is_not_picked_however_fast() {
        let set = upstreams(2);
        let strategy = LeastResponseTime::new(set.clone());
        strategy.record(&set[0], ms(1));
        strategy.record(&set[1], ms(100));
        eject(&set, 0);
        assert_eq!(picked(&strategy), "http://10.0.0.2:80/");
        eject(&set, 1);
        assert!(strategy.pick(b"").is_none(), "no healthy upstream");
    }
}
