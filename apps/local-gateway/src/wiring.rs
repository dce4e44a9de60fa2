//! From flags to a running configuration: the store, the notifier and the handler.

use std::net::Ipv4Addr;
use std::sync::Arc;

use adapters::apigateway::inbound::WebSocketHandler;
use adapters::apigateway::{ManagementEndpoint, NotifierClient, NotifierTimeouts, RootsRead};
use adapters::clock::{SystemClock, TokioSleeper};
use adapters::dynamodb::DynamoBans;
use adapters::dynamodb::{
    DynamoConnectionRepository, DynamoRoomLog, DynamoSettings, create_table_if_missing,
};
use adapters::memory::{InMemoryBans, InMemoryConnectionRepository, InMemoryRoomLog, MemoryQueue};
use adapters::wiring;
use domain::delivery::DeliveryWorker;
use domain::sessions::Bans;
use domain::stream::RoomLog;
use domain::{ClientNotifier, ConnectionRepository, RateLimit, Settings};

use adapters::settings::{self, Setting};
use adapters::sqs::{Sources, SqsDeliveryQueue, SqsPoller, sqs_client};

use crate::bounded_notifier::{BoundedNotifier, DEFAULT_MAX_POSTS_IN_FLIGHT};
use crate::config::GatewayConfig;
use crate::delivery::{LocalDelivery, Transport};
use crate::deployment::{Deployed, Deployment};
use crate::events::ApiName;
use crate::flags::{NotifierKind, Options};
use crate::invoker::EventHandler;
use crate::lifecycle::LocalLifecycleEvents;
use crate::registry::{InProcessNotifier, Sockets};

