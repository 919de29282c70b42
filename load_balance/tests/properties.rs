//! Properties of every strategy, checked over many picks rather than a few
//! examples.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use load_balance::{Balancer, Error, HealthPolicy, Kind, Options, Outcome, Upstream};

fn upstreams(weights: &[u32]) -> Vec<Arc<Upstream>> {
    weights
        .iter()
        .enumerate()
        .map(|(i, &w)| Upstream::new(format!("http://10.0.0.{}:80", i + 1).parse().unwrap(), w))
        .collect()
}

fn balancer(kind: Kind, set: &[Arc<Upstream>]) -> Balancer {
    Balancer::new(kind, set.to_vec(), Options::default()).unwrap()
}

/// Index of the picked upstream in `set`.
fn index(set: &[Arc<Upstream>], picked: &Arc<Upstream>) -> usize {
    set.iter().position(|u| Arc::ptr_eq(u, picked)).unwrap()
}

fn key(i: usize) -> Vec<u8> {
    format!("/item/{i}?v=1").into_bytes()
}

#[test]
fn round_robin_cycles_exactly() {
    let set = upstreams(&[1, 1, 1, 1]);
    let lb = balancer(Kind::RoundRobin, &set);
    let order: Vec<usize> = (0..12)
        .map(|_| index(&set, &lb.pick(b"").unwrap()))
        .collect();
    assert_eq!(order, [0, 1, 2, 3, 0, 1, 2, 3, 0, 1, 2, 3]);
}

#[test]
fn smooth_weighted_round_robin_interleaves() {
    let set = upstreams(&[5, 1, 1]);
    let lb = balancer(Kind::WeightedRoundRobin, &set);
    let names = ["a", "b", "c"];
    let order: Vec<&str> = (0..14)
        .map(|_| names[index(&set, &lb.pick(b"").unwrap())])
        .collect();
    assert_eq!(order.join(" "), "a a b a c a a a a b a c a a");
}

/// Picks made by `threads` threads taking strict turns (thread 0, 1, …, 0,
/// 1, …): what a multi-threaded proxy does when consecutive requests land
/// on different worker threads.
fn picks_across_threads(
    lb: &Balancer,
    set: &[Arc<Upstream>],
    threads: usize,
    picks: usize,
) -> Vec<usize> {
    let next = std::sync::atomic::AtomicUsize::new(0);
    let order = std::sync::Mutex::new(vec![usize::MAX; picks]);
    std::thread::scope(|scope| {
        for me in 0..threads {
            let (next, order) = (&next, &order);
            scope.spawn(move || {
                for slot in (me..picks).step_by(threads) {
                    while next.load(std::sync::atomic::Ordering::Acquire) != slot {
                        std::thread::yield_now();
                    }
                    order.lock().unwrap()[slot] = index(set, &lb.pick(b"").unwrap());
                    next.store(slot + 1, std::sync::atomic::Ordering::Release);
                }
            });
        }
    });
    order.into_inner().unwrap()
}

#[test]
fn round_robin_cycles_exactly_across_threads() {
    // The cycle belongs to the process, not to a thread: per-thread
    // counters would give 0 1 1 2 2 0 … here.
    let set = upstreams(&[1, 1, 1]);
    let lb = balancer(Kind::RoundRobin, &set);
    assert_eq!(
        picks_across_threads(&lb, &set, 2, 12),
        [0, 1, 2, 0, 1, 2, 0, 1, 2, 0, 1, 2]
    );
}

#[test]
fn smooth_weighted_round_robin_interleaves_across_threads() {
    let set = upstreams(&[5, 1, 1]);
    let lb = balancer(Kind::WeightedRoundRobin, &set);
    let names = ["a", "b", "c"];
    let order: Vec<&str> = picks_across_threads(&lb, &set, 3, 14)
        .into_iter()
        .map(|i| names[i])
        .collect();
    assert_eq!(order.join(" "), "a a b a c a a a a b a c a a");
}

#[test]
fn weighted_proportions_are_exact_over_a_full_cycle() {
    for weights in [
        vec![1, 2, 3],
        vec![10, 20, 30],
        vec![7, 1, 4, 9],
        vec![100, 1],
    ] {
        let set = upstreams(&weights);
        let lb = balancer(Kind::WeightedRoundRobin, &set);
        let divisor = weights.iter().copied().fold(0, gcd);
        let cycle: u32 = weights.iter().map(|w| w / divisor).sum();
        let mut counts = vec![0u32; set.len()];
        for _ in 0..cycle * 3 {
            counts[index(&set, &lb.pick(b"").unwrap())] += 1;
        }
        let expected: Vec<u32> = weights.iter().map(|w| w / divisor * 3).collect();
        assert_eq!(counts, expected, "weights {weights:?}");
    }
}

