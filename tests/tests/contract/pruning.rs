//! Pruning on a 410, through the domain's fan-out, against each store: the two ways a 410 has
//! pruned wrongly. Each check takes the store and `orphan`, which deletes a connection's row but
//! not its memberships (what a `remove` whose membership batch failed leaves behind).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use adapters::memory::RecordingNotifier;
use domain::{
    Clock, Connection, ConnectionId, ConnectionRepository, NotifyError, Sender, Settings, Sleeper,
    Timestamp, WebSocketService,
};

use super::{NOW, id, live, members, room};

struct At(Timestamp);

impl Clock for At {
    fn now(&self) -> Timestamp {
        self.0
    }
}

struct NoWait;

#[async_trait::async_trait]
impl Sleeper for NoWait {
    async fn sleep(&self, _: Duration) {}
}

/// `publisher` publishes to room `r` at `NOW`; every post to `gone` answers 410.
async fn publish_with_gone<R: ConnectionRepository + 'static>(
    repo: &Arc<R>,
    publisher: &str,
    gone: &ConnectionId,
) {
    let notifier = RecordingNotifier::new();
    notifier.always_answer(gone, NotifyError::Gone);
    let service = WebSocketService::new(
        repo.clone(),
        notifier,
        Arc::new(At(NOW)),
        Arc::new(NoWait),
        Settings::default(),
    );
    service
        .handle_message(
            &Sender::new(id(publisher), None),
            br#"{"action":"publish","room":"r","data":1}"#,
        )
        .await
        .unwrap();
}

pub async fn an_orphan_membership_is_listed_until_a_410_prunes_it<R, F, Fut, O, OFut>(
    fresh: F,
    orphan: O,
) where
    R: ConnectionRepository + 'static,
    F: Fn(usize) -> Fut,
    Fut: Future<Output = R>,
    O: Fn(Arc<R>, ConnectionId) -> OFut,
    OFut: Future<Output = ()>,
{
    let repo = Arc::new(fresh(100).await);
    for raw in ["a", "b"] {
        repo.save(&live(raw)).await.unwrap();
        repo.join(&id(raw), &room("r"), 50, NOW).await.unwrap();
    }
    orphan(repo.clone(), id("b")).await;
    let (mut listed, _) = members(&repo, "r").await;
    listed.sort();
    assert_eq!(
        listed,
        [id("a"), id("b")],
        "a store lists an orphan membership"
    );

    publish_with_gone(&repo, "a", &id("b")).await;

    assert_eq!(
        members(&repo, "r").await.0,
        [id("a")],
        "the 410 pruned the orphan"
    );
}

pub async fn a_410_during_connect_keeps_the_new_connection<R, F, Fut>(fresh: F)
where
    R: ConnectionRepository + 'static,
    F: Fn(usize) -> Fut,
    Fut: Future<Output = R>,
{
    let repo = Arc::new(fresh(100).await);
    let newcomer = Connection {
        connected_at: Timestamp::from_millis(NOW.as_millis() - 10_000),
        ..live("new")
    };
    for connection in [live("a"), newcomer] {
        repo.save(&connection).await.unwrap();
        repo.join(&connection.id, &room("r"), 50, NOW)
            .await
            .unwrap();
    }

    publish_with_gone(&repo, "a", &id("new")).await;

    assert!(
        repo.get(&id("new"), NOW).await.unwrap().is_some(),
        "its row was deleted"
    );
    let (mut listed, _) = members(&repo, "r").await;
    listed.sort();
    assert_eq!(listed, [id("a"), id("new")]);
}

/// The pruning checks for a store given as `async fn(page_size) -> R` and an `orphan` maker.
#[macro_export]
macro_rules! pruning_contract {
    ($fresh:path, $orphan:path) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn an_orphan_membership_is_listed_until_a_410_prunes_it() {
            $crate::contract::an_orphan_membership_is_listed_until_a_410_prunes_it($fresh, $orphan)
                .await;
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn a_410_during_connect_keeps_the_new_connection() {
            $crate::contract::a_410_during_connect_keeps_the_new_connection($fresh).await;
        }
    };
}
