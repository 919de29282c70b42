//! Statistics: every request counted per service, per app and in total,
//! per UTC hour and per UTC day — what `GET /stats` and the dashboard show.
//!
//! The course increments a Redis counter per scope on every request,
//! through a buffer it empties once a second. We keep its shape and its
//! keys' lifetime, and make the per-request part an atomic add in the
//! process: each scope has a [`Tally`], and once a second a task moves
//! every tally's count into the current hour — with `[redis]`, as one
//! pipeline of `HINCRBY`s into a hash per UTC day (`workbench:stats:DATE`,
//! fields `service:api:13`), so all instances add into the same numbers
//! and Redis sees a handful of commands a second however busy the
//! gateway is; without it, into a table in the process. A day's hash
//! expires two days after the day ends. A count that cannot be written
//! (Redis down) is kept and written with the next one.
//!
//! A day is the sum of its hours; `qps` is this instance's requests a
//! second over the last [`QPS_SECONDS`] seconds.
//!
//! Left out on purpose: counts by status or latency (that is `/metrics`),
//! and anything older than yesterday.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use shared_limit::SharedLimits;

/// Seconds in a day and an hour.
const DAY: u64 = 86_400;
const HOUR: u64 = 3_600;

/// The window `qps` is averaged over.
pub(crate) const QPS_SECONDS: u64 = 5;

/// How long a write to (or a read from) Redis may take.
const REDIS_BOUND: Duration = Duration::from_secs(1);

/// What a count is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scope {
    Total,
    Service,
    App,
}

/// One scope's requests since the last flush: the per-request part.
#[derive(Default)]
pub(crate) struct Tally(AtomicU64);

impl Tally {
    pub(crate) fn count(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
}

/// Every scope's tally, and the counts flushed so far.
pub(crate) struct Statistics {
    tallies: Mutex<HashMap<String, Arc<Tally>>>,
    total: Arc<Tally>,
    /// Held while flushing: one flush at a time, so none is counted twice.
    flushed: tokio::sync::Mutex<Flushed>,
}

#[derive(Default)]
struct Flushed {
    /// Per scope, its counts in the last seconds (second → count).
    recent: HashMap<String, Vec<(u64, u64)>>,
    /// Without Redis: per UTC day, per scope, its 24 hours.
    days: HashMap<u64, HashMap<String, [u64; 24]>>,
    /// Counts Redis did not take: (day, field) → count.
    unsent: HashMap<(u64, String), u64>,
}

/// One scope's numbers, as `/stats` writes them.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub(crate) struct Counts {
    pub(crate) today: u64,
    pub(crate) yesterday: u64,
    pub(crate) hours_today: [u64; 24],
    pub(crate) hours_yesterday: [u64; 24],
    pub(crate) qps: f64,
}

/// Every scope's hours of today and yesterday.
pub(crate) struct Snapshot {
    today: HashMap<String, [u64; 24]>,
    yesterday: HashMap<String, [u64; 24]>,
    recent: HashMap<String, f64>,
}

impl Snapshot {
    /// The numbers of `scope` `name` (`""` for the total).
    pub(crate) fn counts(&self, scope: Scope, name: &str) -> Counts {
        let field = scope_name(scope, name);
        let today = self.today.get(&field).copied().unwrap_or_default();
        let yesterday = self.yesterday.get(&field).copied().unwrap_or_default();
        Counts {
            today: today.iter().sum(),
            yesterday: yesterday.iter().sum(),
            hours_today: today,
            hours_yesterday: yesterday,
            qps: self.recent.get(&field).copied().unwrap_or_default(),
        }
    }
}

impl Default for Statistics {
    fn default() -> Self {
        let total = Arc::new(Tally::default());
        let tallies = HashMap::from([(scope_name(Scope::Total, ""), total.clone())]);
        Self {
            tallies: Mutex::new(tallies),
            total,
            flushed: tokio::sync::Mutex::default(),
        }
    }
}

/// `total`, `service:NAME`, `app:ID`: a scope's name in Redis and here.
fn scope_name(scope: Scope, name: &str) -> String {
    match scope {
        Scope::Total => "total".to_owned(),
        Scope::Service => format!("service:{name}"),
        Scope::App => format!("app:{name}"),
    }
}

/// The hash of UTC day `day` (days since 1970-01-01): `workbench:stats:2026-12-03`.
fn day_key(day: u64) -> String {
    let date = time::OffsetDateTime::UNIX_EPOCH + time::Duration::days(day as i64);
    format!(
        "workbench:stats:{:04}-{:02}-{:02}",
        date.year(),
        u8::from(date.month()),
        date.day()
    )
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs())
}

impl Statistics {
    /// The total's tally: every request the gateway routes (or refuses to).
    pub(crate) fn total(&self) -> &Arc<Tally> {
        &self.total
    }

    /// The tally of `scope` `name`: the same one for the same name, across
    /// reloads.
    pub(crate) fn tally(&self, scope: Scope, name: &str) -> Arc<Tally> {
        self.tallies
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(scope_name(scope, name))
            .or_default()
            .clone()
    }

