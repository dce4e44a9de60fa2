//! One socket's outbound queue, bounded in bytes, and the one place that decides how the socket
//! ends: whoever stops it first (the client, a limit, `DELETE @connections`, a full queue)
//! writes its close code into `stop`, and both the reader and the writer of the socket obey it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, watch};

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

pub(crate) struct Outbox {
    queue: mpsc::UnboundedSender<Outbound>,
    budget: Arc<Semaphore>,
    closing: AtomicBool,
    stop: watch::Sender<Option<Close>>,
}

impl Outbox {
    pub fn new(max_bytes: usize) -> (Self, mpsc::UnboundedReceiver<Outbound>) {
        let (queue, receiver) = mpsc::unbounded_channel();
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
        self.queue.send(frame).map_err(|_| Refused::Closed)
    }

    /// Closes the socket once the frames already queued are written (`DELETE @connections`).
    pub fn close_after_queued(&self, close: Close) -> Result<(), Refused> {
        if self.closing.swap(true, Ordering::AcqRel) {
            return Err(Refused::Closed);
        }
        self.queue
            .send(Outbound::Close(close))
            .map_err(|_| Refused::Closed)
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
        assert!(matches!(queue.try_recv(), Ok(Outbound::Text(t, _)) if t == "12345678"));
    }

    #[test]
    fn written_frames_give_their_bytes_back_to_the_budget() {
        let (outbox, mut queue) = Outbox::new(10);
        outbox.push(b"12345678").unwrap();

        drop(queue.try_recv());

        assert_eq!(outbox.push(b"1234567890"), Ok(()));
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
