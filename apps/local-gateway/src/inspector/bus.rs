//! The inspector's event bus: what the gateway saw lately (open connections and their rooms, the
//! last invocations and `@connections` calls) and a live feed of what it sees next. Everything is
//! bounded: each history keeps the last [`HISTORY`] records and at most [`HISTORY_BYTES`] of
//! them (the oldest go first), each record is cut to a few KiB (`shown`), at most
//! [`MAX_SUBSCRIBERS`] pages read the feed at once, and a page that reads it too slowly loses
//! events (`Lagged`) and gets a fresh snapshot instead of growing a queue.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use domain::stream::RoomLog;
use domain::{ConnectionId, ConnectionRepository, RoomName};
use serde_json::{Value, json};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, broadcast};

use super::record::{CallRecord, InvocationRecord};
use crate::events::Route;

/// How many invocations and how many `@connections` calls the snapshot keeps.
pub(crate) const HISTORY: usize = 200;
/// The bytes of JSON each history (invocations, calls) keeps at most: past it, the oldest
/// records are dropped. A snapshot is at most twice this, plus the open connections.
pub const HISTORY_BYTES: usize = 2 * 1024 * 1024;
/// Pages reading the feed at once; one more is refused (503) until one closes.
pub const MAX_SUBSCRIBERS: usize = 16;
/// How many feed events a page may fall behind before it gets a snapshot instead.
const FEED_CAPACITY: usize = 512;

/// One feed event: its kind (the SSE event name) and its JSON text.
#[derive(Debug, Clone)]
pub(crate) struct FeedEvent {
    pub kind: &'static str,
    pub data: Arc<str>,
}

/// The last records of one kind, as JSON text, bounded in count and in bytes.
#[derive(Default)]
struct History {
    records: VecDeque<Arc<str>>,
    bytes: usize,
}

impl History {
    /// Keeps `record`, dropping the oldest ones past [`HISTORY`] or [`HISTORY_BYTES`]; the
    /// newest is always kept.
    fn push(&mut self, record: Arc<str>) {
        self.bytes += record.len();
        self.records.push_back(record);
        while self.records.len() > HISTORY || (self.bytes > HISTORY_BYTES && self.records.len() > 1)
        {
            if let Some(oldest) = self.records.pop_front() {
                self.bytes -= oldest.len();
            }
        }
    }

    /// The records as one JSON array, written into `out`.
    fn write_json(&self, out: &mut String) {
        out.push('[');
        for (i, record) in self.records.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str(record);
        }
        out.push(']');
    }
}

#[derive(Default)]
struct Seen {
    /// Open connections by id.
    connections: BTreeMap<String, OpenConnection>,
    invocations: History,
    calls: History,
    next_seq: u64,
    /// Each room's latest `seq`, as its stream last said (at most [`MAX_STREAMS`] rooms).
    streams: BTreeMap<String, u64>,
}

/// Rooms whose latest `seq` the inspector remembers; past it, the oldest name goes.
const MAX_STREAMS: usize = 1_000;

/// An open connection as the page lists it. A struct, not a JSON map: the gateway holds one per
/// socket, and 10 000 maps of five fields cost about 10 MiB more when that was measured (what
/// 10 000 sockets cost now: BENCHMARKS.md, "The local gateway").
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

/// A page's place on the feed: the state when it subscribed, then every event after it. The
/// place is given back when this is dropped (the page went away).
pub(crate) struct Subscription {
    pub snapshot: String,
    pub feed: broadcast::Receiver<FeedEvent>,
    _place: OwnedSemaphorePermit,
}

pub(crate) struct Inspector {
    seen: Mutex<Seen>,
    feed: broadcast::Sender<FeedEvent>,
    subscribers: Arc<Semaphore>,
    /// Where memberships live: asked after each `join`/`leave`, so the page shows what the store
    /// holds rather than what the gateway guessed from the traffic.
    rooms: Option<Arc<dyn ConnectionRepository>>,
    log: Option<Arc<dyn RoomLog>>,
}

impl Inspector {
    pub fn new(rooms: Option<Arc<dyn ConnectionRepository>>) -> Self {
        Self {
            seen: Mutex::default(),
            feed: broadcast::channel(FEED_CAPACITY).0,
            subscribers: Arc::new(Semaphore::new(MAX_SUBSCRIBERS)),
            rooms,
            log: None,
        }
    }