fn gcd(a: u32, b: u32) -> u32 {
    if b == 0 { a } else { gcd(b, a % b) }
}

#[test]
fn a_failing_upstreams_effective_weight_drops_and_recovers() {
    let set = upstreams(&[6, 6]);
    let lb = balancer(Kind::WeightedRoundRobin, &set);
    let policy = HealthPolicy {
        max_fails: 3,
        cooldown: Duration::from_secs(60),
    };
    let share_of_first = |lb: &Balancer| {
        (0..1200)
            .filter(|_| index(&set, &lb.pick(b"").unwrap()) == 0)
            .count()
    };
    assert_eq!(share_of_first(&lb), 600);
    // Two failures: below the ejection threshold, but weight 6 → 4 → 2.
    lb.report(&set[0], &policy, Outcome::Unreachable("connection refused"));
    lb.report(&set[0], &policy, Outcome::Unreachable("connection refused"));
    assert!(set[0].is_healthy());
    assert_eq!(share_of_first(&lb), 300, "2 of 8 per cycle");
    for _ in 0..4 {
        lb.report(&set[0], &policy, Outcome::Success);
    }
    assert_eq!(share_of_first(&lb), 600, "back to its full weight");
}

#[test]
fn same_key_same_upstream() {
    for kind in [Kind::ConsistentHash, Kind::BoundedConsistentHash] {
        let set = upstreams(&[1; 10]);
        let lb = balancer(kind, &set);
        for i in 0..1000 {
            let first = lb.pick(&key(i)).unwrap();
            for _ in 0..3 {
                assert!(Arc::ptr_eq(&first, &lb.pick(&key(i)).unwrap()), "{kind}");
            }
        }
    }
}

fn placement(lb: &Balancer, keys: usize) -> Vec<String> {
    (0..keys)
        .map(|i| lb.pick(&key(i)).unwrap().url.to_string())
        .collect()
}

#[test]
fn removing_an_upstream_moves_only_its_keys() {
    let set = upstreams(&[1; 10]);
    let lb = balancer(Kind::ConsistentHash, &set);
    let before = placement(&lb, 10_000);
    let removed = set[3].url.to_string();
    let mut remaining = set.clone();
    remaining.remove(3);
    lb.replace(remaining).unwrap();
    let after = placement(&lb, 10_000);
    for (b, a) in before.iter().zip(&after) {
        if *b != removed {
            assert_eq!(b, a, "a key moved although its upstream stayed");
        } else {
            assert_ne!(a, &removed);
        }
    }
}

#[test]
fn adding_an_upstream_moves_about_one_in_n_plus_one_keys() {
    let set = upstreams(&[1; 11]);
    let lb = balancer(Kind::ConsistentHash, &set[..10]);
    let before = placement(&lb, 20_000);
    lb.replace(set.clone()).unwrap();
    let after = placement(&lb, 20_000);
    let moved = before.iter().zip(&after).filter(|(b, a)| b != a).count();
    let newcomer = set[10].url.to_string();
    assert!(
        after
            .iter()
            .zip(&before)
            .all(|(a, b)| a == b || *a == newcomer),
        "keys only move to the newcomer"
    );
    let share = moved as f64 / 20_000.0;
    assert!(
        (0.5 / 11.0..1.5 / 11.0).contains(&share),
        "moved {share:.3}, expected about {:.3}",
        1.0 / 11.0
    );
}

#[test]
fn random_is_uniform_within_a_chi_square_bound() {
    let set = upstreams(&[1; 8]);
    let lb = balancer(Kind::Random, &set);
    let picks = 80_000;
    let mut counts = vec![0f64; set.len()];
    for _ in 0..picks {
        counts[index(&set, &lb.pick(b"").unwrap())] += 1.0;
    }
    let expected = picks as f64 / set.len() as f64;
    let chi_square: f64 = counts
        .iter()
        .map(|c| (c - expected).powi(2) / expected)
        .sum();
    // 7 degrees of freedom: the 0.999 quantile is 24.32.
    assert!(
        chi_square < 24.32,
        "chi-square {chi_square:.2}, counts {counts:?}"
    );
}

#[test]
fn bounded_load_never_exceeds_its_cap() {
    let set = upstreams(&[1; 10]);
    let lb = balancer(Kind::BoundedConsistentHash, &set);
    let mut held = Vec::new();
    for i in 0..1000 {
        // One hot key: plain consistent hashing would send all 1000 to one upstream.
        let picked = lb.pick(b"/the/hot/key").unwrap();
        let cap = (1.25 * (i + 1) as f64 / 10.0).ceil() as usize;
        assert!(
            picked.in_flight() < cap,
            "pick {i}: {} in flight, cap {cap}",
            picked.in_flight()
        );
        held.push(lb.start(&picked));
    }
    let max = set.iter().map(|u| u.in_flight()).max().unwrap();
    assert!(max <= 125, "max in flight {max}");
    drop(held);
    assert!(set.iter().all(|u| u.in_flight() == 0));
}

