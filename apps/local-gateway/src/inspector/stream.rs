//! `GET /inspector/events`: the inspector's feed as Server-Sent Events. It carries principals
//! and message data, so only the gateway's own pages may read it (see [`same_origin_only`]).
//!
//! [`same_origin_only`]: crate::browser_safety::same_origin_only

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::Stream;
use serde_json::Value;
use tokio::sync::broadcast::{Receiver, error::RecvError};

use super::bus::{FeedEvent, Inspector};
use crate::browser_safety::same_origin_only;

/// A comment line this often keeps proxies and the browser from timing the stream out.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

pub(crate) async fn events(
    State(inspector): State<Arc<Inspector>>,
    headers: HeaderMap,
) -> Response {
    if !same_origin_only(&headers) {
        return (
            StatusCode::FORBIDDEN,
            "Forbidden: the inspector's feed is for the gateway's own pages",
        )
            .into_response();
    }
    let (snapshot, feed) = inspector.subscribe();
    let stream = feed_stream(inspector, snapshot, feed);
    Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(KEEP_ALIVE))
        .into_response()
}

/// The snapshot first, then each event; a reader that fell behind gets a new snapshot.
fn feed_stream(
    inspector: Arc<Inspector>,
    snapshot: Value,
    feed: Receiver<FeedEvent>,
) -> impl Stream<Item = Result<Event, Infallible>> {
    let first = Some(snapshot);
    futures::stream::unfold(
        (inspector, first, feed),
        |(inspector, first, mut feed)| async move {
            if let Some(snapshot) = first {
                let event = sse("snapshot", &snapshot);
                return Some((Ok(event), (inspector, None, feed)));
            }
            let event = match feed.recv().await {
                Ok(next) => sse(next.kind, &next.data),
                Err(RecvError::Lagged(_)) => sse("snapshot", &inspector.snapshot()),
                Err(RecvError::Closed) => return None,
            };
            Some((Ok(event), (inspector, None, feed)))
        },
    )
}

fn sse(kind: &str, data: &Value) -> Event {
    Event::default().event(kind).data(data.to_string())
}
