//! Fault injection on real DynamoDB (moto): a fan-out to 10 000 connections where 10 % are gone
//! and 5 % are throttled once, storage failures injected through a failing wrapper, and rows
//! left behind by clients that vanished without a `$disconnect`.

use std::collections::{BTreeMap, HashSet};
use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use adapters::dynamodb::{
    DynamoConnectionRepository, DynamoSettings, Seed, create_table_if_missing,
};
use adapters::memory::RecordingNotifier;
use adapters::wiring;
use async_trait::async_trait;
use domain::{
    Clock, Connection, ConnectionId, ConnectionRepository, HandleError, Handled, JoinError, Joined,
    MemberPage, NotifyError, Page, PageToken, Removed, RepositoryError, RetryPolicy, RoomName,
    Sender, Settings, Timestamp,
};
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tests::{dynamodb_client, dynamodb_endpoint, unique_table};
use tokio_tungstenite::connect_async;
use tokio_tungstenite::tungstenite::Message;

use domain::testing::{id, room};

fn now() -> Timestamp {
    adapters::clock::SystemClock.now()
}

/// A connection made an hour ago: past the grace a 410 gets while `$connect` may still run, so
/// a 410 for it means gone.
fn live(raw: &str) -> Connection {
    Connection {
        id: id(raw),
        connected_at: Timestamp::from_millis(now().as_millis() - 3_600_000),
        expires_at: now().saturating_add(domain::API_GATEWAY_MAX_CONNECTION_DURATION),
        principal: None,
        source_ip: None,
        user_agent: None,
        metadata: None,
        token_expires_at: None,
        reauth_grants: None,
    }
}

async fn repository(page_size: i32) -> DynamoConnectionRepository {
    let client = dynamodb_client().await;
    let table = unique_table("faults");
    create_table_if_missing(&client, &table).await.unwrap();
    DynamoConnectionRepository::new(
        client,
        DynamoSettings {
            page_size,
            ..DynamoSettings::new(table)
        },
    )
}

/// A local gateway storing in a fresh table on moto, and the adapter for that same table, so a
/// test can plant rows the gateway did not write (a client that vanished without `$disconnect`).
async fn gateway_on_moto(
    prefix: &str,
    extra: &[&str],
) -> (local_gateway::RunningGateway, DynamoConnectionRepository) {
    let table = unique_table(prefix);
    let endpoint = dynamodb_endpoint();
    let mut flags = vec!["--dynamodb-endpoint", &endpoint, "--table", &table];
    flags.extend_from_slice(extra);
    let gw = tests::ws::gateway(&flags).await;
    let repo =
        DynamoConnectionRepository::new(dynamodb_client().await, DynamoSettings::new(&table));
    (gw, repo)
}

async fn everyone<R: ConnectionRepository + ?Sized>(repo: &R) -> Vec<ConnectionId> {
    domain::testing::everyone(repo, now()).await
}

