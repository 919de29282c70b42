//! Cost of one pick, per strategy, at 2, 10, 100 and 1000 upstreams, on one
//! thread and with two threads picking from the same balancer at once.
//! Target: under 100 ns per pick at 100 upstreams for every strategy.

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use load_balance::{Balancer, Kind, Options, Upstream};

fn balancer(kind: Kind, n: usize) -> Balancer {
    let upstreams = (0..n)
        .map(|i| {
            let url = format!("http://10.0.{}.{}:8080", i / 250, i % 250)
                .parse()
                .unwrap();
            Upstream::new(url, (i % 5 + 1) as u32)
        })
        .collect();
    Balancer::new(kind, upstreams, Options::default()).unwrap()
}

/// Many distinct keys, as real traffic has: with a handful, the hashing
/// strategies would keep returning the same few upstreams.
fn keys() -> Vec<Vec<u8>> {
    (0..256)
        .map(|i| format!("/users/{i}?tab=orders").into_bytes())
        .collect()
}

fn picks(c: &mut Criterion) {
    for threads in [1usize, 2] {
        let mut group = c.benchmark_group(format!("pick/{threads}-thread"));
        group
            .measurement_time(Duration::from_secs(1))
            .warm_up_time(Duration::from_millis(300));
        let keys = keys();
        for kind in Kind::all() {
            for n in [2usize, 10, 100, 1000] {
                let balancer = Arc::new(balancer(kind, n));
                group.bench_with_input(BenchmarkId::new(kind.name(), n), &n, |b, _| {
                    b.iter_custom(|iters| {
                        let per_thread = iters.div_ceil(threads as u64);
                        let started = Instant::now();
                        std::thread::scope(|scope| {
                            for t in 0..threads {
                                let (balancer, keys) = (balancer.clone(), &keys);
                                scope.spawn(move || {
                                    for i in 0..per_thread {
                                        let key = &keys[(i as usize + t * 17) % keys.len()];
                                        std::hint::black_box(balancer.pick(key));
                                    }
                                });
                            }
                        });
                        // Each thread made `per_thread` picks in this wall time:
                        // scale to `iters` picks at that per-pick latency.
                        started.elapsed().mul_f64(iters as f64 / per_thread as f64)
                    })
                });
            }
        }
        group.finish();
    }
}

criterion_group!(benches, picks);
criterion_main!(benches);
