//! Chapter 4, exercise 1: the first healthy upstream, always.

use std::sync::Arc;
use std::time::Duration;

use load_balance::{Balancer, HealthPolicy, Kind, Options, Strategy, Upstream};
use proxy_workbench::exercises::answers::ch04::FirstAvailable;

fn upstreams(n: usize) -> Vec<Arc<Upstream>> {
    (1..=n)
        .map(|i| Upstream::new(format!("http://10.0.0.{i}:80").parse().unwrap(), 1))
        .collect()
}

fn picked(strategy: &FirstAvailable) -> String {
    strategy
        .pick(b"")
        .map_or("none".to_owned(), |u| u.url.to_string())
}

#[test]
fn the_primary_while_healthy_then_the_first_standby() {
    let set = upstreams(3);
    let strategy = FirstAvailable::new(set.clone());
    for _ in 0..5 {
        assert_eq!(picked(&strategy), "http://10.0.0.1:80/");
    }
    // Eject the primary the way step 04's passive health does: a failure
    // reported to a balancer over the same upstreams.
    let balancer = Balancer::new(Kind::RoundRobin, set.clone(), Options::default()).unwrap();
    let policy = HealthPolicy {
        max_fails: 1,
        cooldown: Duration::from_secs(60),
    };
    balancer.report(&set[0], &policy, false);
    assert_eq!(picked(&strategy), "http://10.0.0.2:80/");
    balancer.report(&set[1], &policy, false);
    assert_eq!(picked(&strategy), "http://10.0.0.3:80/");
    balancer.report(&set[2], &policy, false);
    assert_eq!(
        picked(&strategy),
        "none",
        "no healthy upstream: nothing to pick"
    );
}
