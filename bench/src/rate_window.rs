//! The throttle the `@connections` stubs apply: at most `rate` posts in each one-second window
//! (counted from the stub's start), 429 for the rest, as the account's `@connections` quota does.
//! Shared by the HTTP stub and the in-process one so both throttle alike.

use std::sync::Mutex;
use std::time::Instant;

pub struct RateWindow {
    rate: u64,
    started: Instant,
    /// The current window: (its start in ms since `started`, posts counted in it).
    window: Mutex<(u128, u64)>,
}

impl RateWindow {
    pub fn new(rate: u64) -> Self {
        Self {
            rate,
            started: Instant::now(),
            window: Mutex::default(),
        }
    }

    /// Counts one post now; true when it is over the rate.
    pub fn over_rate(&self) -> bool {
        self.over_rate_at(self.started.elapsed().as_millis())
    }

    /// Counts one post at `now_ms` since the start; true when it is over the rate.
    fn over_rate_at(&self, now_ms: u128) -> bool {
        let mut window = self.window.lock().unwrap_or_else(|e| e.into_inner());
        if now_ms >= window.0 + 1_000 {
            *window = (now_ms - now_ms % 1_000, 0);
        }
        window.1 += 1;
        window.1 > self.rate
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn posts_beyond_the_rate_in_one_second_are_over_it_and_the_next_second_starts_afresh() {
        let window = RateWindow::new(2);
        let first_second: Vec<bool> = [0, 300, 999].map(|ms| window.over_rate_at(ms)).into();
        let next_second: Vec<bool> = [1_000, 1_500, 1_999]
            .map(|ms| window.over_rate_at(ms))
            .into();
        assert_eq!(first_second, [false, false, true]);
        assert_eq!(next_second, [false, false, true]);
    }
}
