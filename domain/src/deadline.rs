//! The end of an invocation, and the rule that nothing runs past it: API Gateway cuts a `$default`
//! invocation off at 29 s, Lambda a worker's at its timeout, and work cut off mid-way is work
//! done twice (the transport redelivers it). So no post, retry, read, prune or announcement starts
//! unless it can end a safety margin before the deadline, and every awaited call after that check
//! is bounded by the time left.

use std::future::Future;
use std::time::Duration;

use futures::future::Either;

use crate::ports::{Clock, Sleeper};
use crate::time::Timestamp;

/// When an invocation ends, with the clock to compare it with and the sleeper that times out
/// what would run past it.
#[derive(Clone, Copy)]
pub struct Deadline<'a> {
    pub at: Timestamp,
    pub margin: Duration,
    pub clock: &'a dyn Clock,
    pub sleeper: &'a dyn Sleeper,
}

impl Deadline<'_> {
    /// How long is left before the margin starts; zero once inside it.
    pub fn left(&self) -> Duration {
        let now = self.clock.now().as_millis();
        let margin_starts = self
            .at
            .as_millis()
            .saturating_sub(u64::try_from(self.margin.as_millis()).unwrap_or(u64::MAX));
        Duration::from_millis(margin_starts.saturating_sub(now))
    }

    /// Whether something that takes `busy` can start now and still end before the margin.
    pub fn leaves(&self, busy: Duration) -> bool {
        let left = self.left();
        !left.is_zero() && busy < left
    }

    /// Runs `work`, giving up (`None`) once the margin starts: for the awaited calls after a
    /// check, whose own time budget the margin was not sized for (a DynamoDB call that retries,
    /// a page of presence posts).
    pub async fn bound<F: Future>(&self, work: F) -> Option<F::Output> {
        self.bound_within(self.left(), work).await
    }

    /// Runs `work`, giving up (`None`) once the deadline itself is near: for what must still
    /// happen inside the margin, which is sized for it (handing the rest over to the queue).
    pub async fn bound_to_the_end<F: Future>(&self, work: F) -> Option<F::Output> {
        let now = self.clock.now().as_millis();
        let left = Duration::from_millis(self.at.as_millis().saturating_sub(now));
        self.bound_within(left, work).await
    }

    async fn bound_within<F: Future>(&self, left: Duration, work: F) -> Option<F::Output> {
        if left.is_zero() {
            return None;
        }
        let work = std::pin::pin!(work);
        let timer = std::pin::pin!(self.sleeper.sleep(left));
        // The work is polled first: a call that is ready at once is never cut off.
        match futures::future::select(work, timer).await {
            Either::Left((done, _)) => Some(done),
            Either::Right(((), _)) => None,
        }
    }
}
