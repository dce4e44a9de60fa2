//! From flags to a running configuration: the store, the notifier and the handler.

use std::sync::Arc;

use adapters::apigateway::inbound::WebSocketHandler;
use adapters::apigateway::{ManagementEndpoint, NotifierTimeouts};
use adapters::dynamodb::{DynamoConnectionRepository, DynamoSettings, create_table_if_missing};
use adapters::memory::InMemoryConnectionRepository;
use adapters::wiring;
use domain::{ClientNotifier, ConnectionRepository, RateLimit, Settings};

use crate::bounded_notifier::{BoundedNotifier, DEFAULT_MAX_POSTS_IN_FLIGHT};
use crate::{EventHandler, GatewayConfig, InProcessNotifier, NotifierKind, Options, Sockets};

impl Options {
    pub async fn gateway_config(&self) -> Result<GatewayConfig, Box<dyn std::error::Error>> {
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
                self.notifier_client
                    .build(&sdk, &endpoint, NotifierTimeouts::default())?,
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
            ..Settings::default()
        };
        let handler: Arc<dyn EventHandler> = match &self.dynamodb_endpoint {
            None => handler(InMemoryConnectionRepository::default(), notifier, settings),
            Some(url) => {
                let client = wiring::dynamodb_client(&sdk, Some(url));
                create_table_if_missing(&client, &self.table).await?;
                let repo =
                    DynamoConnectionRepository::new(client, DynamoSettings::new(&self.table));
                handler(repo, notifier, settings)
            }
        };
        Ok(GatewayConfig {
            sockets,
            authorizer: self.authorizer()?,
            listener,
            stage: self.stage.clone(),
            limits: self.limits(),
            browser: self.browser_policy(),
            handler,
        })
    }
}

fn handler<R: ConnectionRepository + 'static>(
    repo: R,
    notifier: Arc<dyn ClientNotifier>,
    settings: Settings,
) -> Arc<dyn EventHandler> {
    Arc::new(WebSocketHandler::new(wiring::service(
        repo, notifier, settings,
    )))
}

/// Local runs need no AWS account: the SDK gets dummy credentials unless real ones are set, and
/// never probes instance metadata.
async fn local_sdk_config() -> aws_config::SdkConfig {
    use aws_config::BehaviorVersion;
    let mut loader = aws_config::defaults(BehaviorVersion::latest());
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
