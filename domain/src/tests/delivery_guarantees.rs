//! At-least-once, under throttling and deadlines: no post is dropped while its recipient may be
//! alive, no invocation runs past its deadline, and a message that can never be delivered ends in
//! the dead-letter queue at once, with its reason. Slow calls run on tokio's paused clock, so a
//! "3 s" GetItem takes no time.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use serde_json::Value;

use super::harness::*;
use crate::delivery::{
    DeliveryJob, DeliveryQueue, DeliveryWorker, JobReport, MAX_ATTEMPTS, MessageId, QueueError,
    Received, Source, retry_delay,
};
use crate::ports::MockConnectionRepository;
use crate::{
    ClientNotifier, Clock, Connection, ConnectionId, ConnectionRepository, JoinError, Joined,
    MemberPage, NotifyError, Page, PageToken, RateLimit, Removed, RepositoryError, RoomName,
    Settings, Sleeper, Timestamp, TokenDecision, WebSocketService,
};

/// Time on tokio's clock: paused in these tests, it jumps to the next timer when every task
/// waits, so sleeps of seconds cost nothing and durations are exact.
struct TokioTime {
    start: tokio::time::Instant,
}

impl TokioTime {
    fn new() -> Arc<Self> {
        Arc::new(Self {
            start: tokio::time::Instant::now(),
        })
    }

    fn elapsed_ms(&self) -> u64 {
        self.start.elapsed().as_millis() as u64
    }
}

impl Clock for TokioTime {
    fn now(&self) -> Timestamp {
        Timestamp::from_millis(NOW + self.elapsed_ms())
    }
}

#[async_trait]
impl Sleeper for TokioTime {
    async fn sleep(&self, duration: Duration) {
        tokio::time::sleep(duration).await
    }
}

/// A queue that keeps everything, with each job's delay, and the dead letters with their reason.
#[derive(Clone, Default)]
struct KeepingQueue {
    jobs: Arc<Mutex<Vec<(DeliveryJob, Duration)>>>,
    dead: Arc<Mutex<Vec<(String, String)>>>,
    /// When set, every enqueue waits forever: a queue that never answers.
    hangs: bool,
}

#[async_trait]
impl DeliveryQueue for KeepingQueue {
    async fn enqueue(&self, jobs: Vec<DeliveryJob>) -> Result<(), QueueError> {
        self.enqueue_after(jobs, Duration::ZERO).await
    }

    async fn enqueue_after(
        &self,
        jobs: Vec<DeliveryJob>,
        delay: Duration,
    ) -> Result<(), QueueError> {
        if self.hangs {
            std::future::pending::<()>().await;
        }
        let mut kept = self.jobs.lock().unwrap();
        kept.extend(jobs.into_iter().map(|job| (job, delay)));
        Ok(())
    }

    async fn dead_letter(&self, body: &str, reason: &str) -> Result<(), QueueError> {
        self.dead
            .lock()
            .unwrap()
            .push((body.to_string(), reason.to_string()));
        Ok(())
    }
}

impl KeepingQueue {
    fn jobs(&self) -> Vec<(DeliveryJob, Duration)> {
        self.jobs.lock().unwrap().clone()
    }

    fn dead_letters(&self) -> Vec<(String, String)> {
        self.dead.lock().unwrap().clone()
    }
}

/// Answers 429 to every post to an id that starts with `t`, 410 to one that starts with `gone`,
/// and takes `each` per post.
struct Posts {
    each: Duration,
    sent: Mutex<Vec<String>>,
}

impl Posts {
    fn taking(each: Duration) -> Arc<Self> {
        Arc::new(Self {
            each,
            sent: Mutex::default(),
        })
    }

    fn delivered_to(&self) -> Vec<String> {
        self.sent.lock().unwrap().clone()
    }
}

#[async_trait]
impl ClientNotifier for Posts {
    async fn send(&self, to: &ConnectionId, _frame: &[u8]) -> Result<(), NotifyError> {
        tokio::time::sleep(self.each).await;
        if to.as_str().starts_with('t') {
            return Err(NotifyError::Throttled);
        }
        if to.as_str().starts_with("gone") {
            return Err(NotifyError::Gone);
        }
        self.sent.lock().unwrap().push(to.to_string());
        Ok(())
    }

