//! The HTTP notifier's calls to this gateway's own `@connections` API, at most so many at once.
//!
//! In AWS every Lambda instance has its own connection pool and runs one fan-out at a time
//! (`FANOUT_CONCURRENCY` posts in flight). Here every route's invocations share one process and
//! one pool: 256 invocations of 64 posts each could open 16 000 loopback connections. hyper's
//! pool opens a new connection whenever none is idle, so a burst grew the pool to thousands of
//! connections, each costing a handshake, two buffers and two tasks, which slowed every post,
//! which grew the burst: ping p99 swung from milliseconds to seconds under `bench gateway-load`
//! (BENCHMARKS.md, "The local gateway", has the figures with the bound). With this bound the pool
//! never holds more connections than the bound, and a post beyond it waits for one of them, as a
//! post does behind a busy Lambda.

use async_trait::async_trait;
use domain::{ClientNotifier, ConnectionId, NotifyError};
use tokio::sync::Semaphore;

/// Enough for the gateway's own loopback posts (each takes tens of microseconds) to keep every
/// core busy, few enough that their connections stay a fixed, small cost.
pub const DEFAULT_MAX_POSTS_IN_FLIGHT: usize = 64;

pub struct BoundedNotifier<N> {
    inner: N,
    in_flight: Semaphore,
    max_in_flight: usize,
}

impl<N> BoundedNotifier<N> {
    pub fn new(inner: N, max_in_flight: usize) -> Self {
        Self {
            inner,
            in_flight: Semaphore::new(max_in_flight.max(1)),
            max_in_flight: max_in_flight.max(1),
        }
    }
}

#[async_trait]
impl<N: ClientNotifier> ClientNotifier for BoundedNotifier<N> {
    async fn send(&self, to: &ConnectionId, frame: &[u8]) -> Result<(), NotifyError> {
        // The semaphore is never closed, so a permit always comes.
        let _permit = self.in_flight.acquire().await;
        self.inner.send(to, frame).await
    }

    async fn disconnect(&self, id: &ConnectionId) -> Result<(), NotifyError> {
        let _permit = self.in_flight.acquire().await;
        self.inner.disconnect(id).await
    }

    /// No more connections than posts may be in flight.
    fn prepare(&self, posts: usize) -> usize {
        self.inner.prepare(posts.min(self.max_in_flight))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use futures::future::join_all;
    use tokio::sync::Notify;

    use super::*;

    /// Holds every call until released, and records the most calls it ever held at once.
    #[derive(Default)]
    struct GatedNotifier {
        now: AtomicUsize,
        most: AtomicUsize,
        release: Notify,
    }

    impl GatedNotifier {
        async fn hold(&self) -> Result<(), NotifyError> {
            let now = self.now.fetch_add(1, Ordering::SeqCst) + 1;
            self.most.fetch_max(now, Ordering::SeqCst);
            self.release.notified().await;
            self.now.fetch_sub(1, Ordering::SeqCst);
            Ok(())
        }
    }

    #[async_trait]
    impl ClientNotifier for GatedNotifier {
        async fn send(&self, _to: &ConnectionId, _frame: &[u8]) -> Result<(), NotifyError> {
            self.hold().await
        }

        async fn disconnect(&self, _id: &ConnectionId) -> Result<(), NotifyError> {
            self.hold().await
        }

        fn prepare(&self, posts: usize) -> usize {
            self.most.fetch_max(posts, Ordering::SeqCst);
            posts
        }
    }

    #[test]
    fn connections_are_prepared_for_no_more_posts_than_the_bound() {
        let gated = Arc::new(GatedNotifier::default());
        let bounded = BoundedNotifier::new(gated.clone(), 4);

        assert_eq!(bounded.prepare(3), 3);
        assert_eq!(bounded.prepare(256), 4);
        assert_eq!(gated.most.load(Ordering::SeqCst), 4);
    }

    #[tokio::test]
    async fn a_burst_of_posts_and_closes_never_has_more_than_the_bound_in_flight() {
        let gated = Arc::new(GatedNotifier::default());
        let bounded = Arc::new(BoundedNotifier::new(gated.clone(), 4));
        let id = ConnectionId::parse("abc=").unwrap();

        let calls = (0..40).map(|i| {
            let (bounded, id) = (bounded.clone(), id.clone());
            tokio::spawn(async move {
                if i % 2 == 0 {
                    bounded.send(&id, b"hi").await
                } else {
                    bounded.disconnect(&id).await
                }
            })
        });
        let calls = tokio::spawn(join_all(calls));
        // Let every call start or queue, then release the held ones, round after round (10 are
        // enough for 40 calls 4 at a time; the margin absorbs scheduling).
        for _ in 0..1_000 {
            if calls.is_finished() {
                break;
            }
            tokio::task::yield_now().await;
            gated.release.notify_waiters();
        }

        let results = calls.await.unwrap();
        assert_eq!(results.len(), 40);
        assert!(results.into_iter().all(|r| matches!(r, Ok(Ok(())))));
        assert_eq!(gated.most.load(Ordering::SeqCst), 4);
    }
}