impl Options {
    pub async fn gateway_config(&self) -> Result<GatewayConfig, Box<dyn std::error::Error>> {
        if let Some(path) = &self.deployment {
            return self.deployment_config(&Deployment::load(path)?).await;
        }
        let mut settings = self.service.domain()?;
        settings.max_message_bytes = self.max_message_bytes;
        self.check_delivery(&settings)?;
        let listener = tokio::net::TcpListener::bind((self.host, self.port))
            .await
            .map_err(|e| format!("cannot listen on {}:{}: {e}", self.host, self.port))?;
        // The notifier posts to this gateway's own @connections API over HTTP, exactly as in
        // AWS, on a loopback port of its own: its posts never compete with other clients for
        // --max-http-connections.
        let notifier_listener = match self.notifier {
            NotifierKind::Http => {
                let loopback = if self.host.is_loopback() {
                    self.host
                } else {
                    Ipv4Addr::LOCALHOST.into()
                };
                Some(tokio::net::TcpListener::bind((loopback, 0)).await?)
            }
            NotifierKind::InProcess => None,
        };
        let notifier_addr = match &notifier_listener {
            Some(own) => own.local_addr()?,
            None => listener.local_addr()?,
        };
        let endpoint =
            ManagementEndpoint::parse(&format!("http://{notifier_addr}/{}", self.stage))?;
        let sdk = local_sdk_config().await;
        let sockets = Arc::new(Sockets::default());
        let notifier: Arc<dyn ClientNotifier> = match self.notifier {
            NotifierKind::Http => Arc::new(BoundedNotifier::new(
                self.service
                    .parsed::<NotifierClient>(&adapters::settings::NOTIFIER_CLIENT)?
                    .build(
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
        // One store shared by the handler and the inspector, which asks it for rooms.
        let (rooms, log, bans): (
            Arc<dyn ConnectionRepository>,
            Arc<dyn RoomLog>,
            Arc<dyn Bans>,
        ) = match &self.dynamodb_endpoint {
            None => (
                Arc::new(InMemoryConnectionRepository::default()),
                Arc::new(InMemoryRoomLog::with_room_limit(self.room_limit())),
                Arc::new(InMemoryBans::default()),
            ),
            Some(url) => {
                let client = wiring::dynamodb_client(&sdk, Some(url));
                let table = self
                    .service
                    .parsed::<String>(&adapters::settings::CONNECTIONS_TABLE)?;
                create_table_if_missing(&client, &table).await?;
                let mut dynamo = DynamoSettings::new(table);
                dynamo.page_size = self.service.parsed(&adapters::settings::PAGE_SIZE)?;
                dynamo.list_shards = self.service.parsed(&adapters::settings::LIST_SHARDS)?;
                (
                    Arc::new(DynamoConnectionRepository::new(
                        client.clone(),
                        dynamo.clone(),
                    )),
                    Arc::new(DynamoRoomLog::new(client.clone(), dynamo.clone())),
                    Arc::new(DynamoBans::new(client, dynamo.table)),
                )
            }
        };
        let lifecycle = Arc::new(LocalLifecycleEvents::new(self.events_webhook.as_deref())?);
        let sessions = Sessions {
            bans,
            events: lifecycle.clone(),
            verifier: self.token_verifier()?,
        };
        let (handler, delivery) = self.handler(
            &sdk,
            rooms.clone(),
            log.clone(),
            notifier,
            settings,
            sessions,
        )?;
        Ok(GatewayConfig {
            sockets,
            authorizer: self.authorizer()?,
            listener,
            notifier_listener,
            stage: self.stage.clone(),
            api: ApiName::default(),
            limits: self.limits(),
            browser: self.browser_policy(),
            chat_view: self.chat_view,
            handler,
            delivery,
            rooms: Some(rooms),
            log: Some(log),
            deployed: None,
            lifecycle: Some(lifecycle),
        })
    }

    /// The gateway in front of a deployment's functions: its stage and API name, its routes and
    /// authorizer invoking the functions, its event source mappings polling. The functions post
    /// to `@connections` where their environment says (through the rehearsal's proxy, to this
    /// gateway's port).
    async fn deployment_config(
        &self,
        deployment: &Deployment,
    ) -> Result<GatewayConfig, Box<dyn std::error::Error>> {
        let listener = tokio::net::TcpListener::bind((self.host, self.port))
            .await
            .map_err(|e| format!("cannot listen on {}:{}: {e}", self.host, self.port))?;
        let functions = deployment.functions();
        let authorizer = deployment
            .authorizer(functions.clone())
            .map(|authorizer| Arc::new(authorizer) as Arc<dyn crate::authorizer::Authorizer>);
        Ok(GatewayConfig {
            listener,
            notifier_listener: None,
            stage: deployment.stage.clone(),
            api: ApiName {
                id: deployment.api_id.clone(),
                region: deployment.region.clone(),
                account_id: deployment.account_id.clone(),
            },
            limits: self.limits(),
            handler: Arc::new(deployment.routes(functions.clone())),
            authorizer,
            sockets: Arc::new(Sockets::default()),
            browser: self.browser_policy(),
            chat_view: self.chat_view,
            delivery: None,
            rooms: None,
            log: None,
            deployed: Some(Deployed::start(deployment, functions).await),
            lifecycle: None,
        })
    }

    /// The handler, and with `--workers` above 0 the queue it hands large broadcasts to and the
    /// workers that drain it, sharing its store and notifier.
    fn handler(
        &self,
        sdk: &aws_config::SdkConfig,
        repo: Arc<dyn ConnectionRepository>,
        log: Arc<dyn RoomLog>,
        notifier: Arc<dyn ClientNotifier>,
        settings: Settings,
        sessions: Sessions,
    ) -> Result<(Arc<dyn EventHandler>, Option<LocalDelivery>), String> {
        let mut service = wiring::service(repo.clone(), notifier.clone(), settings.clone())
            .with_room_log(log.clone())
            .with_bans(sessions.bans.clone())
            .with_lifecycle_events(sessions.events.clone());
        if let Some(verifier) = sessions.verifier {
            service = service.with_token_verifier(verifier);
        }
        if self.workers == 0 {
            return Ok((Arc::new(WebSocketHandler::new(service)), None));
        }
        let transport = self.transport(sdk)?;
        let worker = DeliveryWorker::new(
            repo,
            notifier,
            transport.sender(),
            Arc::new(SystemClock),
            Arc::new(TokioSleeper),
            settings,
        )
        .with_room_log(log)
        .with_bans(sessions.bans)
        .with_lifecycle_events(sessions.events);
        let workers = usize::try_from(self.workers).unwrap_or(1);
        let service = service.with_delivery_queue(transport.sender());
        let delivery = LocalDelivery::start(transport, worker, workers, self.job_deadline());
        Ok((Arc::new(WebSocketHandler::new(service)), Some(delivery)))
    }
}

/// What the handler and the workers share for sessions: bans, lifecycle events, and the
/// authorizer's verifier for `reauth` (with auth on).
struct Sessions {
    bans: Arc<dyn Bans>,
    events: Arc<LocalLifecycleEvents>,
    verifier: Option<Arc<dyn domain::TokenVerifier>>,
}

impl Options {
    /// What one room's stream sustains in memory: `--room-max-publish-per-second`, bursts of as
    /// many (0: no limit).
    fn room_limit(&self) -> RateLimit {
        RateLimit {
            per_second: self.room_max_publish_per_second,
            burst: self.room_max_publish_per_second,
        }
    }

    /// The in-memory queues, or the SQS queues of --internal-queue-url and --backend-queue-url.
    fn transport(&self, sdk: &aws_config::SdkConfig) -> Result<Transport, String> {
        let Some(internal) = self.service.text(&settings::INTERNAL_QUEUE_URL) else {
            return Ok(Transport::Memory {
                internal: MemoryQueue::default(),
                backend: MemoryQueue::default(),
            });
        };
        let required = |setting: &Setting| {
            self.service
                .text(setting)
                .ok_or_else(|| format!("--internal-queue-url needs --{} too", setting.flag()))
        };
        let backend = required(&settings::BACKEND_QUEUE_URL)?;
        let dead_letters = required(&settings::DEAD_LETTER_QUEUE_URL)?;
        let client = sqs_client(sdk, self.sqs_endpoint.as_deref());
        let sources = Sources::with_internal_queue(&internal);
        Ok(Transport::Sqs {
            pollers: [&internal, &backend]
                .into_iter()
                .map(|url| SqsPoller::new(client.clone(), url, sources.clone()))
                .collect(),
            internal: SqsDeliveryQueue::new(client.clone(), &internal)
                .with_dead_letters(dead_letters),
            backend: SqsDeliveryQueue::new(client, &backend),
        })
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
