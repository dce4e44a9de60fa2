//! The delivery worker and the inline/queued split, against mocks: what is enqueued when, what
//! is posted, and that served plus handed over is exactly the audience.

use std::collections::BTreeSet;
use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use serde_json::Value;

use super::harness::*;
use crate::delivery::{
    DeliveryJob, DeliveryQueue, DeliveryWorker, JobTarget, MessageId, QueueError, Received, Source,
};
use crate::ports::{MockClientNotifier, MockConnectionRepository};
use crate::stream::RoomLog;
use crate::{Clock, ConnectionId, Page, PageToken, Settings, Timestamp, WebSocketService};

/// What happened, in order: `enqueue:<cursor or recipients>` and `post:<id>@<ms>`.
#[derive(Clone, Default)]
struct Log(Arc<Mutex<Vec<String>>>);

impl Log {
    fn push(&self, entry: String) {
        self.0.lock().unwrap().push(entry);
    }
    fn entries(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }
}

/// A queue that keeps what it is given and logs each job.
#[derive(Clone, Default)]
struct RecordingQueue {
    log: Log,
    jobs: Arc<Mutex<Vec<DeliveryJob>>>,
    dead: Arc<Mutex<Vec<String>>>,
    /// When set, each enqueue first logs `prepared:<n>`, the prepares the notifier had by then.
    prepares: Option<Outbox>,
}

#[async_trait]
impl DeliveryQueue for RecordingQueue {
    async fn enqueue(&self, jobs: Vec<DeliveryJob>) -> Result<(), QueueError> {
        self.enqueue_after(jobs, Duration::ZERO).await
    }

    async fn enqueue_after(
        &self,
        jobs: Vec<DeliveryJob>,
        delay: Duration,
    ) -> Result<(), QueueError> {
        if let Some(outbox) = &self.prepares {
            self.log
                .push(format!("prepared:{}", outbox.prepared().len()));
        }
        for job in &jobs {
            let what = match (&job.cursor, &job.recipients) {
                (Some(cursor), _) => format!("cursor={}", cursor.as_str()),
                (None, Some(ids)) => format!("recipients={}", ids.len()),
                (None, None) => "whole".to_string(),
            };
            let after = if delay.is_zero() {
                String::new()
            } else {
                format!(" after {}s", delay.as_secs())
            };
            self.log.push(format!("enqueue:{what}{after}"));
        }
        self.jobs.lock().unwrap().extend(jobs);
        Ok(())
    }

    async fn dead_letter(&self, body: &str, reason: &str) -> Result<(), QueueError> {
        self.log.push(format!("dead-letter:{reason}"));
        self.dead.lock().unwrap().push(body.to_string());
        Ok(())
    }
}

impl RecordingQueue {
    fn jobs(&self) -> Vec<DeliveryJob> {
        self.jobs.lock().unwrap().clone()
    }
}

/// A clock each post moves forward by `step` milliseconds.
struct SteppingClock {
    now: AtomicU64,
}

impl Clock for SteppingClock {
    fn now(&self) -> Timestamp {
        Timestamp::from_millis(self.now.load(Ordering::SeqCst))
    }
}

fn ids(prefix: &str, n: usize) -> Vec<ConnectionId> {
    (0..n).map(|i| id(&format!("{prefix}{i:03}"))).collect()
}

/// A room whose first page is `first` and whose second page (cursor `p2`) exists.
fn room_with_two_pages(first: Vec<ConnectionId>) -> MockConnectionRepository {
    let mut repo = MockConnectionRepository::new();
    repo.expect_members_of().returning(move |_, token, _| {
        assert_eq!(token, None, "the worker reads only its own page");
        Ok(Page {
            items: first.clone(),
            next: Some(PageToken::new("p2")),
        })
    });
    repo
}

