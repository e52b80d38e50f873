//! An in-memory byte pipe: [`Channel`], with its [`Sink`] and [`Stream`] ends.
//!
//! A channel carries bytes one way, from one [`Sink`] to one [`Stream`]. It
//! depends on no executor (it only stores the waker of whoever polls it), so
//! it works in any runtime, or with `futures::executor::block_on`. The
//! deterministic runtime's network builds every connection from two of these
//! pipes, one per direction, so the byte-stream semantics have exactly one
//! implementation.
//!
//! # Invariants
//! * Bytes leave in the order they arrived; `recv(buf)` completes only once
//!   `buf.len()` bytes are buffered, whatever the split of the sends, and
//!   copies them out in the same critical section in which it finds them.
//!   A `recv` future dropped before it completed has therefore consumed
//!   nothing: `recv` is cancel-safe.
//! * A pending `recv` records how many bytes it needs; a `send` wakes it only
//!   when the buffer holds that many (or never, if it does not), and dropping
//!   the [`Sink`] always wakes it.
//! * After the [`Sink`] is dropped, the bytes already sent are still
//!   delivered; a `recv` that needs more than remain fails with
//!   [`Error::RecvFailed`]. After the [`Stream`] is dropped, buffered bytes
//!   are freed and every non-empty `send` fails with [`Error::SendFailed`].
//! * Zero-length sends and receives complete at once, successfully.
//! * A send copies the payload into the buffer once and allocates only when
//!   the buffer has to grow; a receive allocates nothing.

use crate::Error;
use futures::future::poll_fn;
use parking_lot::Mutex;
use std::{
    sync::Arc,
    task::{Context, Poll, Waker},
};

/// Received bytes at the front of the buffer are reclaimed (by moving the
/// rest down) once there are at least this many and they are at least half
/// of the buffer: a reader that empties the buffer never moves a byte, and
/// otherwise no more bytes are moved than are reclaimed (amortized O(1) per
/// byte).
const RECLAIM: usize = 4096;

/// The state one [`Sink`] and one [`Stream`] share: the bytes sent but not
/// yet received, and who is waiting for them.
pub struct Channel {
    /// Bytes sent, oldest first; those before `read` have been received.
    buffer: Vec<u8>,
    /// How many bytes at the front of `buffer` have been received.
    read: usize,
    /// Waker of the pending `recv`, if any.
    reader: Option<Waker>,
    /// Number of bytes the pending `recv` needs.
    wanted: usize,
    /// The [`Sink`] has been dropped.
    sink_closed: bool,
    /// The [`Stream`] has been dropped.
    stream_closed: bool,
}

impl Channel {
    /// Returns an async-safe Sink/Stream pair that share an underlying buffer of bytes.
    pub fn init() -> (Sink, Stream) {
        let channel = Arc::new(Mutex::new(Channel {
            buffer: Vec::new(),
            read: 0,
            reader: None,
            wanted: 0,
            sink_closed: false,
            stream_closed: false,
        }));
        (
            Sink {
                channel: channel.clone(),
            },
            Stream { channel },
        )
    }
}

/// A mock sink that implements the Sink trait.
pub struct Sink {
    channel: Arc<Mutex<Channel>>,
}

impl Sink {
    /// Appends `msg` to the buffer and wakes the reader if it now has enough.
    pub(crate) fn push(&self, msg: &[u8]) -> Result<(), Error> {
        if msg.is_empty() {
            return Ok(());
        }
        let reader = {
            let mut channel = self.channel.lock();
            if channel.stream_closed {
                return Err(Error::SendFailed);
            }
            channel.buffer.extend_from_slice(msg);
            if channel.buffer.len() - channel.read >= channel.wanted {
                channel.reader.take()
            } else {
                None
            }
        };
        if let Some(reader) = reader {
            reader.wake();
        }
        Ok(())
    }
}

impl crate::Sink for Sink {
    async fn send(&mut self, msg: &[u8]) -> Result<(), Error> {
        self.push(msg)
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        let reader = {
            let mut channel = self.channel.lock();
            channel.sink_closed = true;
            channel.reader.take()
        };
        if let Some(reader) = reader {
            reader.wake();
        }
    }
}

