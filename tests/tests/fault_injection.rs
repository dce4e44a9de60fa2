//! Fault injection on real DynamoDB (moto): a fan-out to 10 000 connections where 10 % are gone
//! and 5 % are throttled once, storage failures injected through a failing wrapper, and rows
//! left behind by clients that vanished without a `$disconnect`.

use std::collections::{BTreeMap, HashSet};
use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use adapters::dynamodb::{DynamoConnectionRepository, DynamoSettings, create_table_if_missing};
use adapters::memory::RecordingNotifier;
use adapters::wiring;
use async_trait::async_trait;
use clap::Parser;
use domain::{
    Clock, Connection, ConnectionId, ConnectionRepository, HandleError, Handled, JoinError,
    NotifyError, Page, PageToken, Removed, RepositoryError, RetryPolicy, RoomName, Sender,
    Settings, Timestamp,
};
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tests::{dynamodb_client, dynamodb_endpoint, unique_table};
use tokio_tungstenite::connect_async;
use tokio_tungstenite::tungstenite::Message;

fn id(raw: &str) -> ConnectionId {
    ConnectionId::parse(raw).unwrap()
}

fn room(raw: &str) -> RoomName {
    RoomName::parse(raw).unwrap()
}

fn now() -> Timestamp {
    adapters::clock::SystemClock.now()
}

fn live(raw: &str) -> Connection {
    Connection {
        id: id(raw),
        connected_at: now(),
        expires_at: now().saturating_add(Duration::from_secs(7200)),
        principal: None,
        source_ip: None,
        user_agent: None,
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

async fn everyone<R: ConnectionRepository>(repo: &R) -> Vec<ConnectionId> {
    let mut all = Vec::new();
    let mut token = None;
    for _ in 0..10_000 {
        let page = repo.all_connections(token, now()).await.unwrap();
        all.extend(page.items);
        token = page.next;
        if token.is_none() {
            return all;
        }
    }
    panic!("paging never ended");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fan_out_to_ten_thousand_with_gone_and_throttled_recipients_reaches_every_live_one_exactly_once()
 {
    let repo = Arc::new(repository(1_000).await);
    let setup = std::time::Instant::now();
    let ids: Vec<String> = (0..10_000).map(|i| format!("c{i:05}")).collect();
    futures::stream::iter(&ids)
        .map(|raw| {
            let repo = repo.clone();
            async move { repo.save(&live(raw)).await.unwrap() }
        })
        .buffer_unordered(64)
        .collect::<Vec<_>>()
        .await;
    let is_gone = |i: usize| i.is_multiple_of(10); // 10 %
    let is_throttled = |i: usize| i % 20 == 1; // 5 %, first attempt only
    // Memberships for 200 of them, half gone, to see the cascade.
    let gone_members = (0..).step_by(10).take(100);
    let throttled_members = (1..).step_by(20).take(100);
    for i in gone_members.chain(throttled_members) {
        repo.join(&id(&ids[i]), &room("watch"), 50, now())
            .await
            .unwrap();
    }
    eprintln!(
        "10 000 saves and 200 joins on moto took {:?}",
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
            base_delay: Duration::from_millis(5),
            max_delay: Duration::from_millis(50),
        },
        ..Settings::default()
    };
    let service = wiring::service(repo.clone(), notifier.clone(), settings);
    let sender = Sender {
        id: id(&ids[1]),
        principal: None,
    };

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
    for (to, _) in notifier.sent() {
        *per_recipient.entry(to).or_default() += 1;
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
    let mut watchers = Vec::new();
    let mut token = None;
    loop {
        let page = repo.members_of(&room("watch"), token, now()).await.unwrap();
        watchers.extend(page.items);
        token = page.next;
        if token.is_none() {
            break;
        }
    }
    assert_eq!(
        watchers.len(),
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
    ) -> Result<(), JoinError> {
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
    async fn take_token(
        &self,
        id: &ConnectionId,
        limit: domain::RateLimit,
        now: Timestamp,
    ) -> Result<domain::TokenDecision, RepositoryError> {
        self.check("take_token")?;
        self.inner.take_token(id, limit, now).await
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
    let sender = Sender {
        id: id("m00"),
        principal: None,
    };

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
    let table = unique_table("stale");
    let options = local_gateway::Options::try_parse_from([
        "local-gateway",
        "--port",
        "0",
        "--dynamodb-endpoint",
        &dynamodb_endpoint(),
        "--table",
        &table,
    ])
    .unwrap();
    let gw = local_gateway::start(options.gateway_config().await.unwrap())
        .await
        .unwrap();
    let repo =
        DynamoConnectionRepository::new(dynamodb_client().await, DynamoSettings::new(&table));
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
        json!({"type": "ack", "requestId": "all", "delivered": 1, "gone": 1, "failed": 0})
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
