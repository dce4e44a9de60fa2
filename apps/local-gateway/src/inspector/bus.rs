//! The inspector's event bus: what the gateway saw lately (open connections and their rooms, the
//! last invocations and `@connections` calls) and a live feed of what it sees next. Everything is
//! bounded: the history keeps the last [`HISTORY`] of each kind, and a page that reads the feed
//! too slowly loses events (`Lagged`) and gets a fresh snapshot instead of growing a queue.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use domain::{ConnectionId, ConnectionRepository};
use serde_json::{Value, json};
use tokio::sync::broadcast;

use super::record::{CallRecord, InvocationRecord};
use crate::events::Route;

/// How many invocations and how many `@connections` calls the snapshot keeps.
pub(crate) const HISTORY: usize = 200;
/// How many feed events a page may fall behind before it gets a snapshot instead.
const FEED_CAPACITY: usize = 512;

/// One feed event: its kind (the SSE event name) and its JSON.
#[derive(Debug, Clone)]
pub(crate) struct FeedEvent {
    pub kind: &'static str,
    pub data: Arc<Value>,
}

#[derive(Default)]
struct Seen {
    /// Open connections by id.
    connections: BTreeMap<String, OpenConnection>,
    invocations: VecDeque<Value>,
    calls: VecDeque<Value>,
    next_seq: u64,
}

/// An open connection as the page lists it. A struct, not a JSON map: the gateway holds one per
/// socket, and 10 000 maps of five fields cost about 10 MiB more (BENCHMARKS.md, section 4).
struct OpenConnection {
    principal: Option<String>,
    connected_at: i64,
    source_ip: String,
    rooms: Vec<String>,
}

impl OpenConnection {
    fn to_json(&self, id: &str) -> Value {
        json!({
            "id": id,
            "principal": self.principal,
            "connectedAt": self.connected_at,
            "sourceIp": self.source_ip,
            "rooms": self.rooms,
        })
    }
}

pub(crate) struct Inspector {
    seen: Mutex<Seen>,
    feed: broadcast::Sender<FeedEvent>,
    /// Where memberships live: asked after each `join`/`leave`, so the page shows what the store
    /// holds rather than what the gateway guessed from the traffic.
    rooms: Option<Arc<dyn ConnectionRepository>>,
}

impl Inspector {
    pub fn new(rooms: Option<Arc<dyn ConnectionRepository>>) -> Self {
        Self {
            seen: Mutex::default(),
            feed: broadcast::channel(FEED_CAPACITY).0,
            rooms,
        }
    }

    fn seen(&self) -> MutexGuard<'_, Seen> {
        self.seen.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The current state and the feed from this instant on: nothing missed, nothing twice.
    pub fn subscribe(&self) -> (Value, broadcast::Receiver<FeedEvent>) {
        let seen = self.seen();
        (snapshot(&seen), self.feed.subscribe())
    }

    /// The current state alone (a page that fell behind starts over from it).
    pub fn snapshot(&self) -> Value {
        snapshot(&self.seen())
    }

    /// Records `$connect`, `$default` or `$disconnect` and what it changed.
    pub fn invocation(&self, record: InvocationRecord<'_>) {
        let mut invocation = record.to_json();
        let mut seen = self.seen();
        invocation["seq"] = json!(next_seq(&mut seen));
        match record.route {
            Route::Connect if record.ok() => self.opened(&mut seen, &record),
            Route::Disconnect => self.closed(&mut seen, &record),
            _ => {}
        }
        push_bounded(&mut seen.invocations, invocation.clone());
        self.send(&mut seen, "invocation", invocation);
    }

    fn opened(&self, seen: &mut MutexGuard<'_, Seen>, connect: &InvocationRecord<'_>) {
        let open = OpenConnection {
            principal: connect.principal.map(str::to_owned),
            connected_at: connect.connected_at,
            source_ip: connect.source_ip.to_owned(),
            rooms: Vec::new(),
        };
        let opened = open.to_json(connect.connection_id);
        seen.connections
            .insert(connect.connection_id.to_owned(), open);
        self.send(seen, "connection", opened);
    }

    fn closed(&self, seen: &mut MutexGuard<'_, Seen>, disconnect: &InvocationRecord<'_>) {
        let id = disconnect.connection_id;
        if seen.connections.remove(id).is_none() {
            return;
        }
        let (code, reason) = disconnect.closed.unzip();
        let closed = json!({"id": id, "code": code, "reason": reason});
        self.send(seen, "disconnection", closed);
    }

    /// Records a `@connections` call and the status it got.
    pub fn call(&self, record: CallRecord<'_>) {
        let mut call = record.to_json();
        let mut seen = self.seen();
        call["seq"] = json!(next_seq(&mut seen));
        push_bounded(&mut seen.calls, call.clone());
        self.send(&mut seen, "call", call);
    }

