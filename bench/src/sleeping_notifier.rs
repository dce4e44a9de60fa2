//! An in-process `@connections` stand-in for `fanout-queue`: each post sleeps D and answers as the
//! HTTP stub would (429 above the rate, 410 for `gone-` ids), with no HTTP client, no signing and
//! no server. On a 2-core machine the HTTP client and stub of 16 workers need more CPU than there
//! is, while 16 Lambdas each have their own; without them what is left is the design's own work
//! (the queue, pages, hand-overs, the AIMD window, the deadlines), which is what W should scale.

use std::time::Duration;

use async_trait::async_trait;
use domain::{ClientNotifier, ConnectionId, NotifyError};

use crate::rate_window::RateWindow;

pub struct SleepingNotifier {
    delay: Duration,
    throttle: Option<RateWindow>,
}

impl SleepingNotifier {
    pub fn new(delay: Duration, throttle_above: Option<u64>) -> Self {
        Self {
            delay,
            throttle: throttle_above.map(RateWindow::new),
        }
    }
}

#[async_trait]
impl ClientNotifier for SleepingNotifier {
    async fn send(&self, to: &ConnectionId, _frame: &[u8]) -> Result<(), NotifyError> {
        // The HTTP stub sleeps first and counts the post against the rate after, so this does.
        tokio::time::sleep(self.delay).await;
        if self.throttle.as_ref().is_some_and(|t| t.over_rate()) {
            Err(NotifyError::Throttled)
        } else if to.as_str().starts_with("gone-") {
            Err(NotifyError::Gone)
        } else {
            Ok(())
        }
    }

    async fn disconnect(&self, _id: &ConnectionId) -> Result<(), NotifyError> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(raw: &str) -> ConnectionId {
        ConnectionId::parse(raw).expect("a valid id")
    }

    #[tokio::test]
    async fn it_answers_as_the_http_stub_does_gone_for_gone_ids_and_429_over_the_rate() {
        let notifier = SleepingNotifier::new(Duration::ZERO, Some(1));
        let first = notifier.send(&id("live-1"), b"{}").await;
        let second = notifier.send(&id("live-2"), b"{}").await;
        let unthrottled = SleepingNotifier::new(Duration::ZERO, None);
        let gone = unthrottled.send(&id("gone-1"), b"{}").await;
        assert!(first.is_ok(), "{first:?}");
        assert!(matches!(second, Err(NotifyError::Throttled)), "{second:?}");
        assert!(matches!(gone, Err(NotifyError::Gone)), "{gone:?}");
    }
}
