//! One response body, received once, read by every client that waits for
//! it — while it arrives.
//!
//! When a thousand clients ask for one cold URL at once, one request goes
//! upstream ([`crate::herd`]) and all thousand read its body from here as
//! it comes in: no client waits for the whole body, and none of them owns
//! the upstream exchange, so the first client hanging up stops nothing.
//! The bytes are kept for the store while the body is small enough for it
//! (`keep_all`); once it is known to be too large they are dropped as soon
//! as every reader has them, and the filler waits while readers are more
//! than [`WINDOW`] behind — a large body streams through, never held whole.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use hyper::HeaderMap;
use hyper::body::{Body, Frame};

/// Bytes a filler may run ahead of its slowest reader once it no longer
/// keeps the whole body.
pub const WINDOW: usize = 256 * 1024;

/// How a body ended.
#[derive(Debug, Clone)]
enum End {
    /// Whole, with its trailers if it had any.
    Whole(Option<HeaderMap>),
    /// Broken off upstream: each reader's answer breaks off too.
    Broken(String),
}

/// The failure a reader reports when the body it reads broke upstream.
#[derive(Debug, thiserror::Error)]
#[error("the upstream body broke off: {0}")]
pub struct BrokenOff(String);

/// A body being filled.
#[derive(Debug, Default)]
pub struct Filling {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    chunks: VecDeque<Bytes>,
    /// The index, in the whole body, of `chunks[0]`.
    first: usize,
    /// Bytes in `chunks`.
    held: usize,
    /// Bytes received in all.
    received: usize,
    /// Every chunk is kept (for the store); false once the body is too large.
    dropping: bool,
    end: Option<End>,
    /// Each reader, by slot; None once it is gone.
    readers: Vec<Option<Reader>>,
    waiting_filler: Option<Waker>,
}

#[derive(Debug)]
struct Reader {
    /// The index of the next chunk it reads.
    next: usize,
    /// Set while it waits for a chunk.
    waiting: Option<Waker>,
    /// Cut off for holding the others back: its next read fails.
    cut: bool,
}

impl State {
    /// Drop what every reader has (only once the body is not kept).
    fn trim(&mut self) {
        if !self.dropping {
            return;
        }
        let slowest = self
            .readers
            .iter()
            .flatten()
            .filter(|r| !r.cut)
            .map(|r| r.next)
            .min();
        let slowest = slowest.unwrap_or(self.first + self.chunks.len());
        while self.first < slowest {
            let Some(chunk) = self.chunks.pop_front() else {
                break;
            };
            self.held -= chunk.len();
            self.first += 1;
        }
        if self.held <= WINDOW
            && let Some(filler) = self.waiting_filler.take()
        {
            filler.wake();
        }
    }

    fn wake_readers(&mut self) {
        for waker in self
            .readers
            .iter_mut()
            .flatten()
            .filter_map(|r| r.waiting.take())
        {
            waker.wake();
        }
    }

    /// A reader is done: it no longer holds bytes back.
    fn leave(&mut self, slot: usize) {
        self.readers[slot] = None;
        self.trim();
    }
}

impl Filling {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A reader from the first byte — while the body is kept whole; None
    /// once bytes may have been dropped.
    pub fn reader(self: &Arc<Self>) -> Option<FillingBody> {
        let mut state = self.lock();
        if state.dropping {
            return None;
        }
        let reader = Some(Reader {
            next: 0,
            waiting: None,
            cut: false,
        });
        // The slot of a reader that left, if there is one: clients that
        // come and go while a body is kept do not grow the list.
        let slot = match state.readers.iter().position(Option::is_none) {
            Some(free) => {
                state.readers[free] = reader;
                free
            }
            None => {
                state.readers.push(reader);
                state.readers.len() - 1
            }
        };
        Some(FillingBody {
            filling: self.clone(),
            slot: Some(slot),
        })
    }

    /// Add a chunk from upstream.
    pub fn push(&self, chunk: Bytes) {
        let mut state = self.lock();
        state.received += chunk.len();
        state.held += chunk.len();
        state.chunks.push_back(chunk);
        state.wake_readers();
    }

    /// Bytes received so far.
    pub fn received(&self) -> usize {
        self.lock().received
    }

    /// The body is too large to keep: from now on bytes go once every
    /// reader has them, and no new reader may join.
    pub fn stop_keeping(&self) {
        let mut state = self.lock();
        state.dropping = true;
        state.trim();
    }

    /// Is anyone still reading?
    pub fn has_readers(&self) -> bool {
        self.lock().readers.iter().flatten().any(|r| !r.cut)
    }

    /// Cut off the readers furthest behind: their next read fails, and
    /// the bytes they held back go.
    pub fn cut_off_slowest(&self) {
        let mut state = self.lock();
        let readers = state.readers.iter_mut().flatten().filter(|r| !r.cut);
        let Some(slowest) = readers.map(|r| r.next).min() else {
            return;
        };
        for reader in state.readers.iter_mut().flatten() {
            if reader.next == slowest {
                reader.cut = true;
                if let Some(waker) = reader.waiting.take() {
                    waker.wake();
                }
            }
        }
        state.trim();
    }

