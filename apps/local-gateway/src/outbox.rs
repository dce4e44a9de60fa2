//! One socket's outbound queue, bounded in bytes, and the one place that decides how the socket
//! ends: whoever stops it first (the client, a limit, `DELETE @connections`, a full queue)
//! writes its close code into `stop`, and both the reader and the writer of the socket obey it.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, watch};

/// A close code and its reason.
pub(crate) type Close = (u16, &'static str);

/// The close API Gateway has no code for: a client that stops reading while messages pile up.
pub(crate) const NOT_READING: Close = (1008, "Client is not reading its messages");

/// What the writer sends. A frame holds its share of the byte budget until it is written.
#[derive(Debug)]
pub(crate) enum Outbound {
    Text(String, OwnedSemaphorePermit),
    Binary(Vec<u8>, OwnedSemaphorePermit),
    /// Sent after every frame queued before it, as `DELETE @connections` asks.
    Close(Close),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refused {
    /// The socket is closing or closed.
    Closed,
    /// The frame does not fit in the budget: the socket is being closed with [`NOT_READING`].
    Full,
}

/// The frames waiting for the writer: a deque behind a lock, and a wake-up. It allocates nothing
/// until the first frame and grows only to the largest backlog; tokio's unbounded channel, used
/// before, allocated about 4 KiB per socket up front (a block of 32 slots and padded counters),
/// 40 MB for 10 000 idle sockets (what 10 000 sockets cost now: BENCHMARKS.md, "The local
/// gateway").
struct FrameQueue {
    /// `None` once the writer is gone: nothing would ever write a frame queued then.
    frames: Mutex<Option<VecDeque<Outbound>>>,
    ready: Notify,
}

impl FrameQueue {
    fn frames(&self) -> std::sync::MutexGuard<'_, Option<VecDeque<Outbound>>> {
        self.frames.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn send(&self, frame: Outbound) -> Result<(), Refused> {
        self.frames()
            .as_mut()
            .ok_or(Refused::Closed)?
            .push_back(frame);
        // Stores a wake-up when the writer is not waiting yet, so none is lost.
        self.ready.notify_one();
        Ok(())
    }
}

/// The writer's end of a socket's queue. Dropping it refuses every later frame and gives the
/// queued ones' bytes back.
pub(crate) struct Frames(Arc<FrameQueue>);

impl Frames {
    /// The next frame, in the order they were queued.
    pub async fn next(&mut self) -> Outbound {
        loop {
            if let Some(frame) = self.try_next() {
                return frame;
            }
            self.0.ready.notified().await;
        }
    }

    pub fn try_next(&mut self) -> Option<Outbound> {
        self.0.frames().as_mut()?.pop_front()
    }
}

impl Drop for Frames {
    fn drop(&mut self) {
        self.0.frames().take();
    }
}

pub(crate) struct Outbox {
    queue: Arc<FrameQueue>,
    budget: Arc<Semaphore>,
    closing: AtomicBool,
    stop: watch::Sender<Option<Close>>,
}

impl Outbox {
    pub fn new(max_bytes: usize) -> (Self, Frames) {
        let queue = Arc::new(FrameQueue {
            frames: Mutex::new(Some(VecDeque::new())),
            ready: Notify::new(),
        });
        let receiver = Frames(queue.clone());
        let outbox = Self {
            queue,
            budget: Arc::new(Semaphore::new(max_bytes.min(Semaphore::MAX_PERMITS))),
            closing: AtomicBool::new(false),
            stop: watch::Sender::new(None),
        };
        (outbox, receiver)
    }

    /// Queues `data` as one frame: text when it is UTF-8, binary otherwise, as API Gateway does.
    pub fn push(&self, data: &[u8]) -> Result<(), Refused> {
        if self.closing.load(Ordering::Acquire) {
            return Err(Refused::Closed);
        }
        let size = u32::try_from(data.len()).map_err(|_| Refused::Full);
        let Ok(permit) = size.and_then(|n| {
            self.budget
                .clone()
                .try_acquire_many_owned(n)
                .map_err(|_| Refused::Full)
        }) else {
            self.closing.store(true, Ordering::Release);
            self.stop_with(NOT_READING);
            return Err(Refused::Full);
        };
        let frame = match String::from_utf8(data.to_vec()) {
            Ok(text) => Outbound::Text(text, permit),
            Err(e) => Outbound::Binary(e.into_bytes(), permit),
        };
        self.queue.send(frame)
    }

    /// Closes the socket once the frames already queued are written (`DELETE @connections`).
    pub fn close_after_queued(&self, close: Close) -> Result<(), Refused> {
        if self.closing.swap(true, Ordering::AcqRel) {
            return Err(Refused::Closed);
        }
        self.queue.send(Outbound::Close(close))
    }

    /// Closes the socket now, ahead of anything queued. The first close decided wins.
    pub fn stop_with(&self, close: Close) {
        self.closing.store(true, Ordering::Release);
        self.stop.send_if_modified(|stop| {
            let first = stop.is_none();
            if first {
                *stop = Some(close);
            }
            first
        });
    }

    /// Whether the socket is closing: a close was decided, or the queue was full. From then on it
    /// is gone to `@connections` (POST and GET answer 410), as on AWS once a disconnect starts.
    pub fn is_closing(&self) -> bool {
        self.closing.load(Ordering::Acquire)
    }

    /// Resolves with the close once one is decided.
    pub fn stopped(&self) -> watch::Receiver<Option<Close>> {
        self.stop.subscribe()
    }
}

/// Waits until the socket is told to stop, and says with what.
pub(crate) async fn wait_for_stop(stop: &mut watch::Receiver<Option<Close>>) -> Close {
    let decided = stop.wait_for(Option::is_some).await.map(|close| *close);
    match decided {
        Ok(close) => close.unwrap_or(NOT_READING),
        // The outbox is gone: nobody can ask for a close any more.
        Err(_) => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_frame_over_the_byte_budget_is_refused_and_stops_the_socket_as_not_reading() {
        let (outbox, mut queue) = Outbox::new(10);

        assert_eq!(outbox.push(b"12345678"), Ok(()));
        assert_eq!(outbox.push(b"123"), Err(Refused::Full));

        assert_eq!(*outbox.stopped().borrow(), Some(NOT_READING));
        assert_eq!(outbox.push(b"1"), Err(Refused::Closed));
        assert!(matches!(queue.try_next(), Some(Outbound::Text(t, _)) if t == "12345678"));
    }

    #[test]
    fn written_frames_give_their_bytes_back_to_the_budget() {
        let (outbox, mut queue) = Outbox::new(10);
        outbox.push(b"12345678").unwrap();

        drop(queue.try_next());

        assert_eq!(outbox.push(b"1234567890"), Ok(()));
    }

    #[test]
    fn once_the_writer_is_gone_a_frame_is_refused_and_the_queued_ones_give_their_bytes_back() {
        let (outbox, queue) = Outbox::new(10);
        outbox.push(b"12345678").unwrap();

        drop(queue);

        assert_eq!(outbox.push(b"1"), Err(Refused::Closed));
        assert_eq!(outbox.budget.available_permits(), 10);
    }

    #[tokio::test]
    async fn the_writer_gets_frames_in_order_including_one_queued_before_it_waited() {
        let (outbox, mut queue) = Outbox::new(100);
        outbox.push(b"first").unwrap();
        outbox.push(b"second").unwrap();
        outbox.close_after_queued((1000, "done")).unwrap();

        assert!(matches!(queue.next().await, Outbound::Text(t, _) if t == "first"));
        assert!(matches!(queue.next().await, Outbound::Text(t, _) if t == "second"));
        assert!(matches!(
            queue.next().await,
            Outbound::Close((1000, "done"))
        ));
    }

    #[test]
    fn the_first_close_decided_wins() {
        let (outbox, _queue) = Outbox::new(10);

        outbox.stop_with((1001, "Going away"));
        outbox.stop_with(NOT_READING);

        assert_eq!(*outbox.stopped().borrow(), Some((1001, "Going away")));
        assert_eq!(
            outbox.close_after_queued((1000, "Connection deleted")),
            Err(Refused::Closed)
        );
    }
}