    /// Move every tally into the current hour: into Redis with `redis`,
    /// else into the process' table.
    pub(crate) async fn flush(&self, redis: Option<&SharedLimits>) {
        let mut flushed = self.flushed.lock().await;
        let now = unix_now();
        let (day, hour) = (now / DAY, (now % DAY / HOUR) as usize);
        let counts: Vec<(String, u64)> = self
            .tallies
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .map(|(field, tally)| (field.clone(), tally.0.swap(0, Ordering::Relaxed)))
            .filter(|(_, n)| *n > 0)
            .collect();
        for (field, n) in &counts {
            let recent = flushed.recent.entry(field.clone()).or_default();
            recent.retain(|(second, _)| second + QPS_SECONDS > now);
            match recent.last_mut() {
                Some((second, count)) if *second == now => *count += n,
                _ => recent.push((now, *n)),
            }
        }
        let Some(redis) = redis else {
            let days = &mut flushed.days;
            days.retain(|kept, _| kept + 1 >= day);
            let today = days.entry(day).or_default();
            for (field, n) in counts {
                today.entry(field).or_default()[hour] += n;
            }
            return;
        };
        let mut unsent = std::mem::take(&mut flushed.unsent);
        for (field, n) in counts {
            *unsent.entry((day, format!("{field}:{hour}"))).or_default() += n;
        }
        if unsent.is_empty() {
            return;
        }
        let mut pipe = redis::pipe();
        let mut days = Vec::new();
        for ((day, field), n) in &unsent {
            pipe.cmd("HINCRBY")
                .arg(day_key(*day))
                .arg(field)
                .arg(*n)
                .ignore();
            if !days.contains(day) {
                days.push(*day);
            }
        }
        for day in days {
            // Two days after the day's end, as the course's counters.
            let expires = (day + 1) * DAY + 2 * DAY;
            pipe.cmd("EXPIREAT").arg(day_key(day)).arg(expires).ignore();
        }
        let mut connection = redis.connection();
        let written = tokio::time::timeout(REDIS_BOUND, pipe.query_async::<()>(&mut connection));
        match written.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::debug!("statistics not written to Redis, kept for the next try: {e}");
                flushed.unsent = unsent;
            }
            Err(_) => {
                tracing::debug!("statistics not written to Redis in time, kept for the next try");
                flushed.unsent = unsent;
            }
        }
    }

    /// Today's and yesterday's hours of every scope — this instance's last
    /// counts flushed first, so they are in — or why they cannot be read.
    pub(crate) async fn snapshot(&self, redis: Option<&SharedLimits>) -> Result<Snapshot, String> {
        self.flush(redis).await;
        let now = unix_now();
        let day = now / DAY;
        let flushed = self.flushed.lock().await;
        let recent = flushed
            .recent
            .iter()
            .map(|(field, seconds)| {
                let sum: u64 = seconds
                    .iter()
                    .filter(|(second, _)| second + QPS_SECONDS > now)
                    .map(|(_, n)| n)
                    .sum();
                (field.clone(), sum as f64 / QPS_SECONDS as f64)
            })
            .collect();
        let (today, yesterday) = match redis {
            None => (
                flushed.days.get(&day).cloned().unwrap_or_default(),
                flushed.days.get(&(day - 1)).cloned().unwrap_or_default(),
            ),
            Some(redis) => (read_day(redis, day).await?, read_day(redis, day - 1).await?),
        };
        Ok(Snapshot {
            today,
            yesterday,
            recent,
        })
    }
}

/// A day's hash from Redis, as hours by scope, or why not.
async fn read_day(redis: &SharedLimits, day: u64) -> Result<HashMap<String, [u64; 24]>, String> {
    let mut connection = redis.connection();
    let mut hgetall = redis::cmd("HGETALL");
    hgetall.arg(day_key(day));
    let read = hgetall.query_async::<HashMap<String, u64>>(&mut connection);
    let fields = match tokio::time::timeout(REDIS_BOUND, read).await {
        Ok(Ok(fields)) => fields,
        Ok(Err(e)) => return Err(format!("the statistics cannot be read from Redis: {e}")),
        Err(_) => {
            return Err(format!(
                "the statistics cannot be read from Redis: no answer within {} s",
                REDIS_BOUND.as_secs()
            ));
        }
    };
    let mut hours: HashMap<String, [u64; 24]> = HashMap::new();
    for (field, n) in fields {
        let Some((scope, hour)) = field.rsplit_once(':') else {
            continue;
        };
        if let Ok(hour @ 0..24) = hour.parse::<usize>() {
            hours.entry(scope.to_owned()).or_default()[hour] += n;
        }
    }
    Ok(hours)
}

/// Flush `statistics` once a second, into where `redis` says at the time
/// (a reload may add or change `[redis]`).
pub(crate) async fn flush_every_second(
    statistics: Arc<Statistics>,
    redis: impl Fn() -> Option<Arc<SharedLimits>>,
) {
    let mut every = tokio::time::interval(Duration::from_secs(1));
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        statistics.flush(redis().as_deref()).await;
    }
}
