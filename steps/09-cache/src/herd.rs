//! Many concurrent misses for one URL, one upstream request: request
//! collapsing.
//!
//! When a popular URL expires, every client asking for it in the next
//! moment misses — the thundering herd — and a cache that sends each miss
//! upstream turns one expiry into a thousand requests to the origin. Here
//! the first miss for a URL leads a *flight*; later misses for the same URL
//! follow it: they wait for the leader's response head and, if it may be
//! shared, read its body as it fills ([`crate::filling`]). A response that
//! may not be shared (`private`, `no-store`, too large...) cannot serve the
//! followers: each then asks upstream for itself, as it would have without
//! the cache. A flight stays joinable until its body is stored (or turns
//! out too large to be), so a client arriving mid-body still joins.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::{Notify, watch};

use crate::filling::Filling;
use crate::store::Stored;

/// How a flight landed.
#[derive(Clone)]
pub enum Landed {
    /// A response its followers may share, if it selects their request
    /// (`Vary`): its head (`body` empty) and its body as it fills.
    Shared(Arc<Stored>, Arc<Filling>),
    /// A stored response, refreshed by a 304.
    Refreshed(Arc<Stored>),
    /// Nothing to share: each follower asks upstream for itself.
    Alone,
}

/// The flights in the air, by URL.
#[derive(Default)]
pub struct Herd {
    flights: Mutex<HashMap<String, Flight>>,
}

/// What a follower joins: where the flight lands, and who waits for it.
#[derive(Clone)]
struct Flight {
    landed: watch::Receiver<Option<Landed>>,
    followers: Arc<Followers>,
}

/// How many follow a flight, and a signal when one leaves.
#[derive(Default)]
struct Followers {
    count: AtomicUsize,
    left: Notify,
}

/// Lead a new flight, or follow the one in the air.
pub enum Joined {
    Lead(Leading),
    Follow(Following),
}

impl Herd {
    pub fn join(self: &Arc<Self>, key: &str) -> Joined {
        let mut flights = self.flights.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(flight) = flights.get(key) {
            flight.followers.count.fetch_add(1, Ordering::Relaxed);
            return Joined::Follow(Following(flight.clone()));
        }
        let (landing, landed) = watch::channel(None);
        let flight = Flight {
            landed,
            followers: Arc::default(),
        };
        flights.insert(key.to_owned(), flight.clone());
        Joined::Lead(Leading {
            herd: self.clone(),
            key: key.to_owned(),
            landing,
            flight,
        })
    }
}

/// The leader's side of a flight. Dropped, it ends the flight: followers
/// still waiting are told [`Landed::Alone`] if nothing landed.
pub struct Leading {
    herd: Arc<Herd>,
    key: String,
    landing: watch::Sender<Option<Landed>>,
    flight: Flight,
}

impl Leading {
    /// Tell the followers (and any that join until this is dropped).
    pub fn land(&self, landed: Landed) {
        self.landing.send_replace(Some(landed));
    }

    /// Does anyone follow?
    pub fn followed(&self) -> bool {
        self.flight.followers.count.load(Ordering::Relaxed) > 0
    }

    /// Resolves once no follower is left.
    pub async fn unfollowed(&self) {
        loop {
            let left = self.flight.followers.left.notified();
            tokio::pin!(left);
            // Registered before the count is read, so a follower leaving
            // in between is not missed.
            left.as_mut().enable();
            if !self.followed() {
                return;
            }
            left.await;
        }
    }
}

impl Drop for Leading {
    fn drop(&mut self) {
        let mut flights = self
            .herd
            .flights
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if flights
            .get(&self.key)
            .is_some_and(|flight| flight.landed.same_channel(&self.flight.landed))
        {
            flights.remove(&self.key);
        }
        drop(flights);
        self.landing.send_if_modified(|landed| {
            let unlanded = landed.is_none();
            if unlanded {
                *landed = Some(Landed::Alone);
            }
            unlanded
        });
    }
}

/// A follower's side of a flight.
pub struct Following(Flight);

impl Following {
    /// How the flight landed.
    pub async fn landed(mut self) -> Landed {
        match self.0.landed.wait_for(Option::is_some).await {
            Ok(landed) => landed.clone().unwrap_or(Landed::Alone),
            Err(_) => Landed::Alone,
        }
    }
}

impl Drop for Following {
    fn drop(&mut self) {
        self.0.followers.count.fetch_sub(1, Ordering::Relaxed);
        self.0.followers.left.notify_waiters();
    }
}
