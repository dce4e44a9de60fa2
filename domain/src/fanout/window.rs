//! How many posts a fan-out keeps in flight: additive increase, multiplicative decrease (AIMD),
//! the way TCP shares a link. A 429 from `@connections` says the account's request rate is
//! exceeded; keeping the same pressure only earns more 429s (and burns their retries), so a 429
//! halves the window (once per flight of posts: the 429s of posts sent before a cut answer the
//! rate that cut already lowered), and a flight's worth of clean deliveries widens it by one.

use std::num::NonZeroUsize;
use std::sync::{Mutex, MutexGuard};

use super::{PostOutcome, Posted};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Window {
    limit: usize,
    max: usize,
    /// Clean deliveries since the window last grew.
    delivered: usize,
    /// Posts started and not yet observed, by every fan-out sharing this window.
    in_flight: usize,
    /// Completions still to come from posts sent before the last decrease: their 429s answer
    /// the rate that decrease already cut, so they must not cut it again (TCP halves once per
    /// round trip, not once per lost packet).
    cooling: usize,
}

impl Window {
    /// Starts wide open: most fan-outs are never throttled.
    pub fn new(max: NonZeroUsize) -> Self {
        Self {
            limit: max.get(),
            max: max.get(),
            delivered: 0,
            in_flight: 0,
            cooling: 0,
        }
    }

    /// Posts that may be in flight now; never below 1.
    pub fn limit(&self) -> usize {
        self.limit
    }

    pub fn max(&self) -> usize {
        self.max
    }

    /// A post starts.
    pub fn started(&mut self) {
        self.in_flight += 1;
    }

    /// A post ends, observed or not (its future may be dropped at a deadline).
    pub fn finished(&mut self) {
        self.in_flight = self.in_flight.saturating_sub(1);
    }

    /// Learns from one finished post: a 429 halves the window, once per round trip of the posts
    /// in flight; clean deliveries widen it by one per round trip's worth of them (all of the
    /// posts in flight, across every fan-out sharing the window, not just one fan-out's limit).
    pub fn observe(&mut self, posted: &Posted) {
        let cooling = self.cooling > 0;
        self.cooling = self.cooling.saturating_sub(1);
        if posted.throttled > 0 {
            if !cooling {
                self.limit = (self.limit / 2).max(1);
                self.cooling = self.in_flight;
            }
            self.delivered = 0;
        } else if posted.outcome == PostOutcome::Delivered && self.limit < self.max {
            self.delivered += 1;
            if self.delivered >= self.limit.max(self.in_flight) {
                self.limit += 1;
                self.delivered = 0;
            }
        }
    }
}

/// A window that outlives one fan-out: a worker keeps one across its jobs (and invocations, while
/// its Lambda stays warm). The account's `@connections` quota is shared by every job, so a job
/// must start from what the jobs before it learned; a window per job started every one of them
/// wide open, and at 16 workers of mostly short jobs 19 % of posts were 429s when that was
/// measured; with one window per worker, 3.4 % of attempts (BENCHMARKS.md, "Queued fan-out").
#[derive(Debug)]
pub(crate) struct SharedWindow(Mutex<Window>);

impl SharedWindow {
    pub fn new(max: NonZeroUsize) -> Self {
        Self(Mutex::new(Window::new(max)))
    }

    fn lock(&self) -> MutexGuard<'_, Window> {
        // A panic while holding it leaves a plain number behind, still usable.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn limit(&self) -> usize {
        self.lock().limit()
    }

    pub fn max(&self) -> usize {
        self.lock().max()
    }

    /// A post starts; it counts as in flight until the guard is dropped.
    pub fn started(&self) -> InFlight<'_> {
        self.lock().started();
        InFlight(self)
    }

    pub fn observe(&self, posted: &Posted) {
        self.lock().observe(posted);
    }
}

/// One post in flight on a [`SharedWindow`].
pub(crate) struct InFlight<'a>(&'a SharedWindow);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.lock().finished();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn posted(outcome: PostOutcome, throttled: u64) -> Posted {
        Posted {
            outcome,
            throttled,
            retried: throttled,
        }
    }

    fn window(max: usize) -> Window {
        Window::new(NonZeroUsize::new(max).unwrap())
    }

    #[test]
    fn throttled_posts_one_flight_after_another_halve_the_window_down_to_one() {
        let mut w = window(64);
        let limits: Vec<usize> = (0..8)
            .map(|_| {
                w.observe(&posted(PostOutcome::Delivered, 1));
                w.limit()
            })
            .collect();
        assert_eq!(limits, [32, 16, 8, 4, 2, 1, 1, 1]);
    }

    #[test]
    fn clean_deliveries_grow_the_window_by_one_per_window_of_them_up_to_its_maximum() {
        let mut w = window(4);
        for _ in 0..3 {
            w.observe(&posted(PostOutcome::Unfinished, 2));
        }
        assert_eq!(w.limit(), 1);
        let limits: Vec<usize> = (0..12)
            .map(|_| {
                w.observe(&posted(PostOutcome::Delivered, 0));
                w.limit()
            })
            .collect();
        // 1 delivery to reach 2, 2 more to reach 3, 3 more to reach 4, then capped.
        assert_eq!(limits, [2, 2, 3, 3, 3, 4, 4, 4, 4, 4, 4, 4]);
    }

    #[test]
    fn throttles_from_one_flight_of_posts_halve_the_window_once() {
        let mut w = window(64);
        for _ in 0..64 {
            w.started();
        }
        for _ in 0..64 {
            w.finished();
            w.observe(&posted(PostOutcome::Delivered, 1));
        }
        assert_eq!(w.limit(), 32, "one congestion event, one halving");
        // The next flight's first 429 halves it again.
        w.started();
        w.finished();
        w.observe(&posted(PostOutcome::Delivered, 1));
        assert_eq!(w.limit(), 16);
    }

    #[test]
    fn with_more_posts_in_flight_than_the_limit_the_window_grows_once_per_flight() {
        // Sixteen jobs share a window of 4: 64 posts fly, so growing by one takes 64 deliveries,
        // not 4 (which would widen every job's share sixteen times as fast).
        let mut w = window(8);
        w.observe(&posted(PostOutcome::Delivered, 1));
        assert_eq!(w.limit(), 4);
        for _ in 0..64 {
            w.started();
        }
        for _ in 0..63 {
            w.observe(&posted(PostOutcome::Delivered, 0));
        }
        assert_eq!(w.limit(), 4);
        w.observe(&posted(PostOutcome::Delivered, 0));
        assert_eq!(w.limit(), 5);
    }

    #[test]
    fn a_gone_or_failed_post_without_a_throttle_leaves_the_window_alone() {
        let mut w = window(8);
        w.observe(&posted(PostOutcome::Delivered, 1));
        for _ in 0..10 {
            w.observe(&posted(PostOutcome::Gone, 0));
            w.observe(&posted(PostOutcome::Misconfigured, 0));
        }
        assert_eq!(w.limit(), 4);
    }
}
