//! What a first event's handler talks to in `bench cold-start`, besides the Runtime API (the local
//! gateway's Lambda emulator serves that): a `@connections` route so the handler's reply has
//! somewhere to go, and a DynamoDB endpoint that answers every call with an empty result (no item,
//! nothing written), counting the calls.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::post;

pub struct Stub {
    pub addr: String,
    dynamodb_calls: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Stub {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Stub {
    /// Calls to the DynamoDB endpoint (`POST /`) so far.
    pub fn dynamodb_calls(&self) -> usize {
        self.dynamodb_calls.load(Ordering::Relaxed)
    }
}

/// An empty answer is a valid one for every operation the handler uses: `GetItem` finds nothing,
/// a `Query` has no items, a write returns no attributes.
async fn dynamodb(State(calls): State<Arc<AtomicUsize>>) -> impl IntoResponse {
    calls.fetch_add(1, Ordering::Relaxed);
    ([("content-type", "application/x-amz-json-1.0")], "{}")
}

pub async fn start() -> Stub {
    let dynamodb_calls = Arc::new(AtomicUsize::new(0));
    let app = Router::new()
        .route("/", post(dynamodb))
        .route(
            "/{stage}/@connections/{id}",
            post(|| async { StatusCode::OK }),
        )
        .with_state(dynamodb_calls.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Stub {
        addr,
        dynamodb_calls,
        task,
    }
}