    /// Shows each room's latest `seq`, read from `log` after a publish.
    pub fn with_log(self, log: Option<Arc<dyn RoomLog>>) -> Self {
        Self { log, ..self }
    }

    /// Asks the room's stream for its latest `seq`, and tells the pages.
    pub async fn refresh_stream(&self, room: &str) {
        let (Some(log), Ok(name)) = (&self.log, RoomName::parse(room)) else {
            return;
        };
        let Ok(Some(latest)) = log.latest(&name).await else {
            return;
        };
        let mut seen = self.seen();
        if !seen.streams.contains_key(room) && seen.streams.len() >= MAX_STREAMS {
            let oldest = seen.streams.keys().next().cloned();
            if let Some(oldest) = oldest {
                seen.streams.remove(&oldest);
            }
        }
        seen.streams.insert(room.to_owned(), latest);
        let update = json!({"room": room, "latestSeq": latest});
        self.send(&mut seen, "stream", update.to_string().into());
    }

    fn seen(&self) -> MutexGuard<'_, Seen> {
        self.seen.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The current state and the feed from this instant on (nothing missed, nothing twice), or
    /// `None` when [`MAX_SUBSCRIBERS`] pages read it already.
    pub fn subscribe(&self) -> Option<Subscription> {
        let place = self.subscribers.clone().try_acquire_owned().ok()?;
        let seen = self.seen();
        Some(Subscription {
            snapshot: snapshot(&seen),
            feed: self.feed.subscribe(),
            _place: place,
        })
    }

    /// The current state alone (a page that fell behind starts over from it).
    pub fn snapshot(&self) -> String {
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
        let invocation: Arc<str> = invocation.to_string().into();
        seen.invocations.push(invocation.clone());
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
        self.send(seen, "connection", opened.to_string().into());
    }

    fn closed(&self, seen: &mut MutexGuard<'_, Seen>, disconnect: &InvocationRecord<'_>) {
        let id = disconnect.connection_id;
        if seen.connections.remove(id).is_none() {
            return;
        }
        let (code, reason) = disconnect.closed.unzip();
        let closed = json!({"id": id, "code": code, "reason": reason});
        self.send(seen, "disconnection", closed.to_string().into());
    }

    /// Records a `@connections` call and the status it got.
    pub fn call(&self, record: CallRecord<'_>) {
        let mut call = record.to_json();
        let mut seen = self.seen();
        call["seq"] = json!(next_seq(&mut seen));
        let call: Arc<str> = call.to_string().into();
        seen.calls.push(call.clone());
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
        self.send(&mut seen, "rooms", update.to_string().into());
    }

    /// Sent under the state's lock, so a subscriber's snapshot and feed never overlap.
    fn send(&self, _seen: &mut MutexGuard<'_, Seen>, kind: &'static str, data: Arc<str>) {
        // No subscriber is not an error: the history still has it for the next page.
        let _ = self.feed.send(FeedEvent { kind, data });
    }
}

fn next_seq(seen: &mut Seen) -> u64 {
    seen.next_seq += 1;
    seen.next_seq
}

