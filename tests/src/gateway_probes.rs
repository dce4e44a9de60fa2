//! Event handlers that wrap the real one, so a test can see what the local gateway invokes and
//! hold invocations where it wants them. Every wait is bounded.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use aws_lambda_events::apigw::ApiGatewayProxyResponse;
use clap::Parser;
use local_gateway::{
    EventHandler, GatewayConfig, IntegrationError, Options, RunningGateway, start,
};
use serde_json::Value;
use tokio::sync::Semaphore;

use crate::ws::WAIT;

/// A local gateway with extra flags whose handler is wrapped by `wrap`, and the wrapper.
pub async fn gateway_wrapping<W: EventHandler + 'static>(
    extra: &[&str],
    wrap: impl FnOnce(Arc<dyn EventHandler>) -> Arc<W>,
) -> (RunningGateway, Arc<W>) {
    let mut args = vec!["local-gateway", "--port", "0"];
    args.extend_from_slice(extra);
    let options = Options::try_parse_from(args).expect("valid flags");
    let mut config: GatewayConfig = options.gateway_config().await.expect("gateway config");
    let wrapper = wrap(config.handler);
    config.handler = wrapper.clone();
    (start(config).await.expect("gateway start"), wrapper)
}

/// The route of an API Gateway event (`$connect`, `$default`, `$disconnect`).
pub fn route_of(event: &Value) -> &str {
    event["requestContext"]["routeKey"]
        .as_str()
        .unwrap_or_default()
}

/// Remembers every event, then runs the real handler.
pub struct Recorder {
    inner: Arc<dyn EventHandler>,
    events: Mutex<Vec<Value>>,
}

impl Recorder {
    pub fn wrap(inner: Arc<dyn EventHandler>) -> Arc<Self> {
        Arc::new(Self {
            inner,
            events: Mutex::default(),
        })
    }

    pub fn events(&self) -> Vec<Value> {
        self.events
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The first event of `route` recorded; fails the test after 10 s.
    pub async fn first(&self, route: &str) -> Value {
        eventually(|| {
            self.events()
                .into_iter()
                .find(|event| route_of(event) == route)
        })
        .await
        .unwrap_or_else(|| panic!("no {route} event within {WAIT:?}"))
    }
}

#[async_trait]
impl EventHandler for Recorder {
    async fn handle_json(
        &self,
        event: Value,
        deadline: domain::Timestamp,
    ) -> Result<ApiGatewayProxyResponse, IntegrationError> {
        self.events
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(event.clone());
        self.inner.handle_json(event, deadline).await
    }
}

/// Holds every `$default` invocation at a gate until the test opens it; counts them, and the
/// other routes' invocations that finished.
pub struct Gate {
    inner: Arc<dyn EventHandler>,
    gate: Semaphore,
    /// `$default` invocations at the gate now, and the most there ever were.
    waiting: Mutex<(usize, usize)>,
    finished: Mutex<Vec<String>>,
}

impl Gate {
    pub fn wrap(inner: Arc<dyn EventHandler>) -> Arc<Self> {
        Arc::new(Self {
            inner,
            gate: Semaphore::new(0),
            waiting: Mutex::default(),
            finished: Mutex::default(),
        })
    }

    /// How many `route` invocations (other than `$default`) have finished.
    pub fn finished(&self, route: &str) -> usize {
        let finished = self.finished.lock().unwrap_or_else(|e| e.into_inner());
        finished.iter().filter(|r| *r == route).count()
    }

    /// `$default` invocations held at the gate now.
    pub fn waiting(&self) -> usize {
        self.waiting.lock().unwrap_or_else(|e| e.into_inner()).0
    }

    /// The most `$default` invocations ever held at the gate at once.
    pub fn peak_waiting(&self) -> usize {
        self.waiting.lock().unwrap_or_else(|e| e.into_inner()).1
    }

