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
use tokio::sync::broadcast::error::RecvError;

use super::bus::{Inspector, MAX_SUBSCRIBERS, Subscription};
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
    let Some(subscription) = inspector.subscribe() else {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "Service Unavailable: {MAX_SUBSCRIBERS} inspector pages read the feed already; \
                 close one (a closed page gives its place back within {} s)",
                KEEP_ALIVE.as_secs()
            ),
        )
            .into_response();
    };
    Sse::new(feed_stream(inspector, subscription))
        .keep_alive(KeepAlive::new().interval(KEEP_ALIVE))
        .into_response()
}

/// The snapshot first, then each event; a reader that fell behind gets a new snapshot. The
/// subscription (and its place) lives as long as the stream.
fn feed_stream(
    inspector: Arc<Inspector>,
    subscription: Subscription,
) -> impl Stream<Item = Result<Event, Infallible>> {
    futures::stream::unfold(
        (inspector, true, subscription),
        |(inspector, first, mut subscription)| async move {
            if first {
                let snapshot = std::mem::take(&mut subscription.snapshot);
                let event = sse("snapshot", &snapshot);
                return Some((Ok(event), (inspector, false, subscription)));
            }
            let event = match subscription.feed.recv().await {
                Ok(next) => sse(next.kind, &next.data),
                Err(RecvError::Lagged(_)) => sse("snapshot", &inspector.snapshot()),
                Err(RecvError::Closed) => return None,
            };
            Some((Ok(event), (inspector, false, subscription)))
        },
    )
}

fn sse(kind: &str, data: &str) -> Event {
    Event::default().event(kind).data(data)
}
