//! Command-line flags, each with an environment variable.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use adapters::apigateway::inbound::WebSocketHandler;
use adapters::apigateway::{ApiGatewayNotifier, ManagementEndpoint, NotifierTimeouts};
use adapters::dynamodb::{DynamoConnectionRepository, DynamoSettings, create_table_if_missing};
use adapters::memory::InMemoryConnectionRepository;
use adapters::wiring;
use clap::Parser;
use domain::{ConnectionRepository, Settings};

use crate::{EventHandler, GatewayConfig, Limits};

#[derive(Debug, Parser)]
#[command(about = "A local API Gateway WebSocket emulator running this project's handlers")]
pub struct Options {
    #[arg(long, env = "LOCAL_GATEWAY_HOST", default_value = "127.0.0.1")]
    pub host: IpAddr,
    #[arg(long, env = "LOCAL_GATEWAY_PORT", default_value_t = 3001)]
    pub port: u16,
    /// The stage in the URLs, as in wss://{api}.execute-api.{region}.amazonaws.com/{stage}.
    #[arg(long, env = "LOCAL_GATEWAY_STAGE", default_value = "local")]
    pub stage: String,
    /// Largest message in bytes (API Gateway: 128 KB); larger ones close the socket with 1009.
    #[arg(long, env = "LOCAL_GATEWAY_MAX_MESSAGE_BYTES", default_value_t = 128 * 1024)]
    pub max_message_bytes: usize,
    /// Seconds without a message before the socket closes with 1001 (API Gateway: 600).
    #[arg(long, env = "LOCAL_GATEWAY_IDLE_TIMEOUT", default_value_t = 600)]
    pub idle_timeout_secs: u64,
    /// Seconds a socket may live (API Gateway: 7200).
    #[arg(long, env = "LOCAL_GATEWAY_MAX_CONNECTION", default_value_t = 7200)]
    pub max_connection_secs: u64,
    /// Use a DynamoDB-compatible server (moto, DynamoDB Local) instead of the in-memory store.
    #[arg(long, env = "LOCAL_GATEWAY_DYNAMODB_ENDPOINT")]
    pub dynamodb_endpoint: Option<String>,
    /// The table to use with --dynamodb-endpoint; created when missing.
    #[arg(long, env = "CONNECTIONS_TABLE", default_value = "connections-local")]
    pub table: String,
}

impl Options {
    pub async fn gateway_config(&self) -> Result<GatewayConfig, Box<dyn std::error::Error>> {
        // The notifier posts to this gateway's own @connections API, exactly as in AWS.
        let listener = tokio::net::TcpListener::bind((self.host, self.port))
            .await
            .map_err(|e| format!("cannot listen on {}:{}: {e}", self.host, self.port))?;
        let addr = listener.local_addr()?;
        let endpoint = ManagementEndpoint::parse(&format!("http://{addr}/{}", self.stage))?;
        let sdk = local_sdk_config().await;
        let notifier = ApiGatewayNotifier::new(&sdk, &endpoint, NotifierTimeouts::default());
        let settings = Settings {
            max_message_bytes: self.max_message_bytes,
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
            listener,
            stage: self.stage.clone(),
            limits: Limits {
                max_message_bytes: self.max_message_bytes,
                idle_timeout: Duration::from_secs(self.idle_timeout_secs),
                max_connection: Duration::from_secs(self.max_connection_secs),
            },
            handler,
        })
    }
}

fn handler<R: ConnectionRepository + 'static>(
    repo: R,
    notifier: ApiGatewayNotifier,
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