/// A notifier that logs each post with the clock's time, then moves the clock by `step_ms`.
/// Posts to ids starting with `t` are throttled (429), every time.
fn timed_notifier(log: Log, clock: Arc<SteppingClock>, step_ms: u64) -> MockClientNotifier {
    let mut notifier = MockClientNotifier::new();
    notifier.expect_send().returning(move |to, frame| {
        if to.as_str().starts_with('t') {
            clock.now.fetch_add(step_ms, Ordering::SeqCst);
            log.push(format!("throttled:{to}"));
            return Err(crate::NotifyError::Throttled);
        }
        let frame: Value = serde_json::from_slice(frame).unwrap();
        let at = clock.now.fetch_add(step_ms, Ordering::SeqCst);
        let from = frame["from"].as_str().unwrap_or("nobody");
        let id = frame["id"].as_str().unwrap_or("");
        log.push(format!("post:{to}@{at}:{id}:{from}"));
        Ok(())
    });
    notifier
}

struct Run {
    log: Log,
    queue: RecordingQueue,
    report: crate::delivery::JobReport,
}

/// One worker run over a room of two pages (the first one `first`), posts taking `step_ms`
/// each, one post in flight at a time, and `deadline_ms` after the start.
async fn run_worker(first: Vec<ConnectionId>, step_ms: u64, deadline_ms: u64) -> Run {
    let job = DeliveryJob::new(
        MessageId::parse("m-1").unwrap(),
        JobTarget::Room(room("lobby")),
        serde_json::value::RawValue::from_string("1".into()).unwrap(),
    );
    run_job(job, first, step_ms, deadline_ms).await
}

async fn run_job(
    job: DeliveryJob,
    first: Vec<ConnectionId>,
    step_ms: u64,
    deadline_ms: u64,
) -> Run {
    let log = Log::default();
    let queue = RecordingQueue {
        log: log.clone(),
        ..RecordingQueue::default()
    };
    let clock = Arc::new(SteppingClock {
        now: AtomicU64::new(NOW),
    });
    let settings = Settings {
        fanout_concurrency: NonZeroUsize::MIN,
        job_safety_margin: Duration::from_millis(500),
        presence_max_members: 0,
        ..Settings::default()
    };
    let worker = DeliveryWorker::new(
        room_with_two_pages(first),
        timed_notifier(log.clone(), clock.clone(), step_ms),
        Arc::new(queue.clone()),
        clock,
        Arc::new(RecordingSleeper::default()),
        settings,
    );
    let body = job.to_json();
    let report = worker
        .handle(
            received(&body, Source::Backend),
            Timestamp::from_millis(NOW + deadline_ms),
        )
        .await
        .unwrap();
    Run { log, queue, report }
}

/// `body` as the queue message `sqs-1`, first received at `NOW`.
fn received(body: &str, source: Source) -> Received<'_> {
    static QUEUE_MESSAGE_ID: std::sync::LazyLock<MessageId> =
        std::sync::LazyLock::new(|| MessageId::parse("sqs-1").unwrap());
    Received {
        id: &QUEUE_MESSAGE_ID,
        sent_at: Timestamp::from_millis(NOW),
        body,
        source,
    }
}

fn posted_ids(log: &[String]) -> Vec<String> {
    log.iter()
        .filter_map(|e| e.strip_prefix("post:"))
        .map(|e| e.split('@').next().unwrap_or_default().to_string())
        .collect()
}

#[tokio::test]
async fn the_next_page_is_enqueued_before_the_first_post() {
    let run = run_worker(ids("m", 5), 10, 60_000).await;

    let log = run.log.entries();
    assert_eq!(log[0], "enqueue:cursor=p2", "{log:?}");
    assert_eq!(posted_ids(&log).len(), 5);
    assert!(run.report.continued);
    assert_eq!(
        (run.report.delivery.delivered, run.report.handed_over),
        (5, 0)
    );
}