    /// Lets every invocation through, now and from now on.
    pub fn open(&self) {
        self.gate.add_permits(Semaphore::MAX_PERMITS / 2);
    }
}

#[async_trait]
impl EventHandler for Gate {
    async fn handle_json(
        &self,
        event: Value,
        deadline: domain::Timestamp,
    ) -> Result<ApiGatewayProxyResponse, IntegrationError> {
        if route_of(&event) == "$default" {
            {
                let mut waiting = self.waiting.lock().unwrap_or_else(|e| e.into_inner());
                waiting.0 += 1;
                waiting.1 = waiting.1.max(waiting.0);
            }
            let _pass = self.gate.acquire().await;
            self.waiting.lock().unwrap_or_else(|e| e.into_inner()).0 -= 1;
            return self.inner.handle_json(event, deadline).await;
        }
        let route = route_of(&event).to_string();
        let result = self.inner.handle_json(event, deadline).await;
        self.finished
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(route);
        result
    }
}

/// Delays every `$disconnect` before running it, as a slow store would.
pub struct SlowDisconnect {
    pub inner: Arc<dyn EventHandler>,
    pub delay: Duration,
}

impl SlowDisconnect {
    pub fn wrap(inner: Arc<dyn EventHandler>, delay: Duration) -> Arc<Self> {
        Arc::new(Self { inner, delay })
    }
}

#[async_trait]
impl EventHandler for SlowDisconnect {
    async fn handle_json(
        &self,
        event: Value,
        deadline: domain::Timestamp,
    ) -> Result<ApiGatewayProxyResponse, IntegrationError> {
        if route_of(&event) == "$disconnect" {
            tokio::time::sleep(self.delay).await;
        }
        self.inner.handle_json(event, deadline).await
    }
}

/// Polls `probe` every 20 ms until it returns `Some`, for at most 10 s.
pub async fn eventually<T>(mut probe: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if let Some(found) = probe() {
            return Some(found);
        }
        if tokio::time::Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// As [`eventually`], for a probe that has to wait (an HTTP request): polls every 20 ms until
/// it returns `Some`, for at most 10 s.
pub async fn eventually_async<T, F, Fut>(mut probe: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if let Some(found) = probe().await {
            return Some(found);
        }
        if tokio::time::Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// One raw HTTP/1.1 request (`head` without its final blank line), so a test controls every
/// header; the response's status and body.
pub async fn raw_http(addr: std::net::SocketAddr, head: &str) -> (u16, String) {
    raw_http_with_body(addr, head, "").await
}

/// As [`raw_http`], with a body (its `Content-Length` is added).
pub async fn raw_http_with_body(
    addr: std::net::SocketAddr,
    head: &str,
    body: &str,
) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let request = format!(
        "{head}\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    tcp.write_all(request.as_bytes()).await.expect("write");
    let mut response = Vec::new();
    tokio::time::timeout(WAIT, tcp.read_to_end(&mut response))
        .await
        .expect("no response within 10 s")
        .expect("read");
    let response = String::from_utf8_lossy(&response).to_string();
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|status| status.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP response: {response:?}"));
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_string())
        .unwrap_or_default();
    (status, body)
}

/// The inspector's current snapshot, as its feed (`GET /inspector/events`) sends it first: the
/// JSON text of the `snapshot` event. Asked over HTTP/1.0, so the stream comes unchunked and
/// the text is exactly what a page receives. Fails the test after 10 s.
pub async fn inspector_snapshot(addr: std::net::SocketAddr) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let request = format!("GET /inspector/events HTTP/1.0\r\nHost: {addr}\r\n\r\n");
    tcp.write_all(request.as_bytes()).await.expect("write");
    const START: &[u8] = b"event: snapshot\ndata: ";
    let find = |haystack: &[u8], needle: &[u8], from: usize| {
        haystack
            .get(from..)?
            .windows(needle.len())
            .position(|w| w == needle)
            .map(|at| from + at)
    };
    let mut seen = Vec::new();
    let mut buffer = vec![0u8; 64 * 1024];
    let deadline = tokio::time::Instant::now() + WAIT;
    let mut data_at = None;
    loop {
        if data_at.is_none() {
            data_at = find(&seen, START, 0).map(|at| at + START.len());
        }
        if let Some(start) = data_at {
            // Only the newly read part can hold the end (and the one byte before it).
            let from = seen.len().saturating_sub(buffer.len() + 1).max(start);
            if let Some(end) = find(&seen, b"\n\n", from) {
                return String::from_utf8_lossy(&seen[start..end]).into_owned();
            }
        }
        let read = tokio::time::timeout_at(deadline, tcp.read(&mut buffer))
            .await
            .expect("no whole snapshot in the inspector's feed within 10 s")
            .expect("read");
        assert!(
            read > 0,
            "the feed ended before its snapshot: {}",
            String::from_utf8_lossy(&seen)
        );
        seen.extend_from_slice(&buffer[..read]);
    }
}