    /// Ready when the filler may push more: always while the body is kept,
    /// else once the readers are within [`WINDOW`].
    pub fn poll_room(&self, cx: &mut Context<'_>) -> Poll<()> {
        let mut state = self.lock();
        let reading = state.readers.iter().flatten().any(|r| !r.cut);
        if !state.dropping || state.held <= WINDOW || !reading {
            return Poll::Ready(());
        }
        state.waiting_filler = Some(cx.waker().clone());
        Poll::Pending
    }

    /// The body ended whole.
    pub fn finish(&self, trailers: Option<HeaderMap>) {
        let mut state = self.lock();
        state.end = Some(End::Whole(trailers));
        state.wake_readers();
    }

    /// The body broke off upstream.
    pub fn break_off(&self, reason: String) {
        let mut state = self.lock();
        state.end = Some(End::Broken(reason));
        state.wake_readers();
    }

    /// The whole body — what was kept, then `last` — unless bytes were
    /// dropped. One chunk is kept as it is (copying it into an allocation
    /// of its own measured worse: more churn, a larger resident set).
    pub fn kept_with(&self, last: Option<&Bytes>) -> Option<Bytes> {
        let state = self.lock();
        if state.dropping {
            return None;
        }
        let mut chunks = state.chunks.iter().chain(last);
        let count = state.chunks.len() + usize::from(last.is_some());
        match (count, chunks.next()) {
            (_, None) => Some(Bytes::new()),
            (1, Some(only)) => Some(only.clone()),
            (_, Some(first)) => {
                let mut whole = Vec::with_capacity(state.held + last.map_or(0, Bytes::len));
                whole.extend_from_slice(first);
                chunks.for_each(|chunk| whole.extend_from_slice(chunk));
                Some(Bytes::from(whole))
            }
        }
    }
}

/// One client's view of a [`Filling`].
#[derive(Debug)]
pub struct FillingBody {
    filling: Arc<Filling>,
    /// Its place among the readers; None once it has left (another reader
    /// may have the place by then).
    slot: Option<usize>,
}

impl Body for FillingBody {
    type Data = Bytes;
    type Error = BrokenOff;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BrokenOff>>> {
        let this = self.get_mut();
        let Some(slot) = this.slot else {
            return Poll::Ready(None);
        };
        let mut state = this.filling.lock();
        let (next, cut) = state.readers[slot]
            .as_ref()
            .map(|r| (r.next, r.cut))
            .expect("a reader's place is its own until it leaves");
        if cut {
            state.leave(slot);
            this.slot = None;
            return Poll::Ready(Some(Err(BrokenOff(
                "this client fell too far behind the others reading the body".into(),
            ))));
        }
        if let Some(chunk) = state.chunks.get(next - state.first).cloned() {
            if let Some(reader) = state.readers[slot].as_mut() {
                reader.next += 1;
            }
            state.trim();
            return Poll::Ready(Some(Ok(Frame::data(chunk))));
        }
        match state.end.clone() {
            Some(End::Whole(trailers)) => {
                // Gone from now on: the next poll ends the body.
                state.leave(slot);
                this.slot = None;
                Poll::Ready(trailers.map(|trailers| Ok(Frame::trailers(trailers))))
            }
            Some(End::Broken(reason)) => {
                state.leave(slot);
                this.slot = None;
                Poll::Ready(Some(Err(BrokenOff(reason))))
            }
            None => {
                if let Some(reader) = state.readers[slot].as_mut() {
                    reader.waiting = Some(cx.waker().clone());
                }
                Poll::Pending
            }
        }
    }
}

impl Drop for FillingBody {
    fn drop(&mut self) {
        if let Some(slot) = self.slot.take() {
            self.filling.lock().leave(slot);
        }
    }
}

#[cfg(test)]
mod tests {
    use http_body_util::BodyExt;

    use super::*;

    #[tokio::test]
    async fn readers_that_come_and_go_reuse_their_places() {
        let filling = Arc::new(Filling::default());
        filling.push(Bytes::from_static(b"kept"));
        for _ in 0..1000 {
            drop(filling.reader().unwrap());
        }
        assert_eq!(filling.lock().readers.len(), 1);

        // One that has read to the end leaves its place to the next, and
        // reads nothing of the next one's.
        filling.finish(None);
        let mut first = filling.reader().unwrap();
        let whole = first.frame().await.unwrap().unwrap().into_data().unwrap();
        assert_eq!(&whole[..], b"kept");
        assert!(first.frame().await.is_none());
        let second = filling.reader().unwrap();
        assert!(first.frame().await.is_none());
        let read = second.collect().await.unwrap().to_bytes();
        assert_eq!(&read[..], b"kept");
        drop(first);
        assert!(filling.lock().readers.iter().all(Option::is_none));
    }
}