    /// Asks the store which rooms `id` is in now, and tells the pages when it is still open.
    pub async fn refresh_rooms(&self, id: &str) {
        let Some(repository) = &self.rooms else {
            return;
        };
        let Ok(connection) = ConnectionId::parse(id) else {
            return;
        };
        let rooms = match repository.rooms_of(&connection, crate::clock::now()).await {
            Ok(rooms) => rooms,
            Err(e) => {
                tracing::debug!(connectionId = id, error = %e, "inspector: rooms unknown");
                return;
            }
        };
        let rooms: Vec<String> = rooms.iter().map(|room| room.as_str().to_string()).collect();
        let mut seen = self.seen();
        let Some(open) = seen.connections.get_mut(id) else {
            return; // closed meanwhile: its rooms are gone with it
        };
        let update = json!({"id": id, "rooms": rooms});
        open.rooms = rooms;
        self.send(&mut seen, "rooms", update);
    }

    /// Sent under the state's lock, so a subscriber's snapshot and feed never overlap.
    fn send(&self, _seen: &mut MutexGuard<'_, Seen>, kind: &'static str, data: Value) {
        // No subscriber is not an error: the history still has it for the next page.
        let _ = self.feed.send(FeedEvent {
            kind,
            data: Arc::new(data),
        });
    }
}

fn next_seq(seen: &mut Seen) -> u64 {
    seen.next_seq += 1;
    seen.next_seq
}

fn push_bounded(list: &mut VecDeque<Value>, item: Value) {
    if list.len() == HISTORY {
        list.pop_front();
    }
    list.push_back(item);
}

fn snapshot(seen: &Seen) -> Value {
    json!({
        "connections": seen
            .connections
            .iter()
            .map(|(id, open)| open.to_json(id))
            .collect::<Vec<_>>(),
        "invocations": seen.invocations,
        "calls": seen.calls,
    })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use aws_lambda_events::apigw::ApiGatewayProxyResponse;

    use super::*;

    fn answered(status: i64) -> ApiGatewayProxyResponse {
        let mut response = ApiGatewayProxyResponse::default();
        response.status_code = status;
        response
    }

    fn invocation<'a>(
        route: Route,
        id: &'a str,
        response: &'a ApiGatewayProxyResponse,
    ) -> InvocationRecord<'a> {
        InvocationRecord {
            at: 0,
            route,
            connection_id: id,
            principal: Some("alice"),
            connected_at: 1,
            source_ip: "127.0.0.1",
            action: None,
            closed: (route == Route::Disconnect).then_some((1000, "bye")),
            duration: Duration::ZERO,
            outcome: Ok(response),
            event: json!({"requestContext": {}}),
        }
    }

    fn call(status: u16) -> CallRecord<'static> {
        CallRecord {
            at: 0,
            method: "POST",
            connection_id: "a",
            status,
            body: b"{}",
        }
    }

    #[test]
    fn a_connection_is_listed_from_its_connect_until_its_disconnect() {
        let inspector = Inspector::new(None);
        let ok = answered(200);

        inspector.invocation(invocation(Route::Connect, "a", &ok));
        let listed = &inspector.snapshot()["connections"][0];
        assert_eq!(
            (&listed["id"], &listed["principal"], &listed["sourceIp"]),
            (&json!("a"), &json!("alice"), &json!("127.0.0.1"))
        );

        let (_, mut feed) = inspector.subscribe();
        inspector.invocation(invocation(Route::Disconnect, "a", &ok));
        assert_eq!(inspector.snapshot()["connections"], json!([]));
        let closed = feed.try_recv().expect("the disconnection");
        assert_eq!(closed.kind, "disconnection");
        assert_eq!(
            *closed.data,
            json!({"id": "a", "code": 1000, "reason": "bye"})
        );
    }

    #[test]
    fn a_refused_connect_lists_no_connection() {
        let inspector = Inspector::new(None);
        let forbidden = answered(403);

        inspector.invocation(invocation(Route::Connect, "a", &forbidden));

        assert_eq!(inspector.snapshot()["connections"], json!([]));
        assert_eq!(inspector.snapshot()["invocations"][0]["route"], "$connect");
    }

    #[test]
    fn the_history_keeps_only_the_latest_invocations() {
        let inspector = Inspector::new(None);

        let ok = answered(200);

        for _ in 0..HISTORY + 5 {
            inspector.invocation(invocation(Route::Default, "a", &ok));
        }

        let invocations = inspector.snapshot()["invocations"].clone();
        assert_eq!(invocations.as_array().map(Vec::len), Some(HISTORY));
        assert_eq!(invocations[0]["seq"], 6);
    }

    #[test]
    fn a_subscriber_gets_what_happens_after_its_snapshot() {
        let inspector = Inspector::new(None);
        inspector.call(call(200));

        let (snapshot, mut feed) = inspector.subscribe();
        inspector.call(call(410));

        assert_eq!(snapshot["calls"].as_array().map(Vec::len), Some(1));
        let next = feed.try_recv().expect("the call after the snapshot");
        assert_eq!(
            (next.kind, next.data["status"].clone()),
            ("call", json!(410))
        );
        assert!(feed.try_recv().is_err());
    }

    #[test]
    fn a_feed_read_too_slowly_lags_instead_of_queueing_without_end() {
        let inspector = Inspector::new(None);
        let (_, mut feed) = inspector.subscribe();

        for _ in 0..FEED_CAPACITY * 2 {
            inspector.call(call(200));
        }

        assert!(matches!(
            feed.try_recv(),
            Err(broadcast::error::TryRecvError::Lagged(_))
        ));
    }
}