/// A mock stream that implements the Stream trait.
pub struct Stream {
    channel: Arc<Mutex<Channel>>,
}

impl Stream {
    /// Bytes sent and not yet received.
    pub(crate) fn buffered(&self) -> usize {
        let channel = self.channel.lock();
        channel.buffer.len() - channel.read
    }

    /// Fills `buf` if enough bytes are buffered; otherwise registers the
    /// waker (or fails, if no more bytes can come).
    pub(crate) fn poll_recv(
        &self,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<Result<(), Error>> {
        let mut channel = self.channel.lock();
        let channel = &mut *channel;
        let wanted = buf.len();
        let start = channel.read;
        if channel.buffer.len() - start >= wanted {
            buf.copy_from_slice(&channel.buffer[start..start + wanted]);
            channel.read += wanted;
            if channel.read == channel.buffer.len() {
                channel.buffer.clear();
                channel.read = 0;
            } else if channel.read >= RECLAIM && 2 * channel.read >= channel.buffer.len() {
                channel.buffer.drain(..channel.read);
                channel.read = 0;
            }
            return Poll::Ready(Ok(()));
        }
        if channel.sink_closed {
            return Poll::Ready(Err(Error::RecvFailed));
        }
        channel.wanted = wanted;
        match &mut channel.reader {
            Some(reader) => reader.clone_from(cx.waker()),
            reader @ None => *reader = Some(cx.waker().clone()),
        }
        Poll::Pending
    }
}

impl crate::Stream for Stream {
    async fn recv(&mut self, buf: &mut [u8]) -> Result<(), Error> {
        poll_fn(|cx| self.poll_recv(cx, buf)).await
    }
}

impl Drop for Stream {
    fn drop(&mut self) {
        let (buffer, reader) = {
            let mut channel = self.channel.lock();
            channel.stream_closed = true;
            channel.read = 0;
            (std::mem::take(&mut channel.buffer), channel.reader.take())
        };
        drop((buffer, reader));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Sink as _, Stream as _};
    use futures::{executor::block_on, future::FutureExt, pin_mut, task::noop_waker_ref};
    use std::{
        future::Future,
        sync::atomic::{AtomicUsize, Ordering},
        task::Wake,
    };

    /// Counts its wakes.
    #[derive(Default)]
    struct Counter(AtomicUsize);

    impl Wake for Counter {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn recv_joins_and_splits_sends() {
        let (mut sink, mut stream) = Channel::init();
        block_on(async {
            sink.send(b"hel").await.unwrap();
            sink.send(b"lo wor").await.unwrap();
            sink.send(b"ld").await.unwrap();
            let mut first = [0u8; 5];
            stream.recv(&mut first).await.unwrap();
            assert_eq!(&first, b"hello");
            let mut second = [0u8; 6];
            stream.recv(&mut second).await.unwrap();
            assert_eq!(&second, b" world");
        });
    }

    #[test]
    fn recv_while_the_buffer_is_reclaimed() {
        // Interleaved sends and partial receives make the reader lag, so
        // consumed bytes are reclaimed under it; nothing may be lost.
        let (mut sink, mut stream) = Channel::init();
        block_on(async {
            let mut expected = Vec::new();
            let mut next = 0u8;
            for round in 0..2000usize {
                let chunk: Vec<u8> = (0..(round % 37 + 1))
                    .map(|_| {
                        next = next.wrapping_add(1);
                        next
                    })
                    .collect();
                sink.send(&chunk).await.unwrap();
                expected.extend_from_slice(&chunk);
                if round % 3 == 2 {
                    let mut buf = vec![0u8; expected.len() / 2];
                    stream.recv(&mut buf).await.unwrap();
                    assert_eq!(buf, expected.drain(..buf.len()).collect::<Vec<_>>());
                }
            }
        });
    }