    async fn disconnect(&self, _id: &ConnectionId) -> Result<(), NotifyError> {
        Ok(())
    }
}

fn job(json: &str) -> DeliveryJob {
    DeliveryJob {
        id: Some(MessageId::parse("m-1").unwrap()),
        sent_at: Some(NOW),
        ..DeliveryJob::from_json(json).unwrap()
    }
}

fn settings() -> Settings {
    Settings {
        presence_max_members: 0,
        job_safety_margin: Duration::from_secs(5),
        ..Settings::default()
    }
}

fn worker<R: ConnectionRepository>(
    repo: R,
    posts: Arc<Posts>,
    queue: &KeepingQueue,
    time: Arc<TokioTime>,
    settings: Settings,
) -> DeliveryWorker<R, Arc<Posts>> {
    DeliveryWorker::new(
        repo,
        posts,
        Arc::new(queue.clone()),
        time.clone(),
        time,
        settings,
    )
}

async fn run_for(
    worker: &DeliveryWorker<impl ConnectionRepository, Arc<Posts>>,
    job: DeliveryJob,
    deadline_in: Duration,
) -> JobReport {
    let deadline = Timestamp::from_millis(NOW).saturating_add(deadline_in);
    worker.run(job, deadline).await.unwrap()
}

#[tokio::test(start_paused = true)]
async fn a_worker_hands_a_recipient_throttled_past_its_retries_back_to_the_queue_after_a_pause() {
    let (queue, posts, time) = (
        KeepingQueue::default(),
        Posts::taking(Duration::ZERO),
        TokioTime::new(),
    );
    let worker = worker(
        MockConnectionRepository::new(),
        posts.clone(),
        &queue,
        time,
        settings(),
    );

    let report = run_for(
        &worker,
        job(r#"{"room":"lobby","data":1,"recipients":["t1","c1"]}"#),
        Duration::from_secs(60),
    )
    .await;

    assert_eq!(posts.delivered_to(), ["c1"]);
    assert_eq!(
        (
            report.delivery.unfinished,
            report.delivery.requeued,
            report.delivery.failed
        ),
        (1, 1, 0),
        "{report:?}"
    );
    let [(again, delay)] = &queue.jobs()[..] else {
        panic!("one hand-over: {:?}", queue.jobs());
    };
    assert_eq!(again.recipients, Some(vec![id("t1")]));
    assert_eq!((again.attempt, *delay), (1, retry_delay(1)));
    assert_eq!(
        again.id,
        Some(MessageId::parse("m-1").unwrap()),
        "the same message"
    );
}

#[tokio::test(start_paused = true)]
async fn after_the_last_attempt_the_remaining_recipients_are_dead_lettered_not_dropped() {
    let (queue, posts, time) = (
        KeepingQueue::default(),
        Posts::taking(Duration::ZERO),
        TokioTime::new(),
    );
    let worker = worker(
        MockConnectionRepository::new(),
        posts,
        &queue,
        time,
        settings(),
    );
    let last = DeliveryJob {
        attempt: MAX_ATTEMPTS,
        ..job(r#"{"room":"lobby","data":1,"recipients":["t1","t2"]}"#)
    };

    let report = run_for(&worker, last, Duration::from_secs(60)).await;

    assert!(
        queue.jobs().is_empty(),
        "not tried again: {:?}",
        queue.jobs()
    );
    assert_eq!(report.delivery.given_up, 2);
    let [(body, reason)] = &queue.dead_letters()[..] else {
        panic!("one dead letter: {:?}", queue.dead_letters());
    };
    let dead = DeliveryJob::from_json(body).unwrap();
    let mut recipients = dead.recipients.unwrap_or_default();
    recipients.sort();
    assert_eq!(recipients, [id("t1"), id("t2")]);
    assert!(reason.contains("gave up on 2 recipients"), "{reason}");
}

#[tokio::test(start_paused = true)]
async fn a_job_for_one_connection_hands_its_unfinished_post_back_instead_of_dropping_it() {
    let (queue, posts, time) = (
        KeepingQueue::default(),
        Posts::taking(Duration::ZERO),
        TokioTime::new(),
    );
    let worker = worker(
        MockConnectionRepository::new(),
        posts,
        &queue,
        time,
        settings(),
    );

    let report = run_for(
        &worker,
        job(r#"{"connection":"t1","data":1}"#),
        Duration::from_secs(60),
    )
    .await;

    assert_eq!(report.delivery.requeued, 1, "{report:?}");
    let [(again, delay)] = &queue.jobs()[..] else {
        panic!("one hand-over: {:?}", queue.jobs());
    };
    assert_eq!(again.target, crate::JobTarget::Connection(id("t1")));
    assert_eq!((again.attempt, *delay), (1, retry_delay(1)));
}

/// A store whose reads of one connection take 3 s and whose removes take 6 s: what a throttled
/// DynamoDB can look like. The connection is old enough that a 410 proves it gone.
#[derive(Default)]
struct SlowStore;

#[async_trait]
impl ConnectionRepository for SlowStore {
    async fn save(&self, _: &Connection) -> Result<(), RepositoryError> {
        Ok(())
    }
    async fn remove(&self, _: &ConnectionId) -> Result<Removed, RepositoryError> {
        tokio::time::sleep(Duration::from_secs(6)).await;
        Ok(Removed::default())
    }
    async fn get(
        &self,
        id: &ConnectionId,
        _: Timestamp,
    ) -> Result<Option<Connection>, RepositoryError> {
        tokio::time::sleep(Duration::from_secs(3)).await;
        Ok(Some(Connection {
            id: id.clone(),
            connected_at: Timestamp::from_millis(0),
            expires_at: Timestamp::from_millis(u64::MAX),
            principal: None,
            source_ip: None,
            user_agent: None,
            metadata: None,
            token_expires_at: None,
            reauth_grants: None,
        }))
    }
    async fn join(
        &self,
        _: &ConnectionId,
        _: &RoomName,
        _: usize,
        _: Timestamp,
    ) -> Result<Joined, JoinError> {
        Ok(Joined::Added)
    }
    async fn leave(&self, _: &ConnectionId, _: &RoomName) -> Result<(), RepositoryError> {
        tokio::time::sleep(Duration::from_secs(6)).await;
        Ok(())
    }
    async fn rooms_of(
        &self,
        _: &ConnectionId,
        _: Timestamp,
    ) -> Result<Vec<RoomName>, RepositoryError> {
        Ok(vec![room("lobby")])
    }
    async fn members_of(
        &self,
        _: &RoomName,
        _: Option<PageToken>,
        _: Timestamp,
    ) -> Result<Page<ConnectionId>, RepositoryError> {
        tokio::time::sleep(Duration::from_secs(3)).await;
        Ok(Page {
            items: vec![id("gone1"), id("c1")],
            next: None,
        })
    }
    async fn all_connections(
        &self,
        _: Option<PageToken>,
        _: Timestamp,
    ) -> Result<Page<ConnectionId>, RepositoryError> {
        Ok(Page {
            items: Vec::new(),
            next: None,
        })
    }
    async fn member_list(
        &self,
        _: &RoomName,
        _: Option<ConnectionId>,
        _: usize,
        _: Timestamp,
    ) -> Result<MemberPage, RepositoryError> {
        tokio::time::sleep(Duration::from_secs(3)).await;
        Ok(MemberPage::default())
    }
    async fn take_token(
        &self,
        _: &ConnectionId,
        _: RateLimit,
        _: Timestamp,
    ) -> Result<TokenDecision, RepositoryError> {
        Ok(TokenDecision::Taken)
    }
    async fn take_principal_token(
        &self,
        _: &crate::Principal,
        _: RateLimit,
        _: Timestamp,
    ) -> Result<TokenDecision, RepositoryError> {
        Ok(TokenDecision::Taken)
    }
    async fn connections_of(
        &self,
        _: &crate::Principal,
        _: Timestamp,
    ) -> Result<Vec<ConnectionId>, RepositoryError> {
        Ok(Vec::new())
    }
    async fn reauth(
        &self,
        _: &ConnectionId,
        _: Timestamp,
        _: &crate::RoomGrants,
    ) -> Result<(), RepositoryError> {
        Ok(())
    }
}

#[tokio::test(start_paused = true)]
async fn a_slow_store_on_the_410_path_cannot_keep_a_worker_past_its_deadline() {
    let (queue, posts, time) = (
        KeepingQueue::default(),
        Posts::taking(Duration::ZERO),
        TokioTime::new(),
    );
    let worker = worker(
        SlowStore,
        posts,
        &queue,
        time.clone(),
        Settings {
            presence_max_members: 100,
            ..settings()
        },
    );
    // Its deadline in 6 s, the margin 5 s: 1 s to start anything, then the 410's GetItem (3 s)
    // and remove (6 s) would run to 9 s.
    let deadline = Duration::from_secs(6);

    run_for(
        &worker,
        job(r#"{"room":"lobby","data":1,"recipients":["gone1","c1"]}"#),
        deadline,
    )
    .await;

    assert!(
        time.elapsed_ms() <= deadline.as_millis() as u64,
        "the job ended {} ms after its start, its deadline was {} ms",
        time.elapsed_ms(),
        deadline.as_millis()
    );
}

#[tokio::test(start_paused = true)]
async fn a_page_read_that_would_outlast_the_margin_sends_the_job_back_as_its_next_attempt() {
    let (queue, posts, time) = (
        KeepingQueue::default(),
        Posts::taking(Duration::ZERO),
        TokioTime::new(),
    );
    let worker = worker(SlowStore, posts.clone(), &queue, time.clone(), settings());

    // The page read takes 3 s; the margin starts 2 s from now.
    let report = run_for(
        &worker,
        job(r#"{"room":"lobby","data":1}"#),
        Duration::from_secs(7),
    )
    .await;

    assert!(posts.delivered_to().is_empty());
    assert!(time.elapsed_ms() <= 7_000, "{} ms", time.elapsed_ms());
    let [(again, _)] = &queue.jobs()[..] else {
        panic!("the job back: {:?}", queue.jobs());
    };
    assert_eq!(
        (again.attempt, &again.cursor, &again.recipients),
        (1, &None, &None)
    );
    assert_eq!(report.handed_over, 1);
}

#[tokio::test(start_paused = true)]
async fn a_hand_over_the_queue_never_answers_fails_the_job_before_its_deadline() {
    let queue = KeepingQueue {
        hangs: true,
        ..KeepingQueue::default()
    };
    let (posts, time) = (Posts::taking(Duration::from_secs(1)), TokioTime::new());
    let worker = worker(
        MockConnectionRepository::new(),
        posts,
        &queue,
        time.clone(),
        Settings {
            fanout_concurrency: std::num::NonZeroUsize::MIN,
            ..settings()
        },
    );
    let deadline = Timestamp::from_millis(NOW + 8_000);

    // Posts of 1 s one at a time: three start before the margin, the rest must be handed over.
    let result = worker
        .run(
            job(r#"{"room":"lobby","data":1,"recipients":["c1","c2","c3","c4","c5","c6"]}"#),
            deadline,
        )
        .await;

    assert!(
        matches!(result, Err(crate::delivery::WorkError::Enqueue(_))),
        "the transport must redeliver it: {result:?}"
    );
    assert!(time.elapsed_ms() <= 8_000, "{} ms", time.elapsed_ms());
}

#[tokio::test(start_paused = true)]
async fn the_too_late_path_counts_attempts_so_a_job_always_late_reaches_the_dead_letters() {
    let (queue, posts, time) = (
        KeepingQueue::default(),
        Posts::taking(Duration::ZERO),
        TokioTime::new(),
    );
    let worker = worker(
        MockConnectionRepository::new(),
        posts,
        &queue,
        time,
        settings(),
    );
    // Inside the margin already: nothing may start.
    let too_late = Duration::from_secs(3);

    run_for(&worker, job(r#"{"room":"lobby","data":1}"#), too_late).await;
    let last = DeliveryJob {
        attempt: MAX_ATTEMPTS,
        ..job(r#"{"room":"lobby","data":2}"#)
    };
    let report = run_for(&worker, last, too_late).await;

    assert_eq!(
        queue.jobs()[0].0.attempt,
        1,
        "sent back as its next attempt"
    );
    assert_eq!(queue.jobs().len(), 1, "the last one was not sent back");
    assert!(
        report
            .dead_lettered
            .is_some_and(|reason| reason.contains("too late"))
    );
    assert_eq!(queue.dead_letters().len(), 1);
}

fn received(body: &str, source: Source, sent_at: u64) -> Received<'_> {
    static ID: std::sync::LazyLock<MessageId> =
        std::sync::LazyLock::new(|| MessageId::parse("sqs-1").unwrap());
    Received {
        id: &ID,
        sent_at: Timestamp::from_millis(sent_at),
        body,
        source,
    }
}

#[tokio::test(start_paused = true)]
async fn a_message_whose_frame_is_over_the_limit_is_dead_lettered_at_once_with_its_reason() {
    let (queue, posts, time) = (
        KeepingQueue::default(),
        Posts::taking(Duration::ZERO),
        TokioTime::new(),
    );
    let worker = worker(
        MockConnectionRepository::new(),
        posts.clone(),
        &queue,
        time,
        settings(),
    );
    let big = format!(
        r#"{{"connection":"c1","data":"{}"}}"#,
        "x".repeat(200 * 1024)
    );

    let report = worker
        .handle(
            received(&big, Source::Backend, NOW),
            Timestamp::from_millis(NOW + 60_000),
        )
        .await
        .unwrap();

    assert!(posts.delivered_to().is_empty());
    let [(body, reason)] = &queue.dead_letters()[..] else {
        panic!("one dead letter: {:?}", queue.dead_letters());
    };
    assert!(reason.contains("cannot be sent"), "{reason}");
    assert!(body.contains("xxxx"), "the job as it was");
    assert_eq!(report.dead_lettered.as_deref(), Some(reason.as_str()));
}

#[tokio::test(start_paused = true)]
async fn a_backend_job_that_speaks_as_a_user_or_picks_recipients_is_refused_and_reaches_nobody() {
    let (queue, posts, time) = (
        KeepingQueue::default(),
        Posts::taking(Duration::ZERO),
        TokioTime::new(),
    );
    let worker = worker(
        MockConnectionRepository::new(),
        posts.clone(),
        &queue,
        time,
        settings(),
    );
    let spoofs = [
        r#"{"room":"team:secret","data":1,"from":"alice0000000=","principal":"alice@corp.example"}"#,
        r#"{"room":"team:secret","data":1,"recipients":["carol"]}"#,
        r#"{"connection":"bob","data":1,"from":"alice0000000="}"#,
    ];

    for spoof in spoofs {
        worker
            .handle(
                received(spoof, Source::Backend, NOW),
                Timestamp::from_millis(NOW + 60_000),
            )
            .await
            .unwrap();
    }

    assert!(
        posts.delivered_to().is_empty(),
        "{:?}",
        posts.delivered_to()
    );
    let reasons: Vec<String> = queue.dead_letters().into_iter().map(|(_, r)| r).collect();
    assert_eq!(reasons.len(), 3);
    assert!(
        reasons.iter().all(|r| r.contains("the service's own")),
        "{reasons:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_backend_job_carries_the_time_the_queue_first_received_it_on_every_redelivery() {
    let (queue, posts, time) = (
        KeepingQueue::default(),
        Posts::taking(Duration::ZERO),
        TokioTime::new(),
    );
    let worker = worker(
        MockConnectionRepository::new(),
        posts,
        &queue,
        time,
        settings(),
    );
    let body = r#"{"room":"lobby","data":1,"recipients":["t1"]}"#;
    let first_sent = NOW - 5_000;

    worker
        .handle(
            received(body, Source::Service, first_sent),
            Timestamp::from_millis(NOW + 60_000),
        )
        .await
        .unwrap();
    tokio::time::advance(Duration::from_secs(30)).await;
    worker
        .handle(
            received(body, Source::Service, first_sent),
            Timestamp::from_millis(NOW + 90_000),
        )
        .await
        .unwrap();

    let sent: Vec<Option<u64>> = queue.jobs().iter().map(|(job, _)| job.sent_at).collect();
    assert_eq!(sent, [Some(first_sent), Some(first_sent)]);
}

/// A service with `queue`, whose room holds `members`, posts taking `each`.
fn service_with_queue(
    members: &'static [&'static str],
    posts: Arc<Posts>,
    queue: &KeepingQueue,
    time: Arc<TokioTime>,
    settings: Settings,
) -> WebSocketService<MockConnectionRepository, Arc<Posts>> {
    let mut repo = MockConnectionRepository::new();
    repo.expect_rooms_of()
        .returning(|_, _| Ok(vec![room("lobby")]));
    repo.expect_members_of().returning(move |_, _, _| {
        Ok(Page {
            items: members.iter().map(|m| id(m)).collect(),
            next: None,
        })
    });
    WebSocketService::new(repo, posts, time.clone(), time, settings)
        .with_delivery_queue(Arc::new(queue.clone()))
}

#[tokio::test(start_paused = true)]
async fn the_inline_part_hands_a_throttled_recipient_to_the_queue_and_the_ack_says_so() {
    let (queue, posts, time) = (
        KeepingQueue::default(),
        Posts::taking(Duration::ZERO),
        TokioTime::new(),
    );
    let service = service_with_queue(&["a", "t1"], posts.clone(), &queue, time, settings());

    service
        .handle_message(
            &sender("a"),
            br#"{"action":"publish","room":"lobby","data":1,"requestId":"r"}"#,
        )
        .await
        .unwrap();

    assert_eq!(
        posts.delivered_to(),
        ["a", "a"],
        "the message, then the ack"
    );
    let [(again, delay)] = &queue.jobs()[..] else {
        panic!("one hand-over: {:?}", queue.jobs());
    };
    assert_eq!(
        (again.recipients.clone(), again.attempt, *delay),
        (Some(vec![id("t1")]), 1, retry_delay(1))
    );
    assert_eq!(
        again.from,
        Some(id("a")),
        "a service job: it keeps its sender"
    );
}

#[tokio::test(start_paused = true)]
async fn the_inline_part_stops_starting_posts_before_api_gateways_29_seconds_and_hands_over_the_rest()
 {
    let (queue, posts, time) = (
        KeepingQueue::default(),
        Posts::taking(Duration::from_secs(3)),
        TokioTime::new(),
    );
    let members: &'static [&'static str] =
        &["m0", "m1", "m2", "m3", "m4", "m5", "m6", "m7", "m8", "m9"];
    let settings = Settings {
        fanout_concurrency: std::num::NonZeroUsize::MIN,
        ..settings()
    };
    let service = service_with_queue(members, posts.clone(), &queue, time.clone(), settings);
    let deadline = Timestamp::from_millis(NOW + 29_000);

    service
        .handle_message_until(
            &sender("m0"),
            br#"{"action":"publish","room":"lobby","data":1}"#,
            Some(deadline),
        )
        .await
        .unwrap();

    // Posts of 3 s one at a time: those starting at 0, 3, ... 21 s end before 24 s, where the
    // margin starts; the rest is handed over.
    assert_eq!(posts.delivered_to().len(), 8);
    let handed: Vec<ConnectionId> = queue
        .jobs()
        .into_iter()
        .flat_map(|(job, _)| job.recipients.unwrap_or_default())
        .collect();
    assert_eq!(handed, [id("m8"), id("m9")]);
    assert!(time.elapsed_ms() < 29_000, "{} ms", time.elapsed_ms());
}

#[test]
fn a_job_body_holds_no_character_sqs_refuses_and_reads_back_the_same() {
    let data = serde_json::value::RawValue::from_string("\"a\u{FFFE}b\u{FFFF}\"".into()).unwrap();
    let job = DeliveryJob {
        principal: Some(crate::Principal::parse("p\u{FFFF}").unwrap()),
        from: Some(id("a")),
        ..DeliveryJob::new(
            MessageId::parse("m").unwrap(),
            crate::JobTarget::Everyone,
            data,
        )
    };

    let body = job.to_json();

    assert!(!body.contains(['\u{FFFE}', '\u{FFFF}']), "{body}");
    let back = DeliveryJob::from_json(&body).unwrap();
    assert_eq!(back.principal, job.principal);
    let value: Value = serde_json::from_str(back.data.get()).unwrap();
    assert_eq!(value, "a\u{FFFE}b\u{FFFF}");
}