#[test]
fn least_connections_prefers_the_idle_upstream() {
    let set = upstreams(&[1, 1]);
    let lb = balancer(Kind::LeastConnections, &set);
    let _busy: Vec<_> = (0..5).map(|_| lb.start(&set[0])).collect();
    for _ in 0..100 {
        assert_eq!(index(&set, &lb.pick(b"").unwrap()), 1);
    }
}

#[test]
fn unhealthy_upstreams_are_never_picked() {
    let policy = HealthPolicy {
        max_fails: 2,
        cooldown: Duration::from_secs(60),
    };
    for kind in Kind::all() {
        let set = upstreams(&[3, 1, 2, 1]);
        let lb = balancer(kind, &set);
        for down in [0, 2] {
            lb.report(
                &set[down],
                &policy,
                Outcome::Unreachable("connection refused"),
            );
            lb.report(
                &set[down],
                &policy,
                Outcome::Unreachable("connection refused"),
            );
        }
        for i in 0..2000 {
            let picked = index(&set, &lb.pick(&key(i)).unwrap());
            assert!(
                picked == 1 || picked == 3,
                "{kind} picked ejected upstream {picked}"
            );
        }
        for down in [1, 3] {
            lb.report(
                &set[down],
                &policy,
                Outcome::Unreachable("connection refused"),
            );
            lb.report(
                &set[down],
                &policy,
                Outcome::Unreachable("connection refused"),
            );
        }
        // Panic mode: none healthy, so all of them take requests again —
        // a hashed key still to one upstream.
        let picked: HashSet<usize> = (0..100)
            .map(|_| index(&set, &lb.pick(b"").unwrap()))
            .collect();
        assert_eq!(picked.len(), 4, "{kind}: panic mode routes to all");
        let keyed: HashSet<usize> = (0..100)
            .map(|_| index(&set, &lb.pick(b"/cart/42").unwrap()))
            .collect();
        assert_eq!(
            keyed.len(),
            1,
            "{kind}: one key, one upstream, even in panic mode"
        );
        // A drain is an operator's order: panic mode does not override it,
        // for a request or a retry.
        set[2].drain(true);
        for i in 0..100 {
            assert_ne!(
                index(&set, &lb.pick(&key(i)).unwrap()),
                2,
                "{kind}: drained"
            );
            let tried = [set[0].clone()];
            if let Some(next) = lb.pick_another(&tried) {
                assert_ne!(index(&set, &next), 2, "{kind}: a retry onto a drained one");
            }
        }
        set[2].drain(false);
        // One recovers: panic mode ends, and only it is picked.
        lb.report(&set[3], &policy, Outcome::Success);
        for i in 0..200 {
            assert_eq!(index(&set, &lb.pick(&key(i)).unwrap()), 3, "{kind}");
        }
    }
}

#[test]
fn a_lone_upstream_is_never_ejected() {
    let policy = HealthPolicy {
        max_fails: 1,
        cooldown: Duration::from_secs(60),
    };
    let set = upstreams(&[1]);
    let lb = balancer(Kind::RoundRobin, &set);
    for _ in 0..5 {
        lb.report(&set[0], &policy, Outcome::Unreachable("connection refused"));
        lb.report(&set[0], &policy, Outcome::BadStatus(503));
    }
    assert!(set[0].is_healthy(), "nowhere better to send its requests");
}

#[test]
fn statuses_eject_at_most_half_of_the_set() {
    let policy = HealthPolicy {
        max_fails: 1,
        cooldown: Duration::from_secs(60),
    };
    let set = upstreams(&[1, 1, 1, 1]);
    let lb = balancer(Kind::RoundRobin, &set);
    for upstream in &set {
        lb.report(upstream, &policy, Outcome::BadStatus(503));
    }
    let out = set.iter().filter(|u| !u.is_healthy()).count();
    assert_eq!(
        out, 2,
        "a status any client can provoke takes out at most half"
    );
    // A connection failure is not something a client can ask for.
    lb.report(&set[3], &policy, Outcome::Unreachable("connection refused"));
    assert!(!set[3].is_healthy());
}