    #[test]
    fn reader_is_woken_only_when_enough_bytes_arrived() {
        let (mut sink, mut stream) = Channel::init();
        let counter = Arc::new(Counter::default());
        let waker = Waker::from(counter.clone());
        let mut cx = Context::from_waker(&waker);
        let mut buf = [0u8; 4];
        {
            let recv = stream.recv(&mut buf);
            pin_mut!(recv);
            assert!(recv.as_mut().poll(&mut cx).is_pending());
            block_on(sink.send(b"ab")).unwrap();
            assert_eq!(counter.0.load(Ordering::SeqCst), 0);
            block_on(sink.send(b"cd")).unwrap();
            assert_eq!(counter.0.load(Ordering::SeqCst), 1);
            assert_eq!(recv.as_mut().poll(&mut cx), Poll::Ready(Ok(())));
        }
        assert_eq!(&buf, b"abcd");
    }

    #[test]
    fn dropped_recv_loses_nothing() {
        let (mut sink, mut stream) = Channel::init();
        let mut cx = Context::from_waker(noop_waker_ref());
        block_on(sink.send(b"abc")).unwrap();
        {
            let mut buf = [0u8; 5];
            let recv = stream.recv(&mut buf);
            pin_mut!(recv);
            assert!(recv.as_mut().poll(&mut cx).is_pending());
        }
        block_on(sink.send(b"de")).unwrap();
        let mut buf = [0u8; 5];
        block_on(stream.recv(&mut buf)).unwrap();
        assert_eq!(&buf, b"abcde");
    }

    #[test]
    fn dropped_sink_delivers_rest_then_fails() {
        let (mut sink, mut stream) = Channel::init();
        block_on(sink.send(b"abc")).unwrap();
        drop(sink);
        let mut two = [0u8; 2];
        block_on(stream.recv(&mut two)).unwrap();
        assert_eq!(&two, b"ab");
        assert_eq!(block_on(stream.recv(&mut two)), Err(Error::RecvFailed));
        let mut one = [0u8; 1];
        block_on(stream.recv(&mut one)).unwrap();
        assert_eq!(&one, b"c");
        assert_eq!(block_on(stream.recv(&mut one)), Err(Error::RecvFailed));
        assert_eq!(block_on(stream.recv(&mut [])), Ok(()));
    }

    #[test]
    fn dropping_sink_wakes_pending_recv() {
        let (sink, mut stream) = Channel::init();
        let counter = Arc::new(Counter::default());
        let waker = Waker::from(counter.clone());
        let mut cx = Context::from_waker(&waker);
        let mut buf = [0u8; 1];
        let recv = stream.recv(&mut buf);
        pin_mut!(recv);
        assert!(recv.as_mut().poll(&mut cx).is_pending());
        drop(sink);
        assert_eq!(counter.0.load(Ordering::SeqCst), 1);
        assert_eq!(recv.poll(&mut cx), Poll::Ready(Err(Error::RecvFailed)));
    }

    #[test]
    fn send_to_dropped_stream_fails() {
        let (mut sink, stream) = Channel::init();
        block_on(sink.send(b"buffered")).unwrap();
        drop(stream);
        assert_eq!(block_on(sink.send(b"x")), Err(Error::SendFailed));
        assert_eq!(block_on(sink.send(b"")), Ok(()));
    }

    #[test]
    fn zero_length_operations_complete_at_once() {
        let (mut sink, mut stream) = Channel::init();
        assert_eq!(sink.send(b"").now_or_never(), Some(Ok(())));
        assert_eq!(stream.recv(&mut []).now_or_never(), Some(Ok(())));
    }

    #[test]
    fn works_across_threads() {
        let (mut sink, mut stream) = Channel::init();
        let reader = std::thread::spawn(move || {
            let mut buf = vec![0u8; 1000];
            block_on(stream.recv(&mut buf)).unwrap();
            buf
        });
        for chunk in (0..1000u32).map(|i| i as u8).collect::<Vec<_>>().chunks(7) {
            block_on(sink.send(chunk)).unwrap();
        }
        let expected: Vec<u8> = (0..1000u32).map(|i| i as u8).collect();
        assert_eq!(reader.join().unwrap(), expected);
    }
}