/// `{"connections": [...], "invocations": [...], "calls": [...]}`, written from the records'
/// JSON text as kept, not parsed again.
fn snapshot(seen: &Seen) -> String {
    let mut out = String::with_capacity(
        seen.invocations.bytes + seen.calls.bytes + 128 * (seen.connections.len() + 1),
    );
    out.push_str(r#"{"connections":["#);
    for (i, (id, open)) in seen.connections.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&open.to_json(id).to_string());
    }
    out.push_str(r#"],"invocations":"#);
    seen.invocations.write_json(&mut out);
    out.push_str(r#","calls":"#);
    seen.calls.write_json(&mut out);
    out.push_str(r#","streams":"#);
    out.push_str(&json!(seen.streams).to_string());
    out.push('}');
    out
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

    fn parsed(text: &str) -> Value {
        serde_json::from_str(text).expect("JSON")
    }

    fn shown(inspector: &Inspector) -> Value {
        parsed(&inspector.snapshot())
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
        let listed = &shown(&inspector)["connections"][0];
        assert_eq!(
            (&listed["id"], &listed["principal"], &listed["sourceIp"]),
            (&json!("a"), &json!("alice"), &json!("127.0.0.1"))
        );

        let mut feed = inspector.subscribe().expect("a place").feed;
        inspector.invocation(invocation(Route::Disconnect, "a", &ok));
        assert_eq!(shown(&inspector)["connections"], json!([]));
        let closed = feed.try_recv().expect("the disconnection");
        assert_eq!(closed.kind, "disconnection");
        assert_eq!(
            parsed(&closed.data),
            json!({"id": "a", "code": 1000, "reason": "bye"})
        );
    }

    #[test]
    fn a_refused_connect_lists_no_connection() {
        let inspector = Inspector::new(None);
        let forbidden = answered(403);

        inspector.invocation(invocation(Route::Connect, "a", &forbidden));

        assert_eq!(shown(&inspector)["connections"], json!([]));
        assert_eq!(shown(&inspector)["invocations"][0]["route"], "$connect");
    }

    #[test]
    fn the_history_keeps_only_the_latest_invocations() {
        let inspector = Inspector::new(None);

        let ok = answered(200);

        for _ in 0..HISTORY + 5 {
            inspector.invocation(invocation(Route::Default, "a", &ok));
        }

        let invocations = shown(&inspector)["invocations"].clone();
        assert_eq!(invocations.as_array().map(Vec::len), Some(HISTORY));
        assert_eq!(invocations[0]["seq"], 6);
    }

    #[test]
    fn a_subscriber_gets_what_happens_after_its_snapshot() {
        let inspector = Inspector::new(None);
        inspector.call(call(200));

        let Subscription {
            snapshot, mut feed, ..
        } = inspector.subscribe().expect("a place");
        let snapshot: Value = serde_json::from_str(&snapshot).unwrap();
        inspector.call(call(410));

        assert_eq!(snapshot["calls"].as_array().map(Vec::len), Some(1));
        let next = feed.try_recv().expect("the call after the snapshot");
        assert_eq!(
            (next.kind, parsed(&next.data)["status"].clone()),
            ("call", json!(410))
        );
        assert!(feed.try_recv().is_err());
    }

    #[test]
    fn a_feed_read_too_slowly_lags_instead_of_queueing_without_end() {
        let inspector = Inspector::new(None);
        let mut feed = inspector.subscribe().expect("a place").feed;

        for _ in 0..FEED_CAPACITY * 2 {
            inspector.call(call(200));
        }

        assert!(matches!(
            feed.try_recv(),
            Err(broadcast::error::TryRecvError::Lagged(_))
        ));
    }

    #[test]
    fn each_history_keeps_at_most_its_byte_budget_dropping_the_oldest_first() {
        let inspector = Inspector::new(None);
        let ok = answered(200);
        // About what `shown_event` keeps of a handshake with a few hundred KB of headers.
        let headers: serde_json::Map<String, Value> = (0..32)
            .map(|i| (format!("x-pad-{i:02}"), json!("x".repeat(1024))))
            .collect();
        let event = json!({"headers": headers});

        for at in 0..HISTORY as i64 * 2 {
            let mut record = invocation(Route::Default, "a", &ok);
            record.at = at;
            record.event = event.clone();
            inspector.invocation(record);
        }

        let snapshot = inspector.snapshot();
        assert!(snapshot.len() <= HISTORY_BYTES + 1024, "{}", snapshot.len());
        let kept = parsed(&snapshot)["invocations"].as_array().unwrap().clone();
        assert!(kept.len() < HISTORY, "{} invocations kept", kept.len());
        assert!(kept.len() * 32 * 1024 > HISTORY_BYTES * 9 / 10);
        let at: Vec<i64> = kept.iter().map(|c| c["at"].as_i64().unwrap()).collect();
        assert_eq!(at.last(), Some(&(HISTORY as i64 * 2 - 1)));
        assert!(
            at.windows(2).all(|w| w[1] == w[0] + 1),
            "the latest, in order"
        );
    }

    #[test]
    fn a_record_over_the_budget_is_still_kept_as_the_latest() {
        let mut history = History::default();
        history.push("x".repeat(HISTORY_BYTES + 1).into());
        history.push("y".repeat(HISTORY_BYTES + 1).into());

        assert_eq!(history.records.len(), 1);
        assert!(history.records[0].starts_with('y'));
        assert_eq!(history.bytes, HISTORY_BYTES + 1);
    }

    #[test]
    fn at_most_max_subscribers_read_the_feed_and_a_place_is_given_back_on_drop() {
        let inspector = Inspector::new(None);

        let mut pages: Vec<Subscription> = (0..MAX_SUBSCRIBERS)
            .map(|_| inspector.subscribe().expect("a place"))
            .collect();
        assert!(inspector.subscribe().is_none());

        pages.pop();
        assert!(inspector.subscribe().is_some());
    }
}