#[tokio::test]
async fn at_the_deadline_the_unserved_rest_of_the_page_is_handed_over_exactly() {
    // 30 members, 100 ms a post, 2 s to the deadline with a 500 ms margin: about 15 fit.
    let page = ids("m", 30);
    let run = run_worker(page.clone(), 100, 2_000).await;

    let served: BTreeSet<String> = posted_ids(&run.log.entries()).into_iter().collect();
    let handed_over: Vec<String> = run
        .queue
        .jobs()
        .iter()
        .filter_map(|job| job.recipients.clone())
        .flatten()
        .map(|id| id.to_string())
        .collect();
    assert!(
        !served.is_empty() && !handed_over.is_empty(),
        "the deadline fell mid-page"
    );
    let mut union: Vec<String> = served.iter().cloned().chain(handed_over.clone()).collect();
    union.sort();
    let audience: Vec<String> = page.iter().map(ToString::to_string).collect();
    assert_eq!(
        union, audience,
        "served + handed over == the page, nobody twice"
    );
    assert_eq!(run.report.delivery.requeued, handed_over.len() as u64);
    // The hand-over is the same message: same id, same time, no cursor of its own.
    for job in run.queue.jobs() {
        assert_eq!(job.id.as_ref().map(MessageId::as_str), Some("m-1"));
        assert_eq!(job.sent_at, Some(NOW));
    }
}

#[tokio::test]
async fn no_post_starts_within_the_safety_margin_of_the_deadline() {
    let run = run_worker(ids("m", 50), 100, 3_000).await;

    let starts: Vec<u64> = run
        .log
        .entries()
        .iter()
        .filter_map(|e| e.strip_prefix("post:"))
        .filter_map(|e| e.split(['@', ':']).nth(1)?.parse().ok())
        .collect();
    let last_allowed = NOW + 3_000 - 500;
    assert!(!starts.is_empty());
    assert!(
        starts.iter().all(|&at| at < last_allowed),
        "a post started at {:?}, the margin starts at {last_allowed}",
        starts.iter().max()
    );
    assert!(run.report.handed_over > 0);
}

#[tokio::test]
async fn a_backend_job_without_an_id_takes_the_queue_message_id_on_every_frame_and_continuation() {
    let job = DeliveryJob::from_json(r#"{"room":"lobby","data":1}"#).unwrap();
    let run = run_job(job, ids("m", 3), 10, 60_000).await;

    let posts: Vec<String> = run
        .log
        .entries()
        .into_iter()
        .filter(|e| e.starts_with("post:"))
        .collect();
    assert_eq!(posts.len(), 3);
    assert!(
        posts.iter().all(|e| e.ends_with(":sqs-1:nobody")),
        "{posts:?}"
    );
    // The next page's worker gets another queue message id, so the job carries this one.
    assert_eq!(
        run.queue.jobs()[0].id.as_ref().map(MessageId::as_str),
        Some("sqs-1")
    );
}

/// A service with a recording queue, `inline` recipients inline, over one page of `members`.
async fn publish_with_threshold(members: usize, inline: usize) -> (Outbox, RecordingQueue) {
    let mut repo = MockConnectionRepository::new();
    repo.expect_rooms_of()
        .returning(|_, _| Ok(vec![room("lobby")]));
    let page = ids("m", members);
    repo.expect_members_of().returning(move |_, _, _| {
        Ok(Page {
            items: page.clone(),
            next: None,
        })
    });
    let (notifier, outbox) = accepting_notifier();
    let queue = RecordingQueue {
        prepares: Some(outbox.clone()),
        ..RecordingQueue::default()
    };
    let settings = Settings {
        inline_recipients: inline,
        presence_max_members: 0,
        ..Settings::default()
    };
    let service = WebSocketService::new(
        repo,
        notifier,
        Arc::new(FixedClock),
        Arc::new(RecordingSleeper::default()),
        settings,
    )
    .with_delivery_queue(Arc::new(queue.clone()));
    service
        .handle_message(
            &sender("m000"),
            br#"{"action":"publish","room":"lobby","data":1,"requestId":"r"}"#,
        )
        .await
        .unwrap();
    (outbox, queue)
}

#[tokio::test]
async fn an_audience_that_fits_the_inline_threshold_is_not_queued() {
    let (outbox, queue) = publish_with_threshold(5, 5).await;

    assert_eq!(outbox.recipients_of_type("message").len(), 5);
    assert!(queue.jobs().is_empty());
    assert_eq!(outbox.prepared(), [], "no wait to open connections in");
    let ack = outbox.first_of_type("m000", "ack");
    assert_eq!(
        (ack["delivered"].as_u64(), ack["queued"].as_bool()),
        (Some(5), Some(false))
    );
}

#[tokio::test]
async fn one_recipient_over_the_threshold_is_queued_and_the_ack_counts_the_inline_part() {
    let (outbox, queue) = publish_with_threshold(5, 4).await;

    let inline = outbox.recipients_of_type("message");
    assert_eq!(inline, ["m000", "m001", "m002", "m003"]);
    // The inline part's connections open while the rest is queued, before the first post.
    assert_eq!(queue.log.entries(), ["prepared:1", "enqueue:recipients=1"]);
    assert_eq!(
        outbox.prepared(),
        [Prepared {
            posts: 4,
            after_frames: 0
        }]
    );
    let jobs = queue.jobs();
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0].recipients, Some(vec![id("m004")]));
    assert_eq!(jobs[0].from, Some(id("m000")));
    let frame = &outbox.frames_to("m001")[0];
    assert_eq!(
        jobs[0].id.as_ref().map(MessageId::as_str),
        frame["id"].as_str()
    );
    let ack = outbox.first_of_type("m000", "ack");
    assert_eq!(
        (ack["delivered"].as_u64(), ack["queued"].as_bool()),
        (Some(4), Some(true))
    );
}