async fn members<R: ConnectionRepository + ?Sized>(repo: &R, name: &str) -> Vec<ConnectionId> {
    domain::testing::members(repo, &room(name), now()).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fan_out_to_ten_thousand_with_gone_and_throttled_recipients_reaches_every_live_one_exactly_once()
 {
    let repo = Arc::new(repository(1_000).await);
    let setup = std::time::Instant::now();
    let ids: Vec<String> = (0..10_000).map(|i| format!("c{i:05}")).collect();
    let is_gone = |i: usize| i.is_multiple_of(10); // 10 %
    let is_throttled = |i: usize| i % 20 == 1; // 5 %, first attempt only
    // Memberships for 200 of them, half gone, to see the cascade: the first 100 of each kind.
    let watches = |i: usize| (is_gone(i) && i < 1_000) || (is_throttled(i) && i < 2_000);
    // Batch writes, 25 items a call: a `save` per row and a `join` per membership took minutes on
    // moto (every transaction copies the whole table there).
    let seeds: Vec<Seed> = ids
        .iter()
        .enumerate()
        .map(|(i, raw)| Seed {
            connection: live(raw),
            rooms: if watches(i) {
                vec![room("watch")]
            } else {
                vec![]
            },
        })
        .collect();
    repo.save_many(&seeds).await.unwrap();
    assert_eq!(members(repo.as_ref(), "watch").await.len(), 200);
    eprintln!(
        "10 000 connections and 200 memberships seeded on moto in {:?}",
        setup.elapsed()
    );
    let notifier = Arc::new(RecordingNotifier::new());
    for (i, raw) in ids.iter().enumerate() {
        if is_gone(i) {
            notifier.always_answer(&id(raw), NotifyError::Gone);
        } else if is_throttled(i) {
            notifier.answer_next(&id(raw), [NotifyError::Throttled]);
        }
    }
    let settings = Settings {
        fanout_concurrency: NonZeroUsize::new(64).unwrap(),
        retry: RetryPolicy {
            max_attempts: 3,
            max_throttled_attempts: 3,
            base_delay: Duration::from_millis(5),
            max_delay: Duration::from_millis(50),
        },
        ..Settings::default()
    };
    let service = wiring::service(repo.clone(), notifier.clone(), settings);
    let sender = Sender::new(id(&ids[1]), None);

    let started = std::time::Instant::now();
    let handled = service
        .handle_message(
            &sender,
            br#"{"action":"sendmessage","data":"fault injection"}"#,
        )
        .await
        .unwrap();
    eprintln!("fan-out to 10 000 on moto took {:?}", started.elapsed());

    let Handled::Done { report, .. } = handled else {
        panic!("{handled:?}")
    };
    assert_eq!(
        (report.delivered, report.gone, report.failed),
        (9_000, 1_000, 0)
    );
    let mut per_recipient: BTreeMap<ConnectionId, usize> = BTreeMap::new();
    // Only the message: once the gone half of "watch" is pruned, the room is small enough for
    // presence, and its live members are also told who left.
    for (to, frame) in notifier.sent() {
        let frame: Value = serde_json::from_slice(&frame).unwrap();
        if frame["type"] == "message" {
            *per_recipient.entry(to).or_default() += 1;
        }
    }
    assert_eq!(per_recipient.len(), 9_000);
    assert!(
        per_recipient.values().all(|&n| n == 1),
        "a live connection got the message twice"
    );
    let left: HashSet<ConnectionId> = everyone(repo.as_ref()).await.into_iter().collect();
    assert_eq!(left.len(), 9_000);
    assert!(
        ids.iter()
            .enumerate()
            .all(|(i, raw)| left.contains(&id(raw)) != is_gone(i))
    );
    assert_eq!(
        members(repo.as_ref(), "watch").await.len(),
        100,
        "the gone members' memberships were removed with them"
    );
}

/// Fails the named operations, passing everything else to the real adapter.
struct Failing<R> {
    inner: R,
    failing: Mutex<HashSet<&'static str>>,
}

impl<R> Failing<R> {
    fn new(inner: R) -> Self {
        Self {
            inner,
            failing: Mutex::default(),
        }
    }
    fn fail(&self, operation: &'static str) {
        self.failing.lock().unwrap().insert(operation);
    }
    fn heal(&self) {
        self.failing.lock().unwrap().clear();
    }
    fn check(&self, operation: &'static str) -> Result<(), RepositoryError> {
        if self.failing.lock().unwrap().contains(operation) {
            return Err(RepositoryError::Unavailable(format!(
                "injected failure in {operation}"
            )));
        }
        Ok(())
    }
}

#[async_trait]
impl<R: ConnectionRepository> ConnectionRepository for Failing<R> {
    async fn save(&self, c: &Connection) -> Result<(), RepositoryError> {
        self.check("save")?;
        self.inner.save(c).await
    }
    async fn remove(&self, id: &ConnectionId) -> Result<Removed, RepositoryError> {
        self.check("remove")?;
        self.inner.remove(id).await
    }
    async fn get(
        &self,
        id: &ConnectionId,
        now: Timestamp,
    ) -> Result<Option<Connection>, RepositoryError> {
        self.check("get")?;
        self.inner.get(id, now).await
    }
    async fn join(
        &self,
        id: &ConnectionId,
        room: &RoomName,
        max: usize,
        now: Timestamp,
    ) -> Result<Joined, JoinError> {
        self.check("join")?;
        self.inner.join(id, room, max, now).await
    }
    async fn leave(&self, id: &ConnectionId, room: &RoomName) -> Result<(), RepositoryError> {
        self.check("leave")?;
        self.inner.leave(id, room).await
    }
    async fn rooms_of(
        &self,
        id: &ConnectionId,
        now: Timestamp,
    ) -> Result<Vec<RoomName>, RepositoryError> {
        self.check("rooms_of")?;
        self.inner.rooms_of(id, now).await
    }
    async fn members_of(
        &self,
        room: &RoomName,
        page: Option<PageToken>,
        now: Timestamp,
    ) -> Result<Page<ConnectionId>, RepositoryError> {
        self.check("members_of")?;
        self.inner.members_of(room, page, now).await
    }
    async fn all_connections(
        &self,
        page: Option<PageToken>,
        now: Timestamp,
    ) -> Result<Page<ConnectionId>, RepositoryError> {
        if page.is_some() {
            self.check("all_connections after the first page")?;
        }
        self.inner.all_connections(page, now).await
    }
    async fn member_list(
        &self,
        room: &RoomName,
        after: Option<ConnectionId>,
        limit: usize,
        now: Timestamp,
    ) -> Result<MemberPage, RepositoryError> {
        self.check("member_list")?;
        self.inner.member_list(room, after, limit, now).await
    }
    async fn take_token(
        &self,
        id: &ConnectionId,
        limit: domain::RateLimit,
        now: Timestamp,
    ) -> Result<domain::TokenDecision, RepositoryError> {
        self.check("take_token")?;
        self.inner.take_token(id, limit, now).await
    }
    async fn take_principal_token(
        &self,
        principal: &domain::Principal,
        limit: domain::RateLimit,
        now: Timestamp,
    ) -> Result<domain::TokenDecision, RepositoryError> {
        self.check("take_principal_token")?;
        self.inner.take_principal_token(principal, limit, now).await
    }
    async fn connections_of(
        &self,
        principal: &domain::Principal,
        now: Timestamp,
    ) -> Result<Vec<domain::ConnectionId>, RepositoryError> {
        self.check("connections_of")?;
        self.inner.connections_of(principal, now).await
    }
    async fn reauth(
        &self,
        id: &domain::ConnectionId,
        expires_at: Timestamp,
        grants: &domain::RoomGrants,
    ) -> Result<(), RepositoryError> {
        self.check("reauth")?;
        self.inner.reauth(id, expires_at, grants).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn storage_failures_are_reported_and_leave_no_half_written_state() {
    let repo = Arc::new(Failing::new(repository(10).await));
    let notifier = Arc::new(RecordingNotifier::new());
    let service = wiring::service(repo.clone(), notifier.clone(), Settings::default());

    // A failed connect stores nothing: API Gateway refuses the socket, the client retries.
    repo.fail("save");
    assert!(
        service
            .connect(domain::ConnectRequest::new(id("a"), now()))
            .await
            .is_err()
    );
    repo.heal();
    assert_eq!(repo.get(&id("a"), now()).await.unwrap(), None);

    for i in 0..25 {
        service
            .connect(domain::ConnectRequest::new(id(&format!("m{i:02}")), now()))
            .await
            .unwrap();
    }
    let sender = Sender::new(id("m00"), None);

    // A failed join leaves no membership.
    repo.fail("join");
    let result = service
        .handle_message(&sender, br#"{"action":"join","room":"r"}"#)
        .await;
    assert!(
        matches!(result, Err(HandleError::Repository(_))),
        "{result:?}"
    );
    repo.heal();
    assert!(repo.rooms_of(&sender.id, now()).await.unwrap().is_empty());

    // A read failure mid-fan-out stops it and says how far it got; nothing is pruned wrongly.
    repo.fail("all_connections after the first page");
    let result = service
        .handle_message(&sender, br#"{"action":"sendmessage","data":1}"#)
        .await;
    let Err(HandleError::FanOut(e)) = result else {
        panic!("{result:?}")
    };
    assert_eq!(e.report.delivered, 10, "the first page of 10 was delivered");
    repo.heal();
    assert_eq!(everyone(repo.as_ref()).await.len(), 25);

    // A failed disconnect leaves the row for the retry (or for 410 and TTL), never half of it.
    service
        .handle_message(&sender, br#"{"action":"join","room":"r"}"#)
        .await
        .unwrap();
    repo.fail("remove");
    assert!(service.disconnect(&sender.id).await.is_err());
    repo.heal();
    assert_eq!(
        repo.rooms_of(&sender.id, now()).await.unwrap(),
        vec![room("r")]
    );
    let removed = service.disconnect(&sender.id).await.unwrap();
    assert_eq!(removed.rooms, vec![room("r")]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_left_by_clients_that_never_sent_disconnect_are_pruned_by_410_or_hidden_by_ttl() {
    // Presence off: a join's presence post would find the stale row first (tested below).
    let (gw, repo) = gateway_on_moto("stale", &["--presence-max-members", "0"]).await;
    // A connection whose socket died without $disconnect: its row and membership remain.
    repo.save(&live("STALEstaleSTALE=")).await.unwrap();
    repo.join(&id("STALEstaleSTALE="), &room("r"), 50, now())
        .await
        .unwrap();
    // And one API Gateway closed hours ago, not yet deleted by DynamoDB's TTL.
    let expired = Connection {
        connected_at: Timestamp::from_millis(0),
        expires_at: Timestamp::from_millis(now().as_millis() - 1_000),
        ..live("EXPIREDexpired0=")
    };
    repo.save(&expired).await.unwrap();

    let (mut client, _) = connect_async(gw.ws_url()).await.unwrap();
    client
        .send(Message::Text(
            json!({"action": "join", "room": "r", "requestId": "j"})
                .to_string()
                .into(),
        ))
        .await
        .unwrap();
    client
        .send(Message::Text(
            json!({"action": "sendmessage", "data": 1, "requestId": "all"})
                .to_string()
                .into(),
        ))
        .await
        .unwrap();
    let ack = loop {
        let message = tokio::time::timeout(Duration::from_secs(10), client.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        let Message::Text(text) = message else {
            continue;
        };
        let frame: Value = serde_json::from_str(&text).unwrap();
        if frame["requestId"] == "all" {
            break frame;
        }
    };

    // The stale row answered 410 from the gateway's @connections API and was pruned with its
    // membership; the expired row was never even tried.
    assert_eq!(
        ack,
        json!({"type": "ack", "requestId": "all", "delivered": 1, "gone": 1, "failed": 0, "queued": false, "requeued": 0})
    );
    assert_eq!(
        repo.get(&id("STALEstaleSTALE="), now()).await.unwrap(),
        None
    );
    let members = repo
        .members_of(&room("r"), None, now())
        .await
        .unwrap()
        .items;
    assert!(!members.contains(&id("STALEstaleSTALE=")));
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_whose_socket_vanished_without_disconnect_is_pruned_and_announced_as_left() {
    let (gw, repo) = gateway_on_moto("presence-prune", &[]).await;
    let mut alice = tests::client::TestClient::connect(&gw).await;
    alice.join("r").await;
    // A member whose socket died without $disconnect: its rows remain, @connections answers 410.
    repo.save(&live("GHOSTghostGHOST=")).await.unwrap();
    repo.join(&id("GHOSTghostGHOST="), &room("r"), 50, now())
        .await
        .unwrap();

    let ack = alice.publish("r", json!("anyone?")).await;

    assert_eq!(
        (ack["delivered"].as_u64(), ack["gone"].as_u64()),
        (Some(1), Some(1)),
        "{ack}"
    );
    let left = alice.next_of_type("presence").await;
    assert_eq!(
        left,
        json!({"type": "presence", "room": "r", "event": "left", "connectionId": "GHOSTghostGHOST="})
    );
    assert_eq!(
        members(&repo, "r").await.len(),
        1,
        "the ghost's membership is gone"
    );
    gw.shutdown().await;
}
