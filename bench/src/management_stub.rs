//! A local `@connections` server that takes `delay` per post and answers 410 for a share of the
//! connection ids, so fan-out runs through the real notifiers and HTTP stack. It runs in a child
//! process (this binary's hidden `management-stub` scenario), so the client's CPU time, measured
//! with getrusage, excludes the server's.

use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};

use crate::rate_window::RateWindow;

/// The first line the child prints: the endpoint follows it.
const READY: &str = "management stub at ";

pub struct Stub {
    pub endpoint: String,
    _child: Child,
}

impl Stub {
    /// How many posts the server has seen, over a plain HTTP/1.0 GET.
    pub async fn posts(&self) -> Result<u64, String> {
        let mut stream = tokio::net::TcpStream::connect(authority(&self.endpoint))
            .await
            .map_err(|e| format!("stub: {e}"))?;
        stream
            .write_all(b"GET /posts HTTP/1.0\r\n\r\n")
            .await
            .map_err(|e| format!("stub: {e}"))?;
        let mut answer = String::new();
        tokio::time::timeout(Duration::from_secs(5), stream.read_to_string(&mut answer))
            .await
            .map_err(|_| "stub: no answer".to_string())?
            .map_err(|e| format!("stub: {e}"))?;
        let body = answer.rsplit("\r\n\r\n").next().unwrap_or_default();
        body.trim()
            .parse()
            .map_err(|e| format!("stub answered {answer:?}: {e}"))
    }
}

/// `127.0.0.1:port` of the stub's `http://127.0.0.1:port/stage` endpoint.
pub fn authority(endpoint: &str) -> &str {
    endpoint
        .trim_start_matches("http://")
        .split('/')
        .next()
        .unwrap_or_default()
}

#[derive(Clone)]
struct Behaviour {
    delay: Duration,
    posts: Arc<AtomicU64>,
    /// 429 above this many posts a second, as a token bucket (`None`: never).
    throttle: Option<Arc<RateWindow>>,
}

impl Behaviour {
    fn over_rate(&self) -> bool {
        self.throttle.as_ref().is_some_and(|t| t.over_rate())
    }
}

/// Ids starting with `gone-` answer 410, as closed connections do.
async fn post_to_connection(
    State(b): State<Behaviour>,
    Path((_stage, id)): Path<(String, String)>,
) -> impl IntoResponse {
    b.posts.fetch_add(1, Ordering::Relaxed);
    if !b.delay.is_zero() {
        crate::precise_sleep::sleep(b.delay).await;
    }
    if b.over_rate() {
        (
            StatusCode::TOO_MANY_REQUESTS,
            [("x-amzn-ErrorType", "LimitExceededException")],
            "{\"message\":\"Too Many Requests\"}",
        )
            .into_response()
    } else if id.starts_with("gone-") {
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

async fn posts(State(b): State<Behaviour>) -> String {
    b.posts.load(Ordering::Relaxed).to_string()
}

/// The child's side: serves until its standard input closes, i.e. until the parent is gone.
pub async fn serve(delay: Duration, throttle_above: Option<u64>) -> Result<(), String> {
    let app = Router::new()
        .route("/{stage}/@connections/{id}", post(post_to_connection))
        .route("/posts", get(posts))
        .with_state(Behaviour {
            delay,
            posts: Arc::default(),
            throttle: throttle_above.map(|rate| Arc::new(RateWindow::new(rate))),
        });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| format!("bind: {e}"))?;
    let addr = listener.local_addr().map_err(|e| format!("addr: {e}"))?;
    println!("{READY}http://{addr}/bench");
    let parent_gone = async {
        let _ = tokio::task::spawn_blocking(|| {
            std::io::copy(&mut std::io::stdin(), &mut std::io::sink())
        })
        .await;
    };
    axum::serve(listener, app)
        .with_graceful_shutdown(parent_gone)
        .await
        .map_err(|e| format!("serve: {e}"))
}

/// The parent's side: starts the child and waits (5 s at most) for its endpoint.
pub async fn spawn(delay: Duration) -> Result<Stub, String> {
    spawn_throttling(delay, None).await
}

/// [`spawn`], with 429 for every post beyond `throttle_above` a second.
pub async fn spawn_throttling(
    delay: Duration,
    throttle_above: Option<u64>,
) -> Result<Stub, String> {
    let exe = std::env::current_exe().map_err(|e| format!("own path: {e}"))?;
    let mut args = vec![
        "management-stub".to_string(),
        "--delay-ms".to_string(),
        delay.as_millis().to_string(),
    ];
    if let Some(rate) = throttle_above {
        args.extend(["--throttle-above".to_string(), rate.to_string()]);
    }
    let mut child = Command::new(exe)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("start the stub: {e}"))?;
    let stdout = child.stdout.take().ok_or("the stub has no stdout")?;
    let mut line = String::new();
    tokio::time::timeout(
        Duration::from_secs(5),
        BufReader::new(stdout).read_line(&mut line),
    )
    .await
    .map_err(|_| "the stub did not start within 5 s".to_string())?
    .map_err(|e| format!("the stub: {e}"))?;
    let endpoint = line
        .trim()
        .strip_prefix(READY)
        .ok_or_else(|| format!("the stub said {line:?}"))?
        .to_string();
    Ok(Stub {
        endpoint,
        _child: child,
    })
}
