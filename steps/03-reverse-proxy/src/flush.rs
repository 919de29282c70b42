//! `FlushInterval`: when response bytes are written to the client.
//!
//! Go buffers a response body and flushes it every `FlushInterval` (or at
//! once for streaming content). hyper works the other way round: every body
//! frame the proxy yields is written as soon as hyper gets it, so a proxied
//! body already streams — the first chunk of a slow stream reaches the
//! client the moment the backend sends it. That is the default here.
//!
//! An interval is still useful for the opposite case: a backend that
//! dribbles out thousands of tiny frames costs one write each. With an
//! interval, [`Coalesce`] gathers frames that arrive within it (up to
//! [`MAX_COALESCED`] bytes) and yields them as one.

use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use hyper::body::{Body, Frame, SizeHint};
use tokio::time::{Instant, Sleep};

/// Beyond this many buffered bytes the frame goes out without waiting.
pub const MAX_COALESCED: usize = 64 * 1024;

/// A body whose data frames are merged over `interval`.
pub struct Coalesce<B> {
    inner: B,
    interval: Duration,
    buffer: BytesMut,
    deadline: Pin<Box<Sleep>>,
    /// Trailers (or the end) seen while data was still buffered.
    held: Option<Option<Frame<Bytes>>>,
    done: bool,
}

impl<B> Coalesce<B> {
    pub fn new(inner: B, interval: Duration) -> Self {
        Self {
            inner,
            interval,
            buffer: BytesMut::new(),
            deadline: Box::pin(tokio::time::sleep(interval)),
            held: None,
            done: false,
        }
    }

    fn take_buffer(&mut self) -> Frame<Bytes> {
        Frame::data(self.buffer.split().freeze())
    }
}

impl<B> Body for Coalesce<B>
where
    B: Body<Data = Bytes> + Unpin,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let this = self.get_mut();
        if let Some(held) = this.held.take() {
            this.done = held.is_none();
            return Poll::Ready(held.map(Ok));
        }
        if this.done {
            return Poll::Ready(None);
        }
        loop {
            match Pin::new(&mut this.inner).poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                    Ok(data) => {
                        if this.buffer.is_empty() {
                            let deadline = Instant::now() + this.interval;
                            this.deadline.as_mut().reset(deadline);
                        }
                        this.buffer.extend_from_slice(&data);
                        if this.buffer.len() >= MAX_COALESCED {
                            return Poll::Ready(Some(Ok(this.take_buffer())));
                        }
                    }
                    Err(trailers) => {
                        if this.buffer.is_empty() {
                            return Poll::Ready(Some(Ok(trailers)));
                        }
                        this.held = Some(Some(trailers));
                        return Poll::Ready(Some(Ok(this.take_buffer())));
                    }
                },
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(e))),
                Poll::Ready(None) => {
                    if this.buffer.is_empty() {
                        this.done = true;
                        return Poll::Ready(None);
                    }
                    this.held = Some(None);
                    return Poll::Ready(Some(Ok(this.take_buffer())));
                }
                Poll::Pending => {
                    if this.buffer.is_empty() {
                        return Poll::Pending;
                    }
                    ready!(this.deadline.as_mut().poll(cx));
                    return Poll::Ready(Some(Ok(this.take_buffer())));
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.done || (self.held.is_none() && self.buffer.is_empty() && self.inner.is_end_stream())
    }

    fn size_hint(&self) -> SizeHint {
        // Coalescing changes frames, not the total, but the buffered part
        // makes the inner hint inexact; an exact hint keeps Content-Length.
        let mut hint = self.inner.size_hint();
        let buffered = self.buffer.len() as u64;
        hint.set_lower(hint.lower() + buffered);
        if let Some(upper) = hint.upper() {
            hint.set_upper(upper + buffered);
        }
        hint
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::{BodyExt, StreamBody};
    use std::convert::Infallible;

    #[tokio::test(start_paused = true)]
    async fn frames_within_the_interval_become_one() {
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, Infallible>>(8);
        let body = StreamBody::new(tokio_stream_from(rx));
        let mut body = Coalesce::new(body, Duration::from_millis(100));
        for part in ["a", "b", "c"] {
            tx.send(Ok(Frame::data(Bytes::from(part)))).await.unwrap();
        }
        let first = body.frame().await.unwrap().unwrap().into_data().unwrap();
        assert_eq!(first, "abc");
        tx.send(Ok(Frame::data(Bytes::from("d")))).await.unwrap();
        drop(tx);
        let second = body.frame().await.unwrap().unwrap().into_data().unwrap();
        assert_eq!(second, "d");
        assert!(body.frame().await.is_none());
    }

    fn tokio_stream_from<T>(
        mut rx: tokio::sync::mpsc::Receiver<T>,
    ) -> impl futures_util::Stream<Item = T> {
        futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx))
    }
}
