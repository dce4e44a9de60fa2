//! The inspector's event bus: what the gateway saw lately (open connections and their rooms, the
//! last invocations and `@connections` calls) and a live feed of what it sees next. Everything is
//! bounded: the history keeps the last [`HISTORY`] of each kind, and a page that reads the feed
//! too slowly loses events (`Lagged`) and gets a fresh snapshot instead of growing a queue.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use domain::{ConnectionId, ConnectionRepository};
use serde_json::{Value, json};
use tokio::sync::broadcast;

/// How many invocations and how many `@connections` calls the snapshot keeps.
pub(crate) const HISTORY: usize = 200;
/// How many feed events a page may fall behind before it gets a snapshot instead.
const FEED_CAPACITY: usize = 512;
/// Bodies (messages, posted frames) kept for display, in bytes: the rest is cut.
pub(crate) const MAX_SHOWN_BODY: usize = 4 * 1024;

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
    principal: Value,
    connected_at: Value,
    source_ip: Value,
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
    pub fn invocation(&self, mut invocation: Value) {
        let route = invocation["route"].as_str().unwrap_or_default().to_string();
        let id = invocation["connectionId"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let mut seen = self.seen();
        invocation["seq"] = json!(next_seq(&mut seen));
        let ok = invocation["ok"].as_bool().unwrap_or(false);
        match route.as_str() {
            "$connect" if ok => self.opened(&mut seen, &id, &invocation),
            "$disconnect" => self.closed(&mut seen, &id, &invocation),
            _ => {}
        }
        push_bounded(&mut seen.invocations, invocation.clone());
        self.send(&mut seen, "invocation", invocation);
    }

    fn opened(&self, seen: &mut MutexGuard<'_, Seen>, id: &str, connect: &Value) {
        let context = &connect["event"]["requestContext"];
        let open = OpenConnection {
            principal: context["authorizer"]["principalId"].clone(),
            connected_at: context["connectedAt"].clone(),
            source_ip: context["identity"]["sourceIp"].clone(),
            rooms: Vec::new(),
        };
        let opened = open.to_json(id);
        seen.connections.insert(id.to_string(), open);
        self.send(seen, "connection", opened);
    }

    fn closed(&self, seen: &mut MutexGuard<'_, Seen>, id: &str, disconnect: &Value) {
        if seen.connections.remove(id).is_none() {
            return;
        }
        let context = &disconnect["event"]["requestContext"];
        let closed = json!({
            "id": id,
            "code": context["disconnectStatusCode"],
            "reason": context["disconnectReason"],
        });
        self.send(seen, "disconnection", closed);
    }

    /// Records a `@connections` call and the status it got.
    pub fn call(&self, mut call: Value) {
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

/// `text` cut to [`MAX_SHOWN_BODY`] bytes (on a character boundary), saying how much was cut.
pub(crate) fn shown_body(text: &str) -> String {
    if text.len() <= MAX_SHOWN_BODY {
        return text.to_string();
    }
    let mut end = MAX_SHOWN_BODY;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} bytes in all)", &text[..end], text.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn invocation(route: &str, id: &str) -> Value {
        json!({"route": route, "connectionId": id, "ok": true, "event": {"requestContext": {}}})
    }

    #[test]
    fn a_connection_is_listed_from_its_connect_until_its_disconnect() {
        let inspector = Inspector::new(None);

        inspector.invocation(invocation("$connect", "a"));
        assert_eq!(inspector.snapshot()["connections"][0]["id"], "a");

        inspector.invocation(invocation("$disconnect", "a"));
        assert_eq!(inspector.snapshot()["connections"], json!([]));
    }

    #[test]
    fn a_refused_connect_lists_no_connection() {
        let inspector = Inspector::new(None);
        let mut refused = invocation("$connect", "a");
        refused["ok"] = json!(false);

        inspector.invocation(refused);

        assert_eq!(inspector.snapshot()["connections"], json!([]));
        assert_eq!(inspector.snapshot()["invocations"][0]["route"], "$connect");
    }

    #[test]
    fn the_history_keeps_only_the_latest_invocations() {
        let inspector = Inspector::new(None);

        for _ in 0..HISTORY + 5 {
            inspector.invocation(invocation("$default", "a"));
        }

        let invocations = inspector.snapshot()["invocations"].clone();
        assert_eq!(invocations.as_array().map(Vec::len), Some(HISTORY));
        assert_eq!(invocations[0]["seq"], 6);
    }

    #[test]
    fn a_subscriber_gets_what_happens_after_its_snapshot() {
        let inspector = Inspector::new(None);
        inspector.call(json!({"status": 200}));

        let (snapshot, mut feed) = inspector.subscribe();
        inspector.call(json!({"status": 410}));

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
            inspector.call(json!({"status": 200}));
        }

        assert!(matches!(
            feed.try_recv(),
            Err(broadcast::error::TryRecvError::Lagged(_))
        ));
    }

    #[test]
    fn long_bodies_are_cut_on_a_character_boundary() {
        let long = "é".repeat(MAX_SHOWN_BODY);

        let shown = shown_body(&long);

        assert!(shown.len() < long.len());
        assert!(shown.ends_with(&format!("({} bytes in all)", long.len())));
        assert_eq!(shown_body("short"), "short");
    }
}
