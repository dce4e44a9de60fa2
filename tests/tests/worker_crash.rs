//! Crash injection: delivery workers dropped at random points mid-page, their jobs redelivered
//! by the in-memory queue (as SQS redelivers a message whose worker died before deleting it).
//! Delivery must end complete: every live member has the message at least once, every copy
//! carries the same id and the same place in the room's stream (`seq`).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use adapters::clock::{SystemClock, TokioSleeper};
use adapters::memory::{
    InMemoryConnectionRepository, InMemoryRoomLog, MemoryQueue, RecordingNotifier,
};
use async_trait::async_trait;
use domain::delivery::{DeliveryWorker, Received, Source};
use domain::stream::RoomLog;
use domain::testing::{id, room};
use domain::{
    ClientNotifier, Clock, Connection, ConnectionId, ConnectionRepository, NotifyError, Settings,
    Timestamp,
};
use serde_json::Value;

const MEMBERS: usize = 250;
/// Most leases one scenario takes before it decides delivery never ends.
const MAX_LEASES: usize = 2_000;

/// Pending once before completing: a point where a worker can be cut off.
struct YieldOnce(bool);

impl Future for YieldOnce {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.0 {
            return Poll::Ready(());
        }
        self.0 = true;
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

/// Records like [`RecordingNotifier`], with a suspension point in every post.
struct Interruptible(RecordingNotifier);

#[async_trait]
impl ClientNotifier for Interruptible {
    async fn send(&self, to: &ConnectionId, frame: &[u8]) -> Result<(), NotifyError> {
        YieldOnce(false).await;
        self.0.send(to, frame).await
    }
    async fn disconnect(&self, id: &ConnectionId) -> Result<(), NotifyError> {
        self.0.disconnect(id).await
    }
}

async fn room_of_members(repo: &InMemoryConnectionRepository) -> Vec<ConnectionId> {
    let now = SystemClock.now();
    let mut members = Vec::new();
    for n in 0..MEMBERS {
        let member = id(&format!("m{n:04}="));
        let connection = Connection {
            id: member.clone(),
            expires_at: Timestamp::from_millis(now.as_millis() + 3_600_000),
            connected_at: Timestamp::from_millis(now.as_millis() - 3_600_000),
            principal: None,
            source_ip: None,
            user_agent: None,
            metadata: None,
            token_expires_at: None,
            reauth_grants: None,
        };
        repo.save(&connection).await.unwrap();
        repo.join(&member, &room("lobby"), 50, now).await.unwrap();
        members.push(member);
    }
    members
}

/// Runs every job in `queue`, each to completion or (the first one always, the others with
/// probability 1/2) cut off after a random number of polls, its lease dropped unsettled and so
/// redelivered. Returns how many were cut off.
fn drain_with_crashes(
    queue: &MemoryQueue,
    worker: &DeliveryWorker<Arc<InMemoryConnectionRepository>, Arc<Interruptible>>,
    rng: &mut fastrand::Rng,
) -> usize {
    let waker = futures::task::noop_waker();
    let mut cx = Context::from_waker(&waker);
    let mut crashes = 0;
    for taken in 0..MAX_LEASES {
        let Some(lease) = take_one(queue) else {
            return crashes;
        };
        let deadline = Timestamp::from_millis(SystemClock.now().as_millis() + 600_000);
        // One queue for the backend's job and the service's own: the service's schema reads both.
        let message = Received {
            id: lease.message_id(),
            sent_at: lease.sent_at(),
            body: lease.body(),
            source: Source::Service,
        };
        let mut run = Box::pin(worker.handle(message, deadline));
        // The first job always crashes, so every scenario has a redelivery; a page of 40 at 8
        // in flight needs more polls than 10, so a cut-off is always mid-page.
        let polls = if taken == 0 || rng.bool() {
            rng.usize(1..10)
        } else {
            usize::MAX
        };
        let mut done = false;
        for _ in 0..polls {
            if let Poll::Ready(result) = run.as_mut().poll(&mut cx) {
                result.unwrap();
                done = true;
                break;
            }
        }
        drop(run);
        if done {
            lease.ack();
        } else {
            crashes += 1;
            drop(lease);
        }
    }
    panic!("delivery did not end within {MAX_LEASES} leases")
}

/// One ready message, without waiting (everything here is in memory and already enqueued).
fn take_one(queue: &MemoryQueue) -> Option<adapters::memory::Lease> {
    let waker = futures::task::noop_waker();
    let mut cx = Context::from_waker(&waker);
    let mut receive = Box::pin(queue.receive(1, std::time::Duration::ZERO));
    for _ in 0..4 {
        if let Poll::Ready(mut leases) = receive.as_mut().poll(&mut cx) {
            return leases.pop();
        }
    }
    None
}

#[tokio::test]
async fn workers_killed_mid_page_still_deliver_to_every_member_with_one_id_and_one_seq() {
    for seed in 0..12 {
        let repo = Arc::new(InMemoryConnectionRepository::with_page_size(40));
        let members = room_of_members(&repo).await;
        let notifier = Arc::new(Interruptible(RecordingNotifier::new()));
        let queue = MemoryQueue::new(u32::MAX);
        let log = Arc::new(InMemoryRoomLog::default());
        let worker = DeliveryWorker::new(
            repo.clone(),
            notifier.clone(),
            Arc::new(queue.clone()),
            Arc::new(SystemClock),
            Arc::new(TokioSleeper),
            Settings {
                fanout_concurrency: std::num::NonZeroUsize::new(8).unwrap(),
                presence_max_members: 0,
                ..Settings::default()
            },
        )
        .with_room_log(log.clone());
        let message_id = queue.send_raw(r#"{"room":"lobby","data":{"n":1}}"#);

        let crashes = drain_with_crashes(&queue, &worker, &mut fastrand::Rng::with_seed(seed));

        assert!(crashes > 0, "seed {seed}: no worker was cut off");
        assert_eq!(queue.outstanding(), 0);
        let sent = notifier.0.sent();
        for member in &members {
            assert!(
                sent.iter().any(|(to, _)| to == member),
                "seed {seed}: {member} never got the message ({crashes} crashes)"
            );
        }
        for (to, frame) in &sent {
            let frame: Value = serde_json::from_slice(frame).unwrap();
            assert_eq!(
                frame["id"],
                message_id.as_str(),
                "seed {seed}: the copy to {to}"
            );
            assert_eq!(frame["seq"], 1, "seed {seed}: the copy to {to}");
        }
        assert_eq!(
            log.latest(&room("lobby")).await.unwrap(),
            Some(1),
            "seed {seed}: the redeliveries took no second place in the stream"
        );
    }
}
