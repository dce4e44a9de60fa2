//! From flags to a running configuration: the store, the notifier and the handler.

use std::sync::Arc;

use adapters::apigateway::inbound::WebSocketHandler;
use adapters::apigateway::{ManagementEndpoint, NotifierTimeouts, RootsRead};
use adapters::clock::{SystemClock, TokioSleeper};
use adapters::dynamodb::{DynamoConnectionRepository, DynamoSettings, create_table_if_missing};
use adapters::memory::{InMemoryConnectionRepository, MemoryQueue};
use adapters::wiring;
use domain::delivery::DeliveryWorker;
use domain::{ClientNotifier, ConnectionRepository, RateLimit, Settings};

use adapters::sqs::{SqsDeliveryQueue, SqsPoller, sqs_client};

use crate::bounded_notifier::{BoundedNotifier, DEFAULT_MAX_POSTS_IN_FLIGHT};
use crate::delivery::{LocalDelivery, Transport};
use crate::{EventHandler, GatewayConfig, InProcessNotifier, NotifierKind, Options, Sockets};

impl Options {
    pub async fn gateway_config(&self) -> Result<GatewayConfig, Box<dyn std::error::Error>> {
        self.check_delivery()?;
        // The notifier posts to this gateway's own @connections API, exactly as in AWS.
        let listener = tokio::net::TcpListener::bind((self.host, self.port))
            .await
            .map_err(|e| format!("cannot listen on {}:{}: {e}", self.host, self.port))?;
        let addr = listener.local_addr()?;
        let endpoint = ManagementEndpoint::parse(&format!("http://{addr}/{}", self.stage))?;
        let sdk = local_sdk_config().await;
        let sockets = Arc::new(Sockets::default());
        let notifier: Arc<dyn ClientNotifier> = match self.notifier {
            NotifierKind::Http => Arc::new(BoundedNotifier::new(
                self.notifier_client.build(
                    &sdk,
                    &endpoint,
                    NotifierTimeouts::default(),
                    RootsRead::AtFirstPost,
                )?,
                DEFAULT_MAX_POSTS_IN_FLIGHT,
            )),
            NotifierKind::InProcess => Arc::new(InProcessNotifier {
                sockets: sockets.clone(),
                max_message_bytes: self.max_message_bytes,
            }),
        };
        let settings = Settings {
            max_message_bytes: self.max_message_bytes,
            presence_max_members: usize::try_from(self.presence_max_members).unwrap_or(0),
            rate_limit: RateLimit {
                per_second: self.rate_limit_per_second,
                burst: self.rate_limit_burst,
            },
            inline_recipients: usize::try_from(self.inline_recipients).unwrap_or(usize::MAX),
            job_safety_margin: self.job_safety_margin(),
            ..Settings::default()
        };
        // One store shared by the handler and the inspector, which asks it for rooms.
        let rooms: Arc<dyn ConnectionRepository> = match &self.dynamodb_endpoint {
            None => Arc::new(InMemoryConnectionRepository::default()),
            Some(url) => {
                let client = wiring::dynamodb_client(&sdk, Some(url));
                create_table_if_missing(&client, &self.table).await?;
                Arc::new(DynamoConnectionRepository::new(
                    client,
                    DynamoSettings::new(&self.table),
                ))
            }
        };
        let (handler, delivery) = self.handler(&sdk, rooms.clone(), notifier, settings);
        Ok(GatewayConfig {
            sockets,
            authorizer: self.authorizer()?,
            listener,
            stage: self.stage.clone(),
            limits: self.limits(),
            browser: self.browser_policy(),
            handler,
            delivery,
            rooms: Some(rooms),
        })
    }

    /// The handler, and with `--workers` above 0 the queue it hands large broadcasts to and the
    /// workers that drain it, sharing its store and notifier.
    fn handler(
        &self,
        sdk: &aws_config::SdkConfig,
        repo: Arc<dyn ConnectionRepository>,
        notifier: Arc<dyn ClientNotifier>,
        settings: Settings,
    ) -> (Arc<dyn EventHandler>, Option<LocalDelivery>) {
        let service = wiring::service(repo.clone(), notifier.clone(), settings.clone());
        if self.workers == 0 {
            return (Arc::new(WebSocketHandler::new(service)), None);
        }
        let transport = self.transport(sdk);
        let worker = DeliveryWorker::new(
            repo,
            notifier,
            transport.sender(),
            Arc::new(SystemClock),
            Arc::new(TokioSleeper),
            settings,
        );
        let workers = usize::try_from(self.workers).unwrap_or(1);
        let service = service.with_delivery_queue(transport.sender());
        let delivery = LocalDelivery::start(transport, worker, workers, self.job_deadline());
        (Arc::new(WebSocketHandler::new(service)), Some(delivery))
    }
}

impl Options {
    /// The in-memory queue, or the SQS queue of --queue-url.
    fn transport(&self, sdk: &aws_config::SdkConfig) -> Transport {
        match &self.queue_url {
            None => Transport::Memory(MemoryQueue::default()),
            Some(url) => {
                let client = sqs_client(sdk, self.sqs_endpoint.as_deref());
                Transport::Sqs {
                    sender: SqsDeliveryQueue::new(client.clone(), url),
                    poller: SqsPoller::new(client, url),
                }
            }
        }
    }
}

/// Local runs need no AWS account: the SDK gets dummy credentials unless real ones are set, and
/// never probes instance metadata. Its root certificates are read only if a request is https.
async fn local_sdk_config() -> aws_config::SdkConfig {
    let mut loader = adapters::sdk_http::sdk_loader();
    if std::env::var_os("AWS_REGION").is_none() {
        loader = loader.region(aws_config::Region::new("us-east-1"));
    }
    if std::env::var_os("AWS_ACCESS_KEY_ID").is_none() {
        loader = loader.credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
            "local",
            "local",
            None,
            None,
            "local-gateway",
        ));
    }
    loader.load().await
}
