//! Building the real service once: SDK clients, adapters, domain service, handler.

use std::sync::Arc;
use std::time::Duration;

use aws_config::SdkConfig;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use domain::delivery::DeliveryWorker;
use domain::{ClientNotifier, ConnectionRepository, Settings, WebSocketService};

use crate::apigateway::inbound::{Route, WebSocketHandler};
use crate::apigateway::{NotifierTimeouts, RootsRead, SignedNotifierError};
use crate::clock::{SystemClock, TokioSleeper};
use crate::config::ServiceConfig;
use crate::dynamodb::{DynamoBans, DynamoConnectionRepository, DynamoRoomLog};
use crate::eventbridge::{EventBridgeError, EventBridgeEvents};
use crate::room_policy::DefaultRoomPolicy;
use crate::sdk_http::{lambda_sdk_loader, sdk_loader};
use crate::settings;
use crate::sqs::{MissingQueueUrl, SqsDeliveryQueue};

/// The notifier is chosen at start-up (`NOTIFIER_CLIENT`); one dynamic call per post is noise
/// next to an HTTP request.
pub type AwsHandler = WebSocketHandler<DynamoConnectionRepository, Arc<dyn ClientNotifier>>;

/// The shared SDK configuration: credentials and region from the Lambda environment, and one
/// SDK HTTPS client for every SDK client (`sdk_http.rs`), whose connector for `sdk_timeouts` a
/// thread builds during init.
pub async fn sdk_config() -> SdkConfig {
    lambda_sdk_loader(&sdk_timeouts()).load().await
}

/// An SDK configuration that cannot reach AWS: dummy credentials, a fixed region, and so only the
/// endpoints a caller names (moto, the local gateway, a stub). For tests, benchmarks and tools.
pub async fn offline_sdk_config() -> SdkConfig {
    sdk_loader()
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
            "offline", "offline", None, None, "offline",
        ))
        .load()
        .await
}

/// The DynamoDB client: the SDK's standard retry mode (3 attempts, exponential backoff with
/// jitter, throttling errors included) and timeouts short enough to fit a Lambda's budget.
pub fn dynamodb_client(sdk: &SdkConfig, endpoint: Option<&str>) -> aws_sdk_dynamodb::Client {
    let mut config = aws_sdk_dynamodb::config::Builder::from(sdk)
        .retry_config(sdk_retries())
        .timeout_config(sdk_timeouts());
    if let Some(url) = endpoint {
        config = config.endpoint_url(url);
    }
    aws_sdk_dynamodb::Client::from_conf(config.build())
}

/// The retries of every SDK client here: the standard mode (3 attempts, exponential backoff with
/// jitter, throttling errors included).
pub fn sdk_retries() -> RetryConfig {
    RetryConfig::standard().with_max_attempts(3)
}

/// The timeouts of every SDK client here: short enough that three attempts fit well inside a
/// Lambda's budget.
pub fn sdk_timeouts() -> TimeoutConfig {
    TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(1))
        .operation_attempt_timeout(Duration::from_secs(3))
        .build()
}

pub fn service<R: ConnectionRepository, N: ClientNotifier>(
    repo: R,
    notifier: N,
    settings: Settings,
) -> WebSocketService<R, N> {
    WebSocketService::new(
        repo,
        notifier,
        Arc::new(SystemClock),
        Arc::new(TokioSleeper),
        settings,
    )
    .with_room_policy(Arc::new(DefaultRoomPolicy))
    .with_hooks(crate::hooks::project_hooks())
}

