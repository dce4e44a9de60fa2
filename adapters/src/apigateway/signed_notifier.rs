//! The `ClientNotifier` on `@connections` without the SDK: a pooled hyper client and one SigV4
//! signature per request. Same endpoint, timeouts, credentials chain and status table as
//! `ApiGatewayNotifier` (the reference implementation, which passes the same tests), at a
//! fraction of the CPU per post (BENCHMARKS.md, "CPU per post").

use std::time::Duration;

use async_trait::async_trait;
use aws_config::SdkConfig;
use aws_smithy_async::time::{SharedTimeSource, SystemTimeSource};
use domain::{ClientNotifier, ConnectionId, NotifyError};
use http::{HeaderValue, Method, Request, Uri, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use percent_encoding::utf8_percent_encode;

use super::ahead::AheadConnector;
use super::credentials_cache::CachedCredentials;
use super::lazy_tls::LazyTlsConnector;
use super::sigv4::{LABEL, Signer};
use super::status::{self, CallFailure};
use super::{ManagementEndpoint, NotifierTimeouts};

/// The service name API Gateway's management API is signed for (the SDK's `signing_name`).
const SIGNING_NAME: &str = "execute-api";
/// What the SDK sends for a `PostToConnection` blob.
const CONTENT_TYPE: &str = "application/octet-stream";
/// As the SDK's HTTP client: an idle connection is dropped before the server's side (or a frozen
/// Lambda's) can silently close it under a request.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(90);
/// An error body is read for its message only; a proxy's HTML page is cut here.
const ERROR_BODY_LIMIT: usize = 4096;

#[derive(Debug, thiserror::Error)]
pub enum SignedNotifierError {
    #[error("no AWS region configured: the signature needs one (set AWS_REGION)")]
    NoRegion,
    #[error("no credentials provider configured")]
    NoCredentials,
    #[error("the management endpoint {0:?} has no host a request can carry")]
    NoHost(String),
}

type HttpsClient = Client<AheadConnector, Full<Bytes>>;

pub struct SignedNotifier {
    http: HttpsClient,
    /// The client's connector, which opens connections ahead of posts (`prepare`).
    connections: AheadConnector,
    /// The endpoint, where connections are opened ahead to.
    endpoint: Uri,
    /// `{endpoint}/@connections/`: a post appends the encoded id.
    url_prefix: String,
    /// The endpoint's authority, the `host` header of every request.
    host: HeaderValue,
    signer: Signer,
    credentials: CachedCredentials,
    time: SharedTimeSource,
    /// Connect + read, as the SDK notifier's `operation_attempt_timeout`.
    attempt_timeout: Duration,
    /// The client's connector, whose roots `read_roots_in_background` reads ahead.
    tls: LazyTlsConnector,
    /// Whether the endpoint is https, the only case with roots to read.
    https: bool,
}

impl SignedNotifier {
    /// Region, credentials chain and time source from the shared config, like the SDK client.
    pub fn new(
        sdk: &SdkConfig,
        endpoint: &ManagementEndpoint,
        timeouts: NotifierTimeouts,
    ) -> Result<Self, SignedNotifierError> {
        let region = sdk.region().ok_or(SignedNotifierError::NoRegion)?;
        let provider = sdk
            .credentials_provider()
            .ok_or(SignedNotifierError::NoCredentials)?;
        let time = sdk
            .time_source()
            .unwrap_or_else(|| SharedTimeSource::new(SystemTimeSource::new()));
        let no_host = || SignedNotifierError::NoHost(endpoint.as_str().to_string());
        let uri = endpoint.as_str().parse::<Uri>().map_err(|_| no_host())?;
        let host = uri
            .authority()
            .and_then(|authority| HeaderValue::try_from(authority.as_str()).ok())
            .ok_or_else(no_host)?;
        let mut http = HttpConnector::new();
        http.set_connect_timeout(Some(timeouts.connect));
        http.set_nodelay(true);
        http.enforce_http(false);
        // https in AWS; plain http for the local gateway and test servers.
        let connector = LazyTlsConnector::new(http);
        let https = uri.scheme() == Some(&http::uri::Scheme::HTTPS);
        let attempt_timeout = timeouts.connect + timeouts.read;
        let connections = AheadConnector::new(connector.clone(), attempt_timeout);
        Ok(Self {
            http: Client::builder(TokioExecutor::new())
                .pool_timer(TokioTimer::new())
                .pool_idle_timeout(POOL_IDLE_TIMEOUT)
                .build(connections.clone()),
            connections,
            endpoint: uri,
            url_prefix: format!("{}/@connections/", endpoint.as_str()),
            host,
            signer: Signer::new(region.as_ref(), SIGNING_NAME),
            credentials: CachedCredentials::new(provider, time.clone()),
            time,
            attempt_timeout,
            tls: connector,
            https,
        })
    }

    /// For an https endpoint, starts reading the root certificates now, on a thread of their own,
    /// instead of at the first post: a Lambda whose events post calls this during its init, when
    /// the read is off the path to the first event. `None` for a plain-http endpoint.
    pub fn read_roots_in_background(&self) -> Option<std::thread::JoinHandle<()>> {
        if self.https {
            self.tls.read_roots_in_background()
        } else {
            None
        }
    }

    async fn call(
        &self,
        method: Method,
        to: &ConnectionId,
        body: Bytes,
    ) -> Result<(), NotifyError> {
        let identity = self.credentials.get().await.map_err(|e| {
            status::notify_error(
                CallFailure::NotSent,
                format!("no credentials to sign with: {e}"),
            )
        })?;
        let request = self
            .request(method, to, body)
            .and_then(|mut request| {
                self.signer.sign(&mut request, &identity, self.time.now())?;
                Ok(request.map(Full::new))
            })
            .map_err(|e| status::notify_error(CallFailure::NotSent, e))?;
        match tokio::time::timeout(self.attempt_timeout, self.exchange(request)).await {
            Ok(outcome) => outcome,
            Err(_) => Err(status::notify_error(
                CallFailure::NoAnswer,
                format!("no answer within {:?}", self.attempt_timeout),
            )),
        }
    }

    /// `{endpoint}/@connections/{id}` with exactly the headers that are signed, and no others.
    fn request(
        &self,
        method: Method,
        to: &ConnectionId,
        body: Bytes,
    ) -> Result<Request<Bytes>, String> {
        let mut url = String::with_capacity(self.url_prefix.len() + 3 * to.as_str().len());
        url.push_str(&self.url_prefix);
        url.extend(utf8_percent_encode(to.as_str(), LABEL));
        let uri = Uri::try_from(url).map_err(|e| format!("bad URL for {to}: {e}"))?;
        let mut builder = Request::builder()
            .method(method)
            .uri(uri)
            .header(header::HOST, self.host.clone());
        if !body.is_empty() {
            builder = builder
                .header(header::CONTENT_TYPE, CONTENT_TYPE)
                .header(header::CONTENT_LENGTH, body.len());
        }
        builder.body(body).map_err(|e| format!("bad request: {e}"))
    }

    async fn exchange(&self, request: Request<Full<Bytes>>) -> Result<(), NotifyError> {
        let response = self.http.request(request).await.map_err(|e| {
            status::notify_error(CallFailure::NoAnswer, format!("@connections: {e}"))
        })?;
        let status = response.status();
        // Read to the end even on success: a response left unread cannot go back to the pool.
        let body = Limited::new(response.into_body(), ERROR_BODY_LIMIT)
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        if status.is_success() {
            return Ok(());
        }
        Err(status::notify_error(
            CallFailure::Status(status.as_u16()),
            format!(
                "@connections answered {status}: {}",
                String::from_utf8_lossy(&body)
            ),
        ))
    }
}

#[async_trait]
impl ClientNotifier for SignedNotifier {
    async fn send(&self, to: &ConnectionId, frame: &[u8]) -> Result<(), NotifyError> {
        self.call(Method::POST, to, Bytes::copy_from_slice(frame))
            .await
    }

    async fn disconnect(&self, id: &ConnectionId) -> Result<(), NotifyError> {
        self.call(Method::DELETE, id, Bytes::new()).await
    }

    fn prepare(&self, posts: usize) -> usize {
        self.connections.open_ahead(&self.endpoint, posts)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    async fn notifier_for(url: &str) -> SignedNotifier {
        let sdk = crate::wiring::offline_sdk_config().await;
        let endpoint = ManagementEndpoint::parse(url).expect("an endpoint");
        SignedNotifier::new(&sdk, &endpoint, NotifierTimeouts::default()).expect("a notifier")
    }

    #[tokio::test]
    async fn it_reads_no_roots_until_asked_or_until_its_first_https_connection() {
        let notifier =
            notifier_for("https://abc123.execute-api.us-east-1.amazonaws.com/prod").await;

        assert!(!notifier.tls.roots_attempted());
    }

    #[tokio::test]
    async fn asked_for_an_https_endpoint_it_reads_them_on_a_thread_of_their_own() {
        let notifier =
            notifier_for("https://abc123.execute-api.us-east-1.amazonaws.com/prod").await;

        let reading = notifier
            .read_roots_in_background()
            .expect("a reading thread");
        reading.join().expect("the thread ends");

        assert!(notifier.tls.roots_attempted());
    }

    /// A keep-alive `@connections` stand-in on a free port answering 200 to every request, and
    /// the connections it accepted.
    async fn answering_server() -> (String, Arc<AtomicUsize>) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a free port");
        let url = format!(
            "http://{}/stage",
            listener.local_addr().expect("its address")
        );
        let accepted = Arc::new(AtomicUsize::new(0));
        let counting = accepted.clone();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                counting.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    let mut buffer = Vec::new();
                    let mut chunk = [0u8; 4096];
                    loop {
                        // One request: its headers, then the body its content-length says.
                        let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") else {
                            match socket.read(&mut chunk).await {
                                Ok(0) | Err(_) => return,
                                Ok(read) => buffer.extend_from_slice(&chunk[..read]),
                            }
                            continue;
                        };
                        let headers = String::from_utf8_lossy(&buffer[..end]).to_lowercase();
                        let length: usize = headers
                            .lines()
                            .find_map(|l| l.strip_prefix("content-length:"))
                            .and_then(|v| v.trim().parse().ok())
                            .unwrap_or(0);
                        if buffer.len() < end + 4 + length {
                            match socket.read(&mut chunk).await {
                                Ok(0) | Err(_) => return,
                                Ok(read) => buffer.extend_from_slice(&chunk[..read]),
                            }
                            continue;
                        }
                        buffer.drain(..end + 4 + length);
                        let answer = b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n";
                        if socket.write_all(answer).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        (url, accepted)
    }

    async fn post_at_once(notifier: &SignedNotifier, count: usize) {
        let ids: Vec<ConnectionId> = (0..count)
            .map(|i| ConnectionId::parse(format!("c{i}=")).expect("an id"))
            .collect();
        let posts = ids.iter().map(|id| notifier.send(id, b"{}"));
        for posted in futures::future::join_all(posts).await {
            posted.expect("a 200");
        }
    }

    #[tokio::test]
    async fn prepared_for_a_fan_out_a_fresh_notifier_opens_its_connections_ahead_and_no_more() {
        let (url, accepted) = answering_server().await;
        let notifier = notifier_for(&url).await;

        assert_eq!(notifier.prepare(8), 8);
        // Opened before any post.
        crate::apigateway::ahead::tests::accepted_reaches(&accepted, 8).await;
        assert_eq!(accepted.load(Ordering::SeqCst), 8);
        post_at_once(&notifier, 8).await;

        assert_eq!(accepted.load(Ordering::SeqCst), 8);
        assert_eq!(notifier.prepare(8), 0, "a warm pool holds them already");
        post_at_once(&notifier, 8).await;
        assert_eq!(accepted.load(Ordering::SeqCst), 8);
    }

    #[tokio::test]
    async fn asked_for_a_plain_http_endpoint_it_reads_none() {
        let notifier = notifier_for("http://127.0.0.1:9/local").await;

        assert!(notifier.read_roots_in_background().is_none());
        assert!(!notifier.tls.roots_attempted());
    }
}
