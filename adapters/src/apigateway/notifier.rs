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
use super::status::{self, CallFailure};

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
        Self::from_config(Self::config(sdk, endpoint, timeouts).build())
    }

    /// The configuration `new` uses, for a caller that adds to it (a test's interceptor).
    pub fn config(
        sdk: &SdkConfig,
        endpoint: &ManagementEndpoint,
        timeouts: NotifierTimeouts,
    ) -> aws_sdk_apigatewaymanagement::config::Builder {
        aws_sdk_apigatewaymanagement::config::Builder::from(sdk)
            .endpoint_url(endpoint.as_str())
            .retry_config(RetryConfig::disabled())
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(timeouts.connect)
                    .read_timeout(timeouts.read)
                    .operation_attempt_timeout(timeouts.connect + timeouts.read)
                    .build(),
            )
    }

    pub fn from_config(config: aws_sdk_apigatewaymanagement::Config) -> Self {
        Self {
            client: Client::from_conf(config),
        }
    }
}

/// The SDK's error, reduced to what the shared status table needs.
fn notify_error<E>(err: SdkError<E, HttpResponse>) -> NotifyError
where
    E: std::error::Error + 'static,
{
    let failure = match (err.raw_response(), &err) {
        (Some(response), _) => CallFailure::Status(response.status().as_u16()),
        (None, SdkError::ConstructionFailure(_)) => CallFailure::NotSent,
        (None, _) => CallFailure::NoAnswer,
    };
    status::notify_error(failure, DisplayErrorContext(&err).to_string())
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
