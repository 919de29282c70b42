//! The shared limiter against a real redis-server: instances share one
//! bucket, and a Redis that dies costs requests nothing.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::{Duration, Instant};

use real_server::redis::RedisServer;
use shared_limit::{DEFAULT_BOUND, Fail, SharedLimits, Verdict};

fn per_second(n: u32) -> NonZeroU32 {
    NonZeroU32::new(n).unwrap()
}

#[tokio::test]
#[cfg_attr(
    not(has_redis_server),
    ignore = "redis-server is not installed (apt-get install redis-server)"
)]
async fn two_instances_take_from_one_bucket() {
    let redis = RedisServer::start().await;
    let first = SharedLimits::new(&redis.url(), Fail::Open, DEFAULT_BOUND).unwrap();
    let second = SharedLimits::new(&redis.url(), Fail::Open, DEFAULT_BOUND).unwrap();
    // 1/s with bursts of 4: four requests in all, however they are spread
    // over the two instances, then a refusal from either. (The first call
    // connects, which may take longer than the bound on a loaded machine:
    // wait until each instance has answered once.)
    for limits in [&first, &second] {
        let deadline = Instant::now() + Duration::from_secs(10);
        while limits
            .check(b"warm-up", per_second(1000), per_second(1000))
            .await
            != Verdict::Admitted
        {
            assert!(Instant::now() < deadline, "redis never answered");
            tokio::task::yield_now().await;
        }
    }
    let mut verdicts = Vec::new();
    for limits in [&first, &second, &first, &second, &first, &second] {
        verdicts.push(limits.check(b"k", per_second(1), per_second(4)).await);
    }
    assert_eq!(&verdicts[..4], &[Verdict::Admitted; 4], "{verdicts:?}");
    for verdict in &verdicts[4..] {
        match verdict {
            Verdict::Refused(wait) => {
                assert!(*wait <= Duration::from_secs(1), "{wait:?}");
            }
            other => panic!("the fifth and sixth requests: {other:?} ({verdicts:?})"),
        }
    }
    // Another key is another bucket.
    assert_eq!(
        first.check(b"other", per_second(1), per_second(4)).await,
        Verdict::Admitted
    );
}

#[tokio::test]
#[cfg_attr(
    not(has_redis_server),
    ignore = "redis-server is not installed (apt-get install redis-server)"
)]
async fn a_dead_redis_answers_at_once_and_sharing_resumes_when_it_is_back() {
    let redis = RedisServer::start().await;
    let port = redis.port;
    let limits = Arc::new(SharedLimits::new(&redis.url(), Fail::Open, DEFAULT_BOUND).unwrap());
    let deadline = Instant::now() + Duration::from_secs(10);
    while limits.check(b"k", per_second(1), per_second(1)).await != Verdict::Admitted {
        assert!(Instant::now() < deadline, "redis never answered");
    }
    redis.kill();
    // The first request after the crash finds out (within the bound); the
    // next ones do not even try, until RETRY_EVERY has passed.
    let started = Instant::now();
    let mut unavailable = 0;
    for _ in 0..200 {
        if limits.check(b"k", per_second(1), per_second(1)).await == Verdict::Unavailable {
            unavailable += 1;
        }
    }
    assert_eq!(unavailable, 200);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "200 requests took {:?} without Redis",
        started.elapsed()
    );
    let _back = RedisServer::start_on(port).await;
    // Within a few retry intervals the bucket is Redis' again: the key was
    // lost with the old server, so the first check is admitted and the
    // second refused.
    let deadline = Instant::now() + Duration::from_secs(10);
    while limits.check(b"k", per_second(1), per_second(1)).await != Verdict::Admitted {
        assert!(Instant::now() < deadline, "sharing never resumed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(matches!(
        limits.check(b"k", per_second(1), per_second(1)).await,
        Verdict::Refused(_)
    ));
}

#[tokio::test]
async fn a_redis_that_hangs_costs_one_request_in_each_interval_the_bound() {
    // A "Redis" that accepts connections and never answers: the worst kind
    // of outage, where every try would wait the whole bound.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("redis://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            held.push(stream);
        }
    });
    let limits = SharedLimits::new(&url, Fail::Open, Duration::from_millis(100)).unwrap();
    let started = Instant::now();
    for _ in 0..100 {
        assert_eq!(
            limits.check(b"k", per_second(1), per_second(1)).await,
            Verdict::Unavailable
        );
    }
    // Tried once or twice (RETRY_EVERY is 500 ms), not 100 times (10 s).
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "100 requests took {:?}: each waited for Redis",
        started.elapsed()
    );
}

#[tokio::test]
#[cfg_attr(
    not(has_redis_server),
    ignore = "redis-server is not installed (apt-get install redis-server)"
)]
async fn keys_clients_invent_do_not_stay_in_redis() {
    // A client that sends a new key with every request (header:X-Api-Key,
    // say) makes a bucket each time. A bucket's key expires when it would
    // be full again, so Redis holds only the busy ones: here, at 1,000/s
    // with bursts of 1, a bucket is full again after 1 ms.
    let redis = RedisServer::start().await;
    let limits = SharedLimits::new(&redis.url(), Fail::Open, DEFAULT_BOUND).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while limits
        .check(b"warm-up", per_second(1000), per_second(1))
        .await
        != Verdict::Admitted
    {
        assert!(Instant::now() < deadline, "redis never answered");
    }
    for n in 0..2_000 {
        let key = format!("invented-{n}");
        assert_eq!(
            limits
                .check(key.as_bytes(), per_second(1000), per_second(1))
                .await,
            Verdict::Admitted
        );
    }
    let client = redis::Client::open(redis.url()).unwrap();
    let mut connection = client.get_multiplexed_async_connection().await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let keys: u64 = redis::cmd("DBSIZE")
            .query_async(&mut connection)
            .await
            .unwrap();
        if keys == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "{keys} buckets still in Redis");
        tokio::task::yield_now().await;
    }
}
