//! Back-pressure and prefetch in the posting loop, with a notifier whose posts stay in flight
//! across polls so concurrency can be seen.

use std::num::NonZeroUsize;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use async_trait::async_trait;

use super::harness::*;
use crate::ports::MockConnectionRepository;
use crate::{
    ClientNotifier, ConnectionId, NotifyError, Page, PageToken, RetryPolicy, Settings,
    WebSocketService,
};

/// Answers 429 to the first attempt of every post to an id starting with `t`, yields once in
/// every post (so posts overlap), and records the most posts in flight once the throttled ones
/// are done.
#[derive(Default)]
struct ThrottlingNotifier {
    in_flight: AtomicUsize,
    throttled_seen: std::sync::Mutex<std::collections::HashSet<String>>,
    throttled_done: AtomicUsize,
    peak_after_throttles: AtomicUsize,
    second_page_read: Arc<AtomicBool>,
    posts_before_second_page_read: AtomicUsize,
}

const THROTTLED: usize = 16;

#[async_trait]
impl ClientNotifier for ThrottlingNotifier {
    async fn send(&self, to: &ConnectionId, _frame: &[u8]) -> Result<(), NotifyError> {
        let first_try = self.throttled_seen.lock().unwrap().insert(to.to_string());
        if first_try && !self.second_page_read.load(Ordering::SeqCst) {
            self.posts_before_second_page_read
                .fetch_add(1, Ordering::SeqCst);
        }
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        if self.throttled_done.load(Ordering::SeqCst) == THROTTLED {
            self.peak_after_throttles.fetch_max(now, Ordering::SeqCst);
        }
        tokio::task::yield_now().await;
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        if to.as_str().starts_with('t') {
            if first_try {
                return Err(NotifyError::Throttled);
            }
            self.throttled_done.fetch_add(1, Ordering::SeqCst);
        }
        Ok(())
    }

    async fn disconnect(&self, _id: &ConnectionId) -> Result<(), NotifyError> {
        Ok(())
    }
}

fn page(prefix: &str, n: usize, next: Option<&str>) -> Page<ConnectionId> {
    Page {
        items: (0..n).map(|i| id(&format!("{prefix}{i:02}"))).collect(),
        next: next.map(PageToken::new),
    }
}

/// A `sendmessage` over two pages: `THROTTLED` ids throttled once each, then 32 clean ones.
async fn broadcast_through_throttles(concurrency: usize) -> Arc<ThrottlingNotifier> {
    let notifier = Arc::new(ThrottlingNotifier::default());
    let second_page_read = notifier.second_page_read.clone();
    let mut repo = MockConnectionRepository::new();
    repo.expect_all_connections().returning(move |token, _| {
        Ok(match token {
            None => page("t", THROTTLED, Some("p2")),
            Some(_) => {
                second_page_read.store(true, Ordering::SeqCst);
                page("c", 32, None)
            }
        })
    });
    let settings = Settings {
        fanout_concurrency: NonZeroUsize::new(concurrency).unwrap(),
        presence_max_members: 0,
        echo_to_sender: false,
        retry: RetryPolicy {
            max_throttled_attempts: 3,
            ..RetryPolicy::default()
        },
        ..Settings::default()
    };
    let service = WebSocketService::new(
        repo,
        notifier.clone(),
        Arc::new(FixedClock),
        Arc::new(RecordingSleeper::default()),
        settings,
    );
    service
        .handle_message(&sender("zz"), br#"{"action":"sendmessage","data":1}"#)
        .await
        .unwrap();
    notifier
}

#[tokio::test]
async fn throttled_posts_shrink_the_posts_in_flight_and_clean_ones_grow_them_back_gradually() {
    let notifier = broadcast_through_throttles(16).await;

    // Sixteen throttled posts halve a window of 16 down to 1; clean ones then grow it by one per
    // window's worth (1 + 2 + ... needs 120 to get back to 16), so 32 of them stay far below.
    let peak = notifier.peak_after_throttles.load(Ordering::SeqCst);
    assert!(
        (1..16).contains(&peak),
        "peak in flight after the throttles: {peak}"
    );
}

#[tokio::test]
async fn the_next_page_is_read_while_the_current_one_is_still_posting() {
    // A window of 4 over a page of 16: the read of page 2 starts with the page's tail in flight,
    // before its last posts; reading only once the page is done would see all 16 posted first.
    let notifier = broadcast_through_throttles(4).await;

    let before = notifier
        .posts_before_second_page_read
        .load(Ordering::SeqCst);
    assert!(
        before < THROTTLED,
        "{before} posts started before page 2 was read"
    );
}

/// A queue no job here should need: every job below names its recipients and has time to spare.
struct UnusedQueue;

#[async_trait]
impl crate::delivery::DeliveryQueue for UnusedQueue {
    async fn enqueue(
        &self,
        _jobs: Vec<crate::delivery::DeliveryJob>,
    ) -> Result<(), crate::delivery::QueueError> {
        panic!("nothing was to be enqueued")
    }

    async fn enqueue_after(
        &self,
        _jobs: Vec<crate::delivery::DeliveryJob>,
        _delay: std::time::Duration,
    ) -> Result<(), crate::delivery::QueueError> {
        panic!("nothing was to be handed over")
    }

    async fn dead_letter(&self, _: &str, _: &str) -> Result<(), crate::delivery::QueueError> {
        panic!("nothing was to be dead-lettered")
    }
}

/// A job for `n` recipients named `{prefix}00`, `{prefix}01`, ...
fn job_for(prefix: &str, n: usize) -> crate::delivery::DeliveryJob {
    let recipients: Vec<String> = (0..n).map(|i| format!("\"{prefix}{i:02}\"")).collect();
    let json = format!(
        r#"{{"room":"lobby","data":1,"recipients":[{}]}}"#,
        recipients.join(",")
    );
    crate::delivery::DeliveryJob {
        id: Some(crate::delivery::MessageId::parse("m-1").unwrap()),
        ..crate::delivery::DeliveryJob::from_json(&json).unwrap()
    }
}

#[tokio::test]
async fn a_worker_starts_its_next_job_with_the_window_its_throttled_job_left() {
    let notifier = Arc::new(ThrottlingNotifier::default());
    let settings = Settings {
        fanout_concurrency: NonZeroUsize::new(64).unwrap(),
        presence_max_members: 0,
        ..Settings::default()
    };
    let worker = crate::delivery::DeliveryWorker::new(
        MockConnectionRepository::new(),
        notifier.clone(),
        Arc::new(UnusedQueue),
        Arc::new(FixedClock),
        Arc::new(RecordingSleeper::default()),
        settings,
    );
    let deadline = crate::Timestamp::from_millis(NOW + 600_000);

    worker.run(job_for("t", THROTTLED), deadline).await.unwrap();
    worker.run(job_for("c", 64), deadline).await.unwrap();

    // The first job's sixteen 429s came back from one flight of posts and halved the window once,
    // to 32; the second job starts there and grows it by one per flight, so its 64 posts never
    // all fly at once, as they would in a window of its own (64).
    let peak = notifier.peak_after_throttles.load(Ordering::SeqCst);
    assert!(
        (1..=33).contains(&peak),
        "peak in flight in the second job: {peak}"
    );
}