#[tokio::test]
async fn a_retry_that_could_end_inside_the_margin_is_not_started_and_its_recipient_is_handed_over()
{
    // The first attempt starts at 0 ms, before the margin (500 ms before a 600 ms deadline);
    // after it (100 ms) any retry would end inside the margin, so the worker hands that
    // recipient over instead of waiting.
    let run = run_worker(vec![id("t0")], 100, 600).await;

    let attempts = run
        .log
        .entries()
        .iter()
        .filter(|e| e.starts_with("throttled:"))
        .count();
    assert_eq!(attempts, 1, "{:?}", run.log.entries());
    let handed_over: Vec<Vec<ConnectionId>> = run
        .queue
        .jobs()
        .iter()
        .filter_map(|job| job.recipients.clone())
        .collect();
    assert_eq!(handed_over, [vec![id("t0")]]);
    assert_eq!(
        (run.report.delivery.failed, run.report.delivery.unfinished),
        (0, 1)
    );
}

/// A queue that is down.
struct DownQueue;

#[async_trait]
impl DeliveryQueue for DownQueue {
    async fn enqueue(&self, _jobs: Vec<DeliveryJob>) -> Result<(), QueueError> {
        Err(QueueError::Unavailable("down".into()))
    }

    async fn enqueue_after(&self, _: Vec<DeliveryJob>, _: Duration) -> Result<(), QueueError> {
        Err(QueueError::Unavailable("down".into()))
    }

    async fn dead_letter(&self, _: &str, _: &str) -> Result<(), QueueError> {
        Err(QueueError::Unavailable("down".into()))
    }
}

