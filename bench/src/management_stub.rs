//! A local `@connections` server that takes `delay` per post and answers 410 for a share of the
//! connection ids, so fan-out runs through the real `ApiGatewayNotifier` and HTTP stack.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::post;

pub struct Stub {
    pub endpoint: String,
    pub posts: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Stub {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[derive(Clone)]
struct Behaviour {
    delay: Duration,
    posts: Arc<AtomicU64>,
}

/// Ids starting with `gone-` answer 410, as closed connections do.
async fn post_to_connection(
    State(b): State<Behaviour>,
    Path((_stage, id)): Path<(String, String)>,
) -> impl IntoResponse {
    b.posts.fetch_add(1, Ordering::Relaxed);
    tokio::time::sleep(b.delay).await;
    if id.starts_with("gone-") {
        (
            StatusCode::GONE,
            [("x-amzn-ErrorType", "GoneException")],
            "{\"message\":\"\"}",
        )
            .into_response()
    } else {
        StatusCode::OK.into_response()
    }
}

pub async fn start(delay: Duration) -> Stub {
    let posts = Arc::new(AtomicU64::new(0));
    let app = Router::new()
        .route("/{stage}/@connections/{id}", post(post_to_connection))
        .with_state(Behaviour {
            delay,
            posts: posts.clone(),
        });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let endpoint = format!("http://{}/bench", listener.local_addr().expect("addr"));
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Stub {
        endpoint,
        posts,
        task,
    }
}
