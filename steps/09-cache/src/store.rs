//! Stored responses, bounded by bytes, least recently used out first.
//!
//! The bound is on what a response costs — its body, its headers, its
//! key — not on how many there are: a cache of a thousand 1 MiB images and
//! one of a thousand 1 KiB pages are very different caches. `moka` keeps
//! the map, the weights and the LRU order, and evicts without a global
//! lock; what is stored per URL is a short list of variants (`Vary`), at
//! most [`VARIANTS`] of them, so a client cycling a varying header cannot
//! grow one URL's list without end.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::SystemTime;

use bytes::Bytes;
use hyper::header::{ETAG, HeaderValue, LAST_MODIFIED};
use hyper::{HeaderMap, StatusCode};
use moka::ops::compute::Op;
use moka::policy::EvictionPolicy;

use crate::directives::Directives;
use crate::freshness::{Lifetime, Timing};
use crate::vary::Selecting;

/// Variants kept per URL; the least recently stored goes first.
pub const VARIANTS: usize = 8;

/// A stored response.
#[derive(Debug)]
pub struct Stored {
    pub status: StatusCode,
    /// As the upstream sent them, without hop-by-hop fields and `Age`
    /// (which is computed for each answer).
    pub headers: HeaderMap,
    pub body: Bytes,
    pub trailers: Option<HeaderMap>,
    /// Its request's values for the headers it varies on.
    pub selecting: Selecting,
    pub timing: Timing,
    pub lifetime: Lifetime,
    /// Its `Cache-Control`.
    pub directives: Directives,
}

impl Stored {
    /// Bytes it costs, roughly: body, headers, trailers, selecting values.
    pub fn size(&self) -> usize {
        let fields = |headers: &HeaderMap| {
            headers
                .iter()
                .map(|(name, value)| name.as_str().len() + value.len() + 32)
                .sum::<usize>()
        };
        self.body.len()
            + fields(&self.headers)
            + self.trailers.as_ref().map_or(0, fields)
            + self.selecting.size()
            + std::mem::size_of::<Self>()
    }

    /// Its age now (RFC 9111 §4.2.3).
    pub fn age(&self, now: SystemTime) -> u64 {
        self.timing.current_age(now)
    }

    /// Seconds of freshness left now; negative once stale.
    pub fn ttl(&self, now: SystemTime) -> i64 {
        let lifetime = i64::try_from(self.lifetime.seconds()).unwrap_or(i64::MAX);
        let age = i64::try_from(self.age(now)).unwrap_or(i64::MAX);
        lifetime.saturating_sub(age)
    }

    pub fn etag(&self) -> Option<&HeaderValue> {
        self.headers.get(ETAG)
    }

    pub fn last_modified(&self) -> Option<&HeaderValue> {
        self.headers.get(LAST_MODIFIED)
    }
}

type Variants = Arc<Vec<Arc<Stored>>>;

/// The stored responses, by URL. A key is the host, then the path and
/// query (`example.com/a?b=1`).
pub struct Store {
    entries: moka::sync::Cache<String, Variants>,
    /// When each URL was last invalidated (the last 10,000, for 10
    /// minutes: longer than a flight lasts).
    invalidated: moka::sync::Cache<String, SystemTime>,
    /// When each purge pattern was last asked for (as `invalidated`): a
    /// purge also covers URLs nothing had stored yet.
    purged: moka::sync::Cache<String, SystemTime>,
    /// When the latest purge was: only an answer asked for before it is
    /// held against the patterns.
    last_purge: Mutex<SystemTime>,
}

/// How long the store remembers an invalidation or a purge: longer than a
/// flight lasts (a flight gives up after 60 s without a byte).
const REMEMBERED: std::time::Duration = std::time::Duration::from_secs(600);

impl Store {
    /// A store holding at most `bytes`.
    pub fn new(bytes: u64) -> Self {
        let entries = moka::sync::Cache::builder()
            .max_capacity(bytes)
            .weigher(|key: &String, variants: &Variants| {
                let size = key.len() + variants.iter().map(|v| v.size()).sum::<usize>();
                u32::try_from(size).unwrap_or(u32::MAX)
            })
            .eviction_policy(EvictionPolicy::lru())
            .build();
        // Least recently used out: the newest is always let in (moka's
        // default admission may turn a newcomer away when it is full).
        let remembered = || {
            moka::sync::Cache::builder()
                .max_capacity(10_000)
                .time_to_live(REMEMBERED)
                .eviction_policy(EvictionPolicy::lru())
                .build()
        };
        Self {
            entries,
            invalidated: remembered(),
            purged: remembered(),
            last_purge: Mutex::new(SystemTime::UNIX_EPOCH),
        }
    }

    /// The response stored for `key` whose variant `request` selects.
    pub fn select(&self, key: &str, request: &HeaderMap) -> Select {
        match self.entries.get(key) {
            None => Select::None,
            Some(variants) => variants
                .iter()
                .find(|stored| stored.selecting.matches(request))
                .map_or(Select::OtherVariants, |stored| {
                    Select::Found(stored.clone())
                }),
        }
    }