#[tokio::test]
async fn a_worker_that_cannot_enqueue_the_next_page_fails_before_posting_so_the_job_comes_back() {
    // No expectation on the notifier: a post would fail the test.
    let worker = DeliveryWorker::new(
        room_with_two_pages(ids("m", 3)),
        MockClientNotifier::new(),
        Arc::new(DownQueue),
        Arc::new(FixedClock),
        Arc::new(RecordingSleeper::default()),
        Settings::default(),
    );
    let result = worker
        .handle(
            received(r#"{"room":"lobby","data":1}"#, Source::Backend),
            Timestamp::from_millis(NOW + 60_000),
        )
        .await;

    assert!(
        matches!(result, Err(crate::delivery::WorkError::Enqueue(_))),
        "{result:?}"
    );
}

#[tokio::test]
async fn a_broadcast_whose_rest_cannot_be_queued_is_a_service_error_and_posts_nothing() {
    let mut repo = MockConnectionRepository::new();
    repo.expect_rooms_of()
        .returning(|_, _| Ok(vec![room("lobby")]));
    repo.expect_members_of().returning(|_, _, _| {
        Ok(Page {
            items: ids("m", 5),
            next: None,
        })
    });
    let (notifier, outbox) = accepting_notifier();
    let service = WebSocketService::new(
        repo,
        notifier,
        Arc::new(FixedClock),
        Arc::new(RecordingSleeper::default()),
        Settings {
            inline_recipients: 2,
            ..Settings::default()
        },
    )
    .with_delivery_queue(Arc::new(DownQueue));

    let result = service
        .handle_message(
            &sender("m000"),
            br#"{"action":"publish","room":"lobby","data":1}"#,
        )
        .await;

    assert!(
        matches!(result, Err(crate::HandleError::Queue(_))),
        "{result:?}"
    );
    assert!(outbox.recipients_of_type("message").is_empty());
}

#[tokio::test]
async fn a_job_for_one_connection_is_one_post_and_reads_no_audience() {
    // No repository expectation: any read would fail the test.
    let (notifier, outbox) = accepting_notifier();
    let queue = RecordingQueue::default();
    let worker = DeliveryWorker::new(
        MockConnectionRepository::new(),
        notifier,
        Arc::new(queue.clone()),
        Arc::new(FixedClock),
        Arc::new(RecordingSleeper::default()),
        Settings::default(),
    );
    let report = worker
        .handle(
            received(r#"{"connection":"c1","data":{"x":1}}"#, Source::Backend),
            Timestamp::from_millis(NOW + 60_000),
        )
        .await
        .unwrap();

    assert_eq!(report.delivery.delivered, 1);
    let frames = outbox.frames_to("c1");
    assert_eq!(frames.len(), 1);
    assert_eq!(
        (&frames[0]["id"], &frames[0]["data"], frames[0].get("room")),
        (
            &serde_json::json!("sqs-1"),
            &serde_json::json!({"x": 1}),
            None
        )
    );
    assert!(queue.jobs().is_empty(), "nothing to continue");
}

/// A worker with `log` that runs a backend's room message once, returning what it posted and
/// what it enqueued.
async fn run_backend_room_job(
    log: Arc<FakeLog>,
) -> (Vec<String>, RecordingQueue, crate::JobReport) {
    let trace = Log::default();
    let queue = RecordingQueue {
        log: trace.clone(),
        ..RecordingQueue::default()
    };
    let clock = Arc::new(SteppingClock {
        now: AtomicU64::new(NOW),
    });
    let worker = DeliveryWorker::new(
        room_with_two_pages(ids("m", 2)),
        timed_notifier(trace.clone(), clock.clone(), 1),
        Arc::new(queue.clone()),
        clock,
        Arc::new(RecordingSleeper::default()),
        Settings::default(),
    )
    .with_room_log(log);
    let report = worker
        .handle(
            received(r#"{"room":"lobby","data":"news"}"#, Source::Backend),
            Timestamp::from_millis(NOW + 60_000),
        )
        .await
        .unwrap();
    (trace.entries(), queue, report)
}

#[tokio::test]
async fn a_backend_room_message_takes_its_seq_once_and_a_redelivery_takes_the_same() {
    let log = Arc::new(FakeLog::with(4));

    let (_, first, _) = run_backend_room_job(log.clone()).await;
    let (_, again, _) = run_backend_room_job(log.clone()).await;

    // The continuation job of each run carries the message's seq: 5, both times.
    assert_eq!(first.jobs()[0].seq, Some(5));
    assert_eq!(again.jobs()[0].seq, Some(5));
    assert_eq!(log.latest(&room("lobby")).await.unwrap(), Some(5));
    let keep = log.keeps.lock().unwrap()[0];
    assert!(keep.once_until.is_some(), "appended once by its message id");
}

#[tokio::test]
async fn a_backend_room_message_for_a_busy_room_comes_back_after_the_wait_with_no_post() {
    let log = Arc::new(FakeLog {
        busy: true,
        ..FakeLog::default()
    });

    let (trace, queue, report) = run_backend_room_job(log).await;

    assert!(posted_ids(&trace).is_empty());
    assert_eq!(trace, vec!["enqueue:whole after 0s".to_string()]);
    let job = &queue.jobs()[0];
    assert_eq!(
        (job.seq, job.id.as_ref().map(MessageId::as_str)),
        (None, Some("sqs-1"))
    );
    assert_eq!(report.handed_over, 1);
}

/// What a worker running `job` told its notifier to prepare for, and how many prepares it had
/// made at each page read; its room's pages hold `page` members (and more after them).
async fn prepared_by_worker(
    job: DeliveryJob,
    page: usize,
    concurrency: usize,
) -> (Outbox, Vec<usize>) {
    let (notifier, outbox) = accepting_notifier();
    let mut repo = MockConnectionRepository::new();
    let prepares = outbox.clone();
    let at_reads = Arc::new(Mutex::new(Vec::new()));
    let reads = at_reads.clone();
    repo.expect_members_of().returning(move |_, _, _| {
        reads.lock().unwrap().push(prepares.prepared().len());
        Ok(Page {
            items: ids("m", page),
            next: Some(PageToken::new("after")),
        })
    });
    let worker = DeliveryWorker::new(
        repo,
        notifier,
        Arc::new(RecordingQueue::default()),
        Arc::new(FixedClock),
        Arc::new(RecordingSleeper::default()),
        Settings {
            fanout_concurrency: NonZeroUsize::new(concurrency).unwrap(),
            presence_max_members: 0,
            ..Settings::default()
        },
    );
    let body = job.to_json();
    worker
        .handle(
            received(&body, Source::Service),
            Timestamp::from_millis(NOW + 60_000),
        )
        .await
        .unwrap();
    let at_reads = at_reads.lock().unwrap().clone();
    (outbox, at_reads)
}

fn room_job() -> DeliveryJob {
    DeliveryJob {
        sent_at: Some(NOW),
        ..DeliveryJob::new(
            MessageId::parse("m-1").unwrap(),
            JobTarget::Room(room("lobby")),
            serde_json::value::RawValue::from_string("1".into()).unwrap(),
        )
    }
}

#[tokio::test]
async fn a_job_continuing_a_large_audience_prepares_a_window_of_connections_before_its_page() {
    let job = room_job().continued_at(PageToken::new("m-start"));

    let (outbox, prepares_at_reads) = prepared_by_worker(job, 300, 64).await;

    assert_eq!(prepares_at_reads, [1], "prepared before the page was read");
    assert_eq!(
        outbox.prepared(),
        [Prepared {
            posts: 64,
            after_frames: 0
        }]
    );
    assert_eq!(outbox.recipients_of_type("message").len(), 300);
}

#[tokio::test]
async fn a_job_with_its_recipients_listed_has_no_wait_to_prepare_in_and_prepares_nothing() {
    let job = room_job().handed_over_to(ids("h", 3));

    let (outbox, prepares_at_reads) = prepared_by_worker(job, 300, 64).await;

    assert_eq!(outbox.prepared(), []);
    assert_eq!(prepares_at_reads, [] as [usize; 0], "nothing read");
    assert_eq!(
        outbox.recipients_of_type("message"),
        ["h000", "h001", "h002"]
    );
}

#[tokio::test]
async fn a_new_job_whose_audience_may_be_small_prepares_nothing() {
    let (outbox, prepares_at_reads) = prepared_by_worker(room_job(), 2, 64).await;

    assert_eq!(outbox.prepared(), []);
    assert_eq!(prepares_at_reads, [0]);
    assert_eq!(outbox.recipients_of_type("message").len(), 2);
}
