//! The buffers a request needs, lent by a shared store and given back when
//! the connection waits for its next request.
//!
//! A request needs a buffer for each side, one for the head being written,
//! and two lists of header offsets: about 18 KiB. A keep-alive connection
//! spends most of its life waiting for its next request, and 8,000 idle
//! clients holding 18 KiB each hold 150 MiB for nothing; nginx gives its
//! buffers back while a connection idles, and so does this engine. Freeing
//! them and allocating them again for every request cost 15 % more
//! instructions a request (an allocator hands 8 KiB blocks out more slowly
//! than small ones), so they go back to a store instead: under load a
//! connection takes the set another has just given back, one lock each
//! way. The store keeps at most [`SPARE`] sets; a burst of more leaves the
//! rest to the allocator.
//!
//! Left out on purpose: per-thread stores (a connection's task may move
//! between threads; one uncontended lock is cheap next to a request).

use std::sync::{Mutex, PoisonError};

use crate::head::HeaderAt;

/// What a buffer starts with; it grows (to `MAX_HEAD`) only for a head
/// that does not fit.
pub const FIRST_CAPACITY: usize = 8 * 1024;

/// Sets kept for the next request at most.
pub const SPARE: usize = 256;

/// One request's buffers.
pub struct Buffers {
    /// Bytes from the client.
    pub client: Vec<u8>,
    /// Bytes from the upstream.
    pub upstream: Vec<u8>,
    /// The head being written (either way).
    pub out: Vec<u8>,
    pub headers: Vec<HeaderAt>,
    pub upstream_headers: Vec<HeaderAt>,
}

impl Buffers {
    fn first_size() -> Self {
        Self {
            client: Vec::with_capacity(FIRST_CAPACITY),
            upstream: Vec::with_capacity(FIRST_CAPACITY),
            out: Vec::with_capacity(1024),
            headers: Vec::with_capacity(32),
            upstream_headers: Vec::with_capacity(32),
        }
    }

    /// Still the size a new set has (a set grown for a large head is not
    /// kept: the next request would hold the extra for nothing).
    fn as_new(&self) -> bool {
        self.client.capacity() == FIRST_CAPACITY && self.upstream.capacity() == FIRST_CAPACITY
    }
}

/// The store of spare sets.
#[derive(Default)]
pub struct Store {
    spare: Mutex<Vec<Buffers>>,
}

impl Store {
    /// A set for a request: a spare one, or a new one.
    pub fn take(&self) -> Buffers {
        let spare = self
            .spare
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop();
        spare.unwrap_or_else(Buffers::first_size)
    }

    /// A set back from a connection that now waits, emptied.
    pub fn give(&self, mut buffers: Buffers) {
        if !buffers.as_new() {
            return;
        }
        buffers.client.clear();
        buffers.upstream.clear();
        buffers.out.clear();
        buffers.headers.clear();
        buffers.upstream_headers.clear();
        let mut spare = self.spare.lock().unwrap_or_else(PoisonError::into_inner);
        if spare.len() < SPARE {
            spare.push(buffers);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_set_given_back_is_lent_again_emptied_and_a_grown_one_is_not_kept() {
        let store = Store::default();
        let mut set = store.take();
        set.client.extend_from_slice(b"GET / HTTP/1.1\r\n");
        let address = set.client.as_ptr();
        store.give(set);
        let again = store.take();
        assert_eq!(
            again.client.as_ptr(),
            address,
            "the same buffer, lent again"
        );
        assert!(again.client.is_empty());
        let mut grown = again;
        grown.client.reserve(FIRST_CAPACITY * 2);
        store.give(grown);
        assert!(store.spare.lock().unwrap().is_empty());
    }

    #[test]
    fn the_store_keeps_at_most_its_spare_sets() {
        let store = Store::default();
        let sets: Vec<Buffers> = (0..SPARE + 10).map(|_| store.take()).collect();
        for set in sets {
            store.give(set);
        }
        assert_eq!(store.spare.lock().unwrap().len(), SPARE);
    }
}