/// The handler the Lambda of `route` runs: DynamoDB for storage, `@connections` for replies.
/// What its first event will need is built during init, on threads of its own, beside the path
/// to that event: the SDK's connector always (every route calls DynamoDB; `sdk_http.rs`), the
/// notifier's root certificates if the route posts.
pub async fn aws_handler(config: &ServiceConfig, route: Route) -> Result<AwsHandler, WiringError> {
    let sdk = sdk_config().await;
    let client = dynamodb_client(&sdk, None);
    let log = Arc::new(DynamoRoomLog::new(client.clone(), config.dynamo.clone()));
    let repo = DynamoConnectionRepository::new(client.clone(), config.dynamo.clone());
    let roots = if route.posts() {
        RootsRead::InBackground
    } else {
        RootsRead::AtFirstPost
    };
    let notifier =
        config
            .notifier_client
            .build(&sdk, &config.endpoint, NotifierTimeouts::default(), roots)?;
    let bans = Arc::new(DynamoBans::new(client.clone(), config.dynamo.table.clone()));
    let mut service = service(repo, notifier, config.settings.clone())
        .with_room_log(log)
        .with_bans(bans);
    if let Some(events) = lifecycle_events(&sdk, config)? {
        service = service.with_lifecycle_events(events);
    }
    // `reauth` checks a token as the authorizer does: with auth on, the stack gives `$default`
    // the authorizer's keys, issuer and audience.
    if route == Route::Message && crate::auth::AuthConfig::is_on(|name| std::env::var(name).ok()) {
        let verifier = crate::auth::AuthConfig::from_env()
            .and_then(|auth| auth.verifier())
            .map_err(|e| WiringError::Auth(e.to_string()))?;
        service = service.with_token_verifier(Arc::new(verifier));
    }
    if let Some(url) = &config.internal_queue_url {
        service =
            service.with_delivery_queue(Arc::new(SqsDeliveryQueue::from_sdk(&sdk, url, None)));
    }
    Ok(WebSocketHandler::new(service).requiring_principal(config.require_principal))
}

/// The fan-out function's worker: the same store and notifier as the handler, and the queue its
/// continuations go to. Every job posts, so both copies of the roots are read during init.
pub async fn aws_worker(
    config: &ServiceConfig,
) -> Result<DeliveryWorker<DynamoConnectionRepository, Arc<dyn ClientNotifier>>, WiringError> {
    let sdk = sdk_config().await;
    let url = config
        .internal_queue_url
        .clone()
        .ok_or(MissingQueueUrl(settings::INTERNAL_QUEUE_URL.name))?;
    let dead_letters = config
        .dead_letter_queue_url
        .clone()
        .ok_or(MissingQueueUrl(settings::DEAD_LETTER_QUEUE_URL.name))?;
    let client = dynamodb_client(&sdk, None);
    let log = Arc::new(DynamoRoomLog::new(client.clone(), config.dynamo.clone()));
    let repo = DynamoConnectionRepository::new(client.clone(), config.dynamo.clone());
    let notifier = config.notifier_client.build(
        &sdk,
        &config.endpoint,
        NotifierTimeouts::default(),
        RootsRead::InBackground,
    )?;
    let bans = Arc::new(DynamoBans::new(client.clone(), config.dynamo.table.clone()));
    let worker = DeliveryWorker::new(
        repo,
        notifier,
        Arc::new(SqsDeliveryQueue::from_sdk(&sdk, url, None).with_dead_letters(dead_letters)),
        Arc::new(SystemClock),
        Arc::new(TokioSleeper),
        config.settings.clone(),
    )
    .with_room_log(log)
    .with_bans(bans);
    Ok(match lifecycle_events(&sdk, config)? {
        Some(events) => worker.with_lifecycle_events(events),
        None => worker,
    })
}

/// The EventBridge publisher when the stack has a bus (`EVENT_BUS_NAME`); at
/// `AWS_ENDPOINT_URL_EVENTBRIDGE` when that is set (the SDKs' own variable: the rehearsal's).
fn lifecycle_events(
    sdk: &SdkConfig,
    config: &ServiceConfig,
) -> Result<Option<Arc<dyn domain::lifecycle::LifecycleEvents>>, EventBridgeError> {
    let Some(bus) = &config.event_bus else {
        return Ok(None);
    };
    let endpoint = std::env::var("AWS_ENDPOINT_URL_EVENTBRIDGE").ok();
    Ok(Some(Arc::new(EventBridgeEvents::new(
        sdk,
        endpoint.as_deref(),
        bus.clone(),
        config.event_source.clone(),
    )?)))
}

/// Why the fan-out worker could not be built.
#[derive(Debug, thiserror::Error)]
pub enum WiringError {
    #[error(transparent)]
    Queue(#[from] MissingQueueUrl),
    #[error(transparent)]
    Notifier(#[from] SignedNotifierError),
    #[error(transparent)]
    Events(#[from] EventBridgeError),
    #[error("the token verifier for reauth: {0}")]
    Auth(String),
}
