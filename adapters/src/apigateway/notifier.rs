//! The `ClientNotifier` on API Gateway's `@connections` API.

use std::time::Duration;

use async_trait::async_trait;
use aws_config::SdkConfig;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_sdk_apigatewaymanagement::Client;
use aws_sdk_apigatewaymanagement::error::{DisplayErrorContext, SdkError};
use aws_sdk_apigatewaymanagement::primitives::Blob;
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use domain::{ClientNotifier, ConnectionId, NotifyError};

use super::ManagementEndpoint;

/// How long one call may take. Short on purpose: a fan-out of thousands must not wait 30 s on
/// one slow post, and the domain retries what is worth retrying.
#[derive(Debug, Clone, Copy)]
pub struct NotifierTimeouts {
    pub connect: Duration,
    pub read: Duration,
}

impl Default for NotifierTimeouts {
    fn default() -> Self {
        Self {
            connect: Duration::from_secs(1),
            read: Duration::from_secs(3),
        }
    }
}

pub struct ApiGatewayNotifier {
    client: Client,
}

impl ApiGatewayNotifier {
    /// Builds the client once, from the shared config, with an explicit endpoint, explicit
    /// timeouts and the SDK's own retries off (the domain retries, and counts what it retries).
    pub fn new(sdk: &SdkConfig, endpoint: &ManagementEndpoint, timeouts: NotifierTimeouts) -> Self {
        let config = aws_sdk_apigatewaymanagement::config::Builder::from(sdk)
            .endpoint_url(endpoint.as_str())
            .retry_config(RetryConfig::disabled())
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(timeouts.connect)
                    .read_timeout(timeouts.read)
                    .operation_attempt_timeout(timeouts.connect + timeouts.read)
                    .build(),
            )
            .build();
        Self {
            client: Client::from_conf(config),
        }
    }
}

/// By HTTP status first: some servers answer 410 with an empty body, which the SDK cannot model.
/// Every status has a deliberate answer (the table is in `ClientNotifier`'s docs).
fn notify_error<E>(err: SdkError<E, HttpResponse>) -> NotifyError
where
    E: std::error::Error + 'static,
{
    let status = err.raw_response().map(|r| r.status().as_u16());
    let text = DisplayErrorContext(&err).to_string();
    match (status, &err) {
        (Some(410), _) => NotifyError::Gone,
        (Some(413), _) => NotifyError::PayloadTooLarge,
        (Some(429), _) => NotifyError::Throttled,
        // The server gave up waiting for the request: the next attempt may well get through.
        (Some(408), _) => NotifyError::Transient(text),
        (Some(500..=599), _) => NotifyError::Transient(text),
        // 403 (IAM, wrong stage), 404 (a URL that is no management API: a custom domain without
        // the base path, a proxy), 400 (a request API Gateway refuses: the ids we post to come
        // from API Gateway itself, so this is a bug here, not a client's doing), 401, 3xx and
        // every other status: no retry fixes these, and each one is worth an operator's look.
        (Some(_), _) => NotifyError::Forbidden(text),
        (None, SdkError::ConstructionFailure(_)) => NotifyError::Forbidden(text),
        (None, _) => NotifyError::Transient(text),
    }
}

#[async_trait]
impl ClientNotifier for ApiGatewayNotifier {
    async fn send(&self, to: &ConnectionId, frame: &[u8]) -> Result<(), NotifyError> {
        self.client
            .post_to_connection()
            .connection_id(to.as_str())
            .data(Blob::new(frame))
            .send()
            .await
            .map(|_| ())
            .map_err(notify_error)
    }

    async fn disconnect(&self, id: &ConnectionId) -> Result<(), NotifyError> {
        self.client
            .delete_connection()
            .connection_id(id.as_str())
            .send()
            .await
            .map(|_| ())
            .map_err(notify_error)
    }
}