    /// Store `stored` for `key`, in place of a variant the same request
    /// headers select — unless `key` was invalidated or purged after
    /// `stored` was asked for: an answer from before a successful `POST`
    /// must not come back after the `POST` dropped it, nor one from before
    /// a purge after the purge.
    pub fn insert(&self, key: String, stored: Arc<Stored>) {
        let asked = stored.timing.requested;
        // Checked under the key's lock, which `remove` takes too: a purge
        // or an invalidation records itself before it removes, so it
        // either finds this answer stored or is found here.
        let dropped_since = |key: &str| {
            if self.invalidated.get(key).is_some_and(|at| at >= asked) {
                return true;
            }
            let last = *self
                .last_purge
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            last >= asked
                && self.purged.iter().any(|(pattern, at)| {
                    at >= asked && path_of(key).is_some_and(|path| purge_takes(path, &pattern))
                })
        };
        let checked = key.clone();
        self.entries.entry(key).and_compute_with(|held| {
            if dropped_since(&checked) {
                return Op::Nop;
            }
            let mut variants = vec![stored.clone()];
            if let Some(held) = held {
                variants.extend(
                    held.value()
                        .iter()
                        .filter(|other| other.selecting != stored.selecting)
                        .take(VARIANTS - 1)
                        .cloned(),
                );
            }
            Op::Put(Arc::new(variants))
        });
    }

    /// Forget every variant stored for `key` (a newer answer replaces
    /// them).
    pub fn remove(&self, key: &str) {
        self.entries
            .entry_by_ref(key)
            .and_compute_with(|_| Op::Remove);
    }

    /// Forget every variant stored for `key`, and any answer asked for
    /// before now that is still on its way (the resource changed).
    pub fn invalidate(&self, key: &str) {
        self.invalidated.insert(key.to_owned(), SystemTime::now());
        self.remove(key);
    }

    /// Drop what is stored for the paths `pattern` takes
    /// ([`purge_takes`]) on any host, and any answer asked for before now
    /// that is still on its way for one of them; how many URLs were stored.
    pub fn purge(&self, pattern: &str) -> usize {
        let now = SystemTime::now();
        self.purged.insert(pattern.to_owned(), now);
        *self
            .last_purge
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = now;
        let keys: Vec<Arc<String>> = self
            .entries
            .iter()
            .map(|(key, _)| key)
            .filter(|key| path_of(key).is_some_and(|path| purge_takes(path, pattern)))
            .collect();
        for key in &keys {
            self.remove(key);
        }
        keys.len()
    }

    /// Bytes held now (after eviction has caught up).
    pub fn bytes(&self) -> u64 {
        self.entries.run_pending_tasks();
        self.entries.weighted_size()
    }
}

/// The path and query of a key (after its host).
fn path_of(key: &str) -> Option<&str> {
    key.find('/').map(|slash| &key[slash..])
}

/// Does a purge of `purge` drop the stored URL whose path and query are
/// `stored`? A path takes itself with any query or none; a path with a
/// query, that URL alone; a final `*`, every path and query it starts.
pub fn purge_takes(stored: &str, purge: &str) -> bool {
    if let Some(prefix) = purge.strip_suffix('*') {
        return stored.starts_with(prefix);
    }
    if purge.contains('?') {
        return stored == purge;
    }
    let path = stored.split_once('?').map_or(stored, |(path, _)| path);
    path == purge
}

/// What a lookup found.
pub enum Select {
    Found(Arc<Stored>),
    /// Responses for the URL, none for this request's varying headers.
    OtherVariants,
    None,
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// A stored answer to a request made at `requested`.
    fn asked_at(requested: SystemTime) -> Arc<Stored> {
        let headers = HeaderMap::new();
        Arc::new(Stored {
            status: StatusCode::OK,
            body: Bytes::from_static(b"old"),
            trailers: None,
            selecting: Selecting::default(),
            timing: Timing::of(&headers, requested, requested),
            lifetime: Lifetime::Explicit(60),
            directives: Directives::default(),
            headers,
        })
    }

    #[test]
    fn the_newest_invalidation_and_purge_are_remembered_after_many_others() {
        let store = Store::new(1 << 20);
        let before = SystemTime::now() - Duration::from_secs(1);
        // More than are remembered: the oldest go, not the newest.
        for n in 0..12_000 {
            store.invalidate(&format!("host/{n}"));
            store.purge(&format!("/p{n}"));
        }
        store.invalidated.run_pending_tasks();
        store.purged.run_pending_tasks();
        store.invalidate("host/posted");
        store.purge("/purged/*");
        store.invalidated.run_pending_tasks();
        store.purged.run_pending_tasks();
        for key in ["host/posted", "host/purged/page"] {
            store.insert(key.to_owned(), asked_at(before));
            assert!(
                matches!(store.select(key, &HeaderMap::new()), Select::None),
                "{key} was stored after it was dropped"
            );
        }
        // An answer asked for after them is stored.
        store.insert("host/posted".to_owned(), asked_at(SystemTime::now()));
        assert!(matches!(
            store.select("host/posted", &HeaderMap::new()),
            Select::Found(_)
        ));
    }
}
