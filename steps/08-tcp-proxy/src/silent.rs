//! Connections whose clients have said nothing yet, and who gives up a
//! place when every place is taken.
//!
//! An L4 proxy cannot tell a silent client from a slow one: it reads no
//! protocol, so it has no request head to time. The only clock it has is
//! the idle timeout (minutes, because a quiet database connection is
//! normal). A client that opens connections and sends nothing therefore
//! keeps each for the whole idle timeout, and a handful of addresses, each
//! at its per-address cap, fill `--max-connections`: from then on the
//! proxy stops accepting and everyone else waits. HAProxy in `mode tcp`
//! and nginx's `stream {}` behave the same way.
//!
//! Two answers, one on by default:
//!
//! - **At the cap, the oldest silent connection gives its place.** When a
//!   connection takes the last place, the connection that has been open
//!   longest without one byte from its client is closed, so the next client
//!   in the backlog gets in. A client that has spoken is never chosen, so
//!   working connections are never cut for a newcomer; a silent one loses
//!   its place only when someone needs it. The attacker ends up churning
//!   its own connections.
//! - **`--first-byte-timeout`** (off by default): close any connection whose
//!   client has sent nothing within this long of accept. Right for
//!   protocols where the client speaks first (Redis, PostgreSQL, TLS), and
//!   wrong where the server does and a pool may hold connections it has not
//!   used yet — the operator knows which; the proxy does not.
//!
//! Left out on purpose: telling server-first protocols apart by waiting for
//! the upstream's greeting. It would need a protocol table, and a proxy
//! that reads nothing is the lesson.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

/// Every open connection, in order of arrival, and how many may be open.
pub struct Places {
    cap: usize,
    next: AtomicU64,
    open: Mutex<BTreeMap<u64, Arc<Place>>>,
}

/// One open connection: what its client has sent, and a way to close it.
#[derive(Default)]
pub struct Place {
    /// Bytes from the client so far (the relay counts them here).
    pub from_client: AtomicU64,
    given_up: AtomicBool,
    close: Notify,
}

impl Place {
    /// Has the client sent anything?
    pub fn spoke(&self) -> bool {
        self.from_client.load(Ordering::Relaxed) > 0
    }

    /// Resolves when this place has been given to someone else.
    pub async fn given_up(&self) {
        self.close.notified().await
    }
}

/// A place held; leaving it (dropping this) frees it.
pub struct Held<'a> {
    places: &'a Places,
    id: u64,
    pub place: Arc<Place>,
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        self.places.lock().remove(&self.id);
    }
}

impl Places {
    /// Places for at most `cap` connections (the server's cap).
    pub fn new(cap: usize) -> Self {
        Self {
            cap,
            next: AtomicU64::new(0),
            open: Mutex::new(BTreeMap::new()),
        }
    }

    /// Take a place for a new connection. If it was the last one, the
    /// oldest connection whose client has sent nothing is told to give
    /// its place up; `true` then.
    pub fn enter(&self) -> (Held<'_>, bool) {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let place = Arc::new(Place::default());
        let mut open = self.lock();
        open.insert(id, place.clone());
        let mut evicted = false;
        if open.len() >= self.cap {
            // Oldest first: BTreeMap iterates in id order. Only at the cap
            // does this walk the table.
            let silent = open.iter().find(|(other, p)| {
                **other != id && !p.spoke() && !p.given_up.load(Ordering::Relaxed)
            });
            if let Some((_, silent)) = silent {
                silent.given_up.store(true, Ordering::Relaxed);
                // notify_one keeps the wake-up for a connection not yet
                // waiting (still connecting upstream).
                silent.close.notify_one();
                evicted = true;
            }
        }
        drop(open);
        let held = Held {
            places: self,
            id,
            place,
        };
        (held, evicted)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, Arc<Place>>> {
        // A panic elsewhere while holding the lock leaves a map that is
        // still whole: carry on with it.
        self.open
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_the_cap_the_oldest_silent_place_is_given_up() {
        let places = Places::new(3);
        let (first, evicted) = places.enter();
        assert!(!evicted);
        let (second, evicted) = places.enter();
        assert!(!evicted, "below the cap nobody is asked to leave");
        first.place.from_client.store(5, Ordering::Relaxed);
        let (third, evicted) = places.enter();
        assert!(evicted);
        // The first spoke: the second is the oldest silent one.
        assert!(second.place.given_up.load(Ordering::Relaxed));
        assert!(!first.place.given_up.load(Ordering::Relaxed));
        assert!(!third.place.given_up.load(Ordering::Relaxed));
        // Asked once: the next newcomer picks the next silent one.
        let (_fourth, evicted) = places.enter();
        assert!(evicted);
        assert!(third.place.given_up.load(Ordering::Relaxed));
    }

    #[test]
    fn a_place_is_freed_when_its_connection_ends() {
        let places = Places::new(2);
        let (held, _) = places.enter();
        drop(held);
        assert!(places.lock().is_empty());
    }
}
