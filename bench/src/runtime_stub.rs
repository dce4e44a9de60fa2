//! A minimal Lambda Runtime API (`/2018-06-01/runtime/invocation/next`, `/response`, `/error`)
//! that hands out one event and records when the function asked for it and answered, plus a
//! `@connections` route so the handler's reply has somewhere to go, and a DynamoDB endpoint that
//! answers every call with an empty result (no item, nothing written), counting the calls.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use serde_json::Value;
use tokio::sync::Notify;

#[derive(Default, Clone, Copy, Debug)]
pub struct Marks {
    pub first_next: Option<Instant>,
    pub response: Option<Instant>,
    pub error: Option<Instant>,
    /// Calls to the DynamoDB endpoint (`POST /`).
    pub dynamodb_calls: usize,
}

#[derive(Clone)]
struct Shared {
    event: Arc<Value>,
    marks: Arc<Mutex<Marks>>,
    served: Arc<Mutex<bool>>,
    answered: Arc<Notify>,
}

pub struct Stub {
    pub addr: String,
    marks: Arc<Mutex<Marks>>,
    answered: Arc<Notify>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Stub {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Stub {
    pub fn marks(&self) -> Marks {
        *self.marks.lock().expect("marks")
    }

    /// Resolves when the function has answered, with a response or an error: waiting on this
    /// instead of polling keeps the bench off the CPU the function's start needs.
    pub async fn answered(&self) {
        self.answered.notified().await
    }
}

async fn next(State(s): State<Shared>) -> impl IntoResponse {
    s.marks
        .lock()
        .expect("marks")
        .first_next
        .get_or_insert_with(Instant::now);
    let first = {
        let mut served = s.served.lock().expect("served");
        !std::mem::replace(&mut *served, true)
    };
    if !first {
        // One invocation per process: later polls wait until the process is killed.
        std::future::pending::<()>().await;
    }
    let deadline = (std::time::SystemTime::now() + std::time::Duration::from_secs(30))
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis()
        .to_string();
    (
        [
            (
                "lambda-runtime-aws-request-id",
                "bench-request-1".to_string(),
            ),
            ("lambda-runtime-deadline-ms", deadline),
            (
                "lambda-runtime-invoked-function-arn",
                "arn:aws:lambda:us-east-1:000000000000:function:default".to_string(),
            ),
            (
                "lambda-runtime-trace-id",
                "Root=1-00000000-000000000000000000000000".to_string(),
            ),
        ],
        s.event.to_string(),
    )
}

async fn response(State(s): State<Shared>) -> StatusCode {
    s.marks
        .lock()
        .expect("marks")
        .response
        .get_or_insert_with(Instant::now);
    s.answered.notify_one();
    StatusCode::ACCEPTED
}

async fn error(State(s): State<Shared>, body: String) -> StatusCode {
    eprintln!("the function reported an error: {body}");
    s.marks
        .lock()
        .expect("marks")
        .error
        .get_or_insert_with(Instant::now);
    s.answered.notify_one();
    StatusCode::ACCEPTED
}

/// An empty answer is a valid one for every operation the handler uses: `GetItem` finds nothing,
/// a `Query` has no items, a write returns no attributes.
async fn dynamodb(State(s): State<Shared>) -> impl IntoResponse {
    s.marks.lock().expect("marks").dynamodb_calls += 1;
    ([("content-type", "application/x-amz-json-1.0")], "{}")
}

pub async fn start(event: Value) -> Stub {
    let marks = Arc::new(Mutex::new(Marks::default()));
    let answered = Arc::new(Notify::new());
    let shared = Shared {
        event: Arc::new(event),
        marks: marks.clone(),
        served: Arc::default(),
        answered: answered.clone(),
    };
    let app = Router::new()
        .route("/2018-06-01/runtime/invocation/next", get(next))
        .route(
            "/2018-06-01/runtime/invocation/{id}/response",
            post(response),
        )
        .route("/2018-06-01/runtime/invocation/{id}/error", post(error))
        .route("/2018-06-01/runtime/init/error", post(error))
        .route("/", post(dynamodb))
        .route(
            "/{stage}/@connections/{id}",
            post(|| async { StatusCode::OK }),
        )
        .with_state(shared);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Stub {
        addr,
        marks,
        answered,
        task,
    }
}
