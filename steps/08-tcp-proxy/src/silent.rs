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
//! - **Failing that, the biggest holder gives way.** A client that sends
//!   one byte is no longer silent, and a handful of addresses can fill the
//!   cap that way as well. So when no connection is silent, the address
//!   holding the most places gives up the connection whose client has sent
//!   it the least — the fair-share rule: whoever holds most yields first,
//!   and an address with a single connection is never cut for another.
//! - **`--first-byte-timeout`** (off by default): close any connection whose
//!   client has sent nothing within this long of accept. Right for
//!   protocols where the client speaks first (Redis, PostgreSQL, TLS), and
//!   wrong where the server does and a pool may hold connections it has not
//!   used yet — the operator knows which; the proxy does not.
//!
//! Left out on purpose: telling server-first protocols apart by waiting for
//! the upstream's greeting. It would need a protocol table, and a proxy
//! that reads nothing is the lesson.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

/// Every open connection, in order of arrival, and how many may be open.
pub struct Places {
    cap: usize,
    next: AtomicU64,
    open: Mutex<BTreeMap<u64, Arc<Place>>>,
}

/// One open connection: whose it is, what its client has sent, and a way
/// to close it.
pub struct Place {
    /// The client's share of the address space (its /64 for IPv6), as the
    /// per-address cap counts it.
    address: IpAddr,
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

    /// Take a place for a new connection from `peer`. If it was the last
    /// one, another connection is told to give its place up (see the
    /// module's doc for which); `true` then.
    pub fn enter(&self, peer: IpAddr) -> (Held<'_>, bool) {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let place = Arc::new(Place {
            address: proxy_core::client::client_share(peer),
            from_client: AtomicU64::new(0),
            given_up: AtomicBool::new(false),
            close: Notify::new(),
        });
        let mut open = self.lock();
        open.insert(id, place.clone());
        let mut evicted = false;
        if open.len() >= self.cap {
            // Only at the cap does this walk the table.
            if let Some(victim) = victim(&open, id) {
                victim.given_up.store(true, Ordering::Relaxed);
                // notify_one keeps the wake-up for a connection not yet
                // waiting for it.
                victim.close.notify_one();
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

/// Who gives up a place for newcomer `id`: the oldest connection whose
/// client has said nothing, else the one whose client has sent least of
/// the address holding the most places (if it holds more than one).
fn victim(open: &BTreeMap<u64, Arc<Place>>, id: u64) -> Option<&Arc<Place>> {
    let candidates = || {
        open.iter()
            .filter(move |(other, p)| **other != id && !p.given_up.load(Ordering::Relaxed))
            .map(|(_, p)| p)
    };
    // Oldest first: BTreeMap iterates in id order.
    if let Some(silent) = candidates().find(|p| !p.spoke()) {
        return Some(silent);
    }
    let mut held: HashMap<IpAddr, usize> = HashMap::new();
    for place in candidates() {
        *held.entry(place.address).or_default() += 1;
    }
    let (biggest, count) = held.into_iter().max_by_key(|&(_, count)| count)?;
    if count < 2 {
        return None;
    }
    candidates()
        .filter(|p| p.address == biggest)
        .min_by_key(|p| p.from_client.load(Ordering::Relaxed))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_the_cap_the_oldest_silent_place_is_given_up() {
        let places = Places::new(3);
        let (first, evicted) = places.enter(LOCAL);
        assert!(!evicted);
        let (second, evicted) = places.enter(LOCAL);
        assert!(!evicted, "below the cap nobody is asked to leave");
        first.place.from_client.store(5, Ordering::Relaxed);
        let (third, evicted) = places.enter(LOCAL);
        assert!(evicted);
        // The first spoke: the second is the oldest silent one.
        assert!(second.place.given_up.load(Ordering::Relaxed));
        assert!(!first.place.given_up.load(Ordering::Relaxed));
        assert!(!third.place.given_up.load(Ordering::Relaxed));
        // Asked once: the next newcomer picks the next silent one.
        let (_fourth, evicted) = places.enter(LOCAL);
        assert!(evicted);
        assert!(third.place.given_up.load(Ordering::Relaxed));
    }

    const LOCAL: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

    #[test]
    fn when_everyone_has_spoken_the_biggest_holder_gives_way() {
        let places = Places::new(4);
        let other: IpAddr = "192.0.2.1".parse().unwrap();
        let (alone, _) = places.enter(other);
        alone.place.from_client.store(1, Ordering::Relaxed);
        let (busy, _) = places.enter(LOCAL);
        busy.place.from_client.store(500, Ordering::Relaxed);
        let (one_byte, _) = places.enter(LOCAL);
        one_byte.place.from_client.store(1, Ordering::Relaxed);
        let (newcomer, evicted) = places.enter(other);
        assert!(evicted);
        // The address with two places yields its quietest connection; the
        // other address's single older one keeps its place.
        assert!(one_byte.place.given_up.load(Ordering::Relaxed));
        assert!(!alone.place.given_up.load(Ordering::Relaxed));
        assert!(!busy.place.given_up.load(Ordering::Relaxed));
        assert!(!newcomer.place.given_up.load(Ordering::Relaxed));
    }

    #[test]
    fn an_address_with_one_connection_is_never_cut_for_another() {
        let places = Places::new(2);
        let (first, _) = places.enter(LOCAL);
        first.place.from_client.store(1, Ordering::Relaxed);
        let (_second, evicted) = places.enter("192.0.2.1".parse().unwrap());
        assert!(!evicted);
        assert!(!first.place.given_up.load(Ordering::Relaxed));
    }

    #[test]
    fn a_place_is_freed_when_its_connection_ends() {
        let places = Places::new(2);
        let (held, _) = places.enter(LOCAL);
        drop(held);
        assert!(places.lock().is_empty());
    }
}
