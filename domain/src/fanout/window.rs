//! How many posts a fan-out keeps in flight: additive increase, multiplicative decrease (AIMD),
//! the way TCP shares a link. A 429 from `@connections` says the account's request rate is
//! exceeded; keeping the same pressure only earns more 429s (and burns their retries), so each
//! throttled post halves the window, and each clean delivery widens it again by one.

use std::num::NonZeroUsize;
use std::sync::{Mutex, MutexGuard};

use super::{PostOutcome, Posted};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Window {
    limit: usize,
    max: usize,
    /// Clean deliveries since the window last grew.
    delivered: usize,
}

impl Window {
    /// Starts wide open: most fan-outs are never throttled.
    pub fn new(max: NonZeroUsize) -> Self {
        Self {
            limit: max.get(),
            max: max.get(),
            delivered: 0,
        }
    }

    /// Posts that may be in flight now; never below 1.
    pub fn limit(&self) -> usize {
        self.limit
    }

    pub fn max(&self) -> usize {
        self.max
    }

    /// Learns from one finished post.
    pub fn observe(&mut self, posted: &Posted) {
        if posted.throttled > 0 {
            self.limit = (self.limit / 2).max(1);
            self.delivered = 0;
        } else if posted.outcome == PostOutcome::Delivered && self.limit < self.max {
            self.delivered += 1;
            if self.delivered >= self.limit {
                self.limit += 1;
                self.delivered = 0;
            }
        }
    }
}

/// A window that outlives one fan-out: a worker keeps one across its jobs (and invocations, while
/// its Lambda stays warm). The account's `@connections` quota is shared by every job, so a job
/// must start from what the jobs before it learned; a window per job started every one of them
/// wide open, and at 16 workers of mostly short jobs 19 % of posts were 429s (BENCHMARKS.md,
/// section 8).
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

    pub fn observe(&self, posted: &Posted) {
        self.lock().observe(posted);
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
    fn each_throttled_post_halves_the_window_down_to_one() {
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
            w.observe(&posted(PostOutcome::Failed, 2));
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
    fn a_gone_or_failed_post_without_a_throttle_leaves_the_window_alone() {
        let mut w = window(8);
        w.observe(&posted(PostOutcome::Delivered, 1));
        for _ in 0..10 {
            w.observe(&posted(PostOutcome::Gone, 0));
            w.observe(&posted(PostOutcome::Failed, 0));
        }
        assert_eq!(w.limit(), 4);
    }
}
