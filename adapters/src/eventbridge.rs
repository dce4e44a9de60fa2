//! `LifecycleEvents` on an EventBridge bus: one `PutEvents` per event, signed with SigV4 over the
//! same pooled hyper client as the signed notifier (no SDK client of its own: one fewer crate to
//! build and load). The schema is docs/deploying.md, "Lifecycle events": `source` the stack's
//! service and stage, `detail-type` the kind, `detail` [`LifecycleEvent::detail`].
//!
//! Publishing never fails the caller and never holds it long: a call that fails, is refused or
//! takes more than [`PUT_TIMEOUT`] is logged and counted (`LifecycleEventsFailed`, alarmed).

use std::time::Duration;

use async_trait::async_trait;
use aws_config::SdkConfig;
use aws_smithy_async::time::{SharedTimeSource, SystemTimeSource};
use domain::lifecycle::{LifecycleEvent, LifecycleEvents};
use http::{Method, Request, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use crate::apigateway::credentials_cache::CachedCredentials;
use crate::apigateway::lazy_tls::LazyTlsConnector;
use crate::apigateway::sigv4::sign_for_service;

/// The longest a client's action waits for its event: past it, the event is counted as failed.
pub const PUT_TIMEOUT: Duration = Duration::from_millis(1000);
/// EventBridge's JSON protocol.
const CONTENT_TYPE: &str = "application/x-amz-json-1.1";
const TARGET: &str = "AWSEvents.PutEvents";
const SIGNING_NAME: &str = "events";
/// An answer is read for `FailedEntryCount` and an error's message only.
const BODY_LIMIT: usize = 16 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum EventBridgeError {
    #[error("no AWS region configured: the signature needs one (set AWS_REGION)")]
    NoRegion,
    #[error("no credentials provider configured")]
    NoCredentials,
    #[error("the events endpoint {0:?} is not a URL")]
    BadEndpoint(String),
}

pub struct EventBridgeEvents {
    http: Client<LazyTlsConnector, Full<Bytes>>,
    endpoint: http::Uri,
    region: String,
    credentials: CachedCredentials,
    time: SharedTimeSource,
    bus: String,
    source: String,
}

impl EventBridgeEvents {
    /// Events to `bus`, with `source`; at `endpoint` when given (moto, a stub), else EventBridge's
    /// regional endpoint.
    pub fn new(
        sdk: &SdkConfig,
        endpoint: Option<&str>,
        bus: impl Into<String>,
        source: impl Into<String>,
    ) -> Result<Self, EventBridgeError> {
        let region = sdk.region().ok_or(EventBridgeError::NoRegion)?.to_string();
        let provider = sdk
            .credentials_provider()
            .ok_or(EventBridgeError::NoCredentials)?;
        let time = sdk
            .time_source()
            .unwrap_or_else(|| SharedTimeSource::new(SystemTimeSource::new()));
        let url = match endpoint {
            Some(url) => url.trim_end_matches('/').to_string(),
            None => format!(
                "https://events.{region}.{}",
                crate::apigateway::url_suffix_for(&region)
            ),
        };
        let endpoint = format!("{url}/")
            .parse::<http::Uri>()
            .map_err(|_| EventBridgeError::BadEndpoint(url.clone()))?;
        if endpoint.authority().is_none() {
            return Err(EventBridgeError::BadEndpoint(url));
        }
        let mut http = HttpConnector::new();
        http.set_connect_timeout(Some(PUT_TIMEOUT));
        http.set_nodelay(true);
        http.enforce_http(false);
        Ok(Self {
            http: Client::builder(TokioExecutor::new())
                .pool_timer(TokioTimer::new())
                .build(LazyTlsConnector::new(http)),
            endpoint,
            region,
            credentials: CachedCredentials::new(provider, time.clone()),
            time,
            bus: bus.into(),
            source: source.into(),
        })
    }

    /// The `PutEvents` body for one event.
    pub fn body(&self, event: &LifecycleEvent) -> String {
        serde_json::json!({"Entries": [{
            "EventBusName": self.bus,
            "Source": self.source,
            "DetailType": event.kind.name(),
            "Detail": event.detail().to_string(),
        }]})
        .to_string()
    }

    async fn put(&self, event: &LifecycleEvent) -> Result<(), String> {
        let identity = self
            .credentials
            .get()
            .await
            .map_err(|e| format!("no credentials to sign with: {e}"))?;
        let body = Bytes::from(self.body(event));
        let host = self
            .endpoint
            .authority()
            .map(|a| a.as_str().to_string())
            .unwrap_or_default();
        let mut request = Request::builder()
            .method(Method::POST)
            .uri(self.endpoint.clone())
            .header(header::HOST, host)
            .header(header::CONTENT_TYPE, CONTENT_TYPE)
            .header("x-amz-target", TARGET)
            .body(body)
            .map_err(|e| format!("bad request: {e}"))?;
        sign_for_service(
            &mut request,
            &identity,
            &self.region,
            SIGNING_NAME,
            self.time.now(),
        )?;
        let (parts, body) = request.into_parts();
        let response = self
            .http
            .request(Request::from_parts(parts, Full::new(body)))
            .await
            .map_err(|e| format!("PutEvents: {e}"))?;
        let status = response.status();
        let answer = Limited::new(response.into_body(), BODY_LIMIT)
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        let answer = String::from_utf8_lossy(&answer);
        if !status.is_success() {
            return Err(format!("PutEvents answered {status}: {answer}"));
        }
        let failed = serde_json::from_str::<serde_json::Value>(&answer)
            .ok()
            .and_then(|v| {
                v.get("FailedEntryCount")
                    .and_then(serde_json::Value::as_u64)
            })
            .unwrap_or(0);
        if failed > 0 {
            return Err(format!("PutEvents refused the entry: {answer}"));
        }
        Ok(())
    }
}

#[async_trait]
impl LifecycleEvents for EventBridgeEvents {
    async fn publish(&self, event: &LifecycleEvent) {
        let outcome = match tokio::time::timeout(PUT_TIMEOUT, self.put(event)).await {
            Ok(outcome) => outcome,
            Err(_) => Err(format!("PutEvents took more than {PUT_TIMEOUT:?}")),
        };
        if let Err(error) = outcome {
            tracing::warn!(kind = event.kind.name(), %error, "lifecycle event not published");
            crate::metrics::lifecycle_event_failed();
        }
    }
}