#[test]
fn another_upstream_is_an_untried_one_healthy_first() {
    let policy = HealthPolicy {
        max_fails: 1,
        cooldown: Duration::from_secs(60),
    };
    for kind in Kind::all() {
        let set = upstreams(&[1, 1, 1]);
        let lb = balancer(kind, &set);
        lb.report(&set[1], &policy, Outcome::Unreachable("connection refused"));
        for _ in 0..50 {
            let tried = vec![set[0].clone()];
            let next = lb.pick_another(&tried).unwrap();
            assert_eq!(index(&set, &next), 2, "{kind}: the healthy untried one");
        }
        // Every healthy one tried: an ejected one beats giving up.
        let tried = vec![set[0].clone(), set[2].clone()];
        assert_eq!(index(&set, &lb.pick_another(&tried).unwrap()), 1, "{kind}");
        let tried = set.clone();
        assert!(lb.pick_another(&tried).is_none(), "{kind}: all tried");
    }
}

#[test]
fn an_ejected_upstream_is_tried_again_after_the_cooldown() {
    let set = upstreams(&[1, 1]);
    let lb = balancer(Kind::RoundRobin, &set);
    let policy = HealthPolicy {
        max_fails: 1,
        cooldown: Duration::from_millis(100),
    };
    lb.report(&set[0], &policy, Outcome::Unreachable("connection refused"));
    assert!(!set[0].is_healthy());
    // The cooldown is the behaviour under test: wait it out.
    std::thread::sleep(Duration::from_millis(150));
    assert!(set[0].is_healthy());
    lb.report(&set[0], &policy, Outcome::Success);
    assert!(set[0].is_healthy());
}

#[test]
fn concurrent_picks_stay_correct() {
    let set = upstreams(&[1; 5]);
    let lb = Arc::new(balancer(Kind::RoundRobin, &set));
    let counts: Vec<HashMap<String, usize>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..8)
            .map(|_| {
                let lb = lb.clone();
                scope.spawn(move || {
                    let mut counts = HashMap::new();
                    for _ in 0..10_000 {
                        *counts
                            .entry(lb.pick(b"").unwrap().url.to_string())
                            .or_insert(0) += 1;
                    }
                    counts
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut total: HashMap<String, usize> = HashMap::new();
    for c in counts {
        for (url, n) in c {
            *total.entry(url).or_insert(0) += n;
        }
    }
    // 80,000 picks from one shared cycle of five: exactly 16,000 each.
    assert!(total.values().all(|&n| n == 16_000), "{total:?}");
}

#[test]
fn every_kind_is_registered_once() {
    let kinds: Vec<Kind> = Kind::all().collect();
    for (i, kind) in kinds.iter().enumerate() {
        assert!(!kinds[..i].contains(kind), "{kind} registered twice");
    }
    for kind in [
        Kind::Random,
        Kind::RoundRobin,
        Kind::WeightedRoundRobin,
        Kind::ConsistentHash,
        Kind::LeastConnections,
        Kind::BoundedConsistentHash,
    ] {
        assert!(kinds.contains(&kind), "{kind:?} has no line in STRATEGIES");
    }
}

#[test]
fn the_factory_names_the_valid_strategies() {
    for kind in Kind::all() {
        assert_eq!(kind.name().parse::<Kind>().unwrap(), kind);
    }
    let error = "fastest".parse::<Kind>().unwrap_err().to_string();
    assert!(
        error.starts_with("unknown balancing strategy \"fastest\"; valid: "),
        "{error}"
    );
    for name in Kind::names() {
        assert!(error.contains(name), "{error} lacks {name}");
    }
    assert!(matches!(
        Balancer::new(
            Kind::WeightedRoundRobin,
            upstreams(&[100_000, 1]),
            Options::default()
        ),
        Err(Error::WeightsTooLarge(100_001))
    ));
}

#[test]
fn the_set_can_be_replaced_while_picks_run() {
    let old = upstreams(&[1; 4]);
    let new = upstreams(&[1; 6]);
    for kind in Kind::all() {
        let lb = Arc::new(balancer(kind, &old));
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        std::thread::scope(|scope| {
            for _ in 0..2 {
                let (lb, stop) = (lb.clone(), stop.clone());
                let (old, new) = (&old, &new);
                scope.spawn(move || {
                    let mut i = 0;
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        let picked = lb.pick(&key(i)).expect("a pick never fails mid-swap");
                        assert!(old.iter().chain(new).any(|u| Arc::ptr_eq(u, &picked)));
                        i += 1;
                    }
                });
            }
            for round in 0..200 {
                lb.replace(if round % 2 == 0 {
                    new.clone()
                } else {
                    old.clone()
                })
                .unwrap();
            }
            stop.store(true, std::sync::atomic::Ordering::Relaxed);
        });
    }
}
