//! Lifecycle events locally: what the stack publishes to EventBridge, kept for the inspector
//! (`GET /inspector/lifecycle`, the last [`KEPT`]) and POSTed to `--events-webhook`, in the
//! EventBridge event's shape (`source`, `detail-type`, `detail`). A webhook that fails or is slow
//! costs the client nothing: it is counted (`LifecycleEventsFailed`) and logged.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use domain::lifecycle::{LifecycleEvent, LifecycleEvents};
use http_body_util::Full;
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};

/// Events the inspector lists.
pub const KEPT: usize = 200;
/// The longest a client's action waits for the webhook.
const WEBHOOK_TIMEOUT: Duration = Duration::from_secs(1);
/// The events' `source`, as `EVENT_SOURCE` in a stack.
pub const SOURCE: &str = "ws-chat.local";

/// The inspector's view of the events: `None` under `--deployment`.
#[derive(Clone)]
pub struct Recent(pub Option<std::sync::Arc<LocalLifecycleEvents>>);

pub struct LocalLifecycleEvents {
    webhook: Option<(Client<HttpConnector, Full<Bytes>>, hyper::Uri)>,
    kept: Mutex<VecDeque<Value>>,
}

impl LocalLifecycleEvents {
    /// Events kept for the inspector, and POSTed to `webhook` (plain http) when given.
    pub fn new(webhook: Option<&str>) -> Result<Self, String> {
        let webhook = match webhook {
            None => None,
            Some(url) => {
                let uri: hyper::Uri = url
                    .parse()
                    .map_err(|e| format!("--events-webhook {url:?}: {e}"))?;
                if uri.scheme_str() != Some("http") || uri.authority().is_none() {
                    return Err(format!(
                        "--events-webhook {url:?}: an http:// URL (the local gateway posts plain HTTP)"
                    ));
                }
                let mut connector = HttpConnector::new();
                connector.set_connect_timeout(Some(WEBHOOK_TIMEOUT));
                Some((Client::builder(TokioExecutor::new()).build(connector), uri))
            }
        };
        Ok(Self {
            webhook,
            kept: Mutex::new(VecDeque::new()),
        })
    }

    /// The event as EventBridge delivers it to a rule's target.
    pub fn envelope(event: &LifecycleEvent) -> Value {
        json!({
            "version": "0",
            "id": uuid::Uuid::new_v4().to_string(),
            "detail-type": event.kind.name(),
            "source": SOURCE,
            "time": time::OffsetDateTime::from_unix_timestamp_nanos(
                i128::from(event.at.as_millis()) * 1_000_000,
            )
            .ok()
            .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok()),
            "detail": event.detail(),
        })
    }

    /// The last events, oldest first, as a JSON array.
    pub fn recent(&self) -> Value {
        let kept = self.kept.lock().unwrap_or_else(|e| e.into_inner());
        Value::Array(kept.iter().cloned().collect())
    }

    async fn post(&self, body: String) -> Result<(), String> {
        let Some((client, uri)) = &self.webhook else {
            return Ok(());
        };
        let request = hyper::Request::post(uri.clone())
            .header(hyper::header::CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| e.to_string())?;
        let response = tokio::time::timeout(WEBHOOK_TIMEOUT, client.request(request))
            .await
            .map_err(|_| format!("no answer within {WEBHOOK_TIMEOUT:?}"))?
            .map_err(|e| e.to_string())?;
        if !response.status().is_success() {
            return Err(format!("answered {}", response.status()));
        }
        Ok(())
    }
}

#[async_trait]
impl LifecycleEvents for LocalLifecycleEvents {
    async fn publish(&self, event: &LifecycleEvent) {
        let envelope = Self::envelope(event);
        let body = envelope.to_string();
        {
            let mut kept = self.kept.lock().unwrap_or_else(|e| e.into_inner());
            if kept.len() == KEPT {
                kept.pop_front();
            }
            kept.push_back(envelope);
        }
        if let Err(error) = self.post(body).await {
            tracing::warn!(kind = event.kind.name(), %error, "lifecycle event: the webhook failed");
            adapters::metrics::lifecycle_event_failed();
        }
    }
}
