//! Command-line flags, each with an environment variable.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use adapters::apigateway::inbound::WebSocketHandler;
use adapters::apigateway::{ApiGatewayNotifier, ManagementEndpoint, NotifierTimeouts};
use adapters::auth::{AuthConfig, AuthConfigError};
use adapters::dynamodb::{DynamoConnectionRepository, DynamoSettings, create_table_if_missing};
use adapters::memory::InMemoryConnectionRepository;
use adapters::wiring;
use clap::Parser;
use domain::{ClientNotifier, ConnectionRepository, RateLimit, Settings, TokenVerifier};

use crate::{EventHandler, GatewayConfig, InProcessNotifier, Limits, Sockets};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum NotifierKind {
    Http,
    InProcess,
}

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
    /// Handler invocations at once, like a Lambda concurrency limit; more messages wait their turn.
    #[arg(long, env = "LOCAL_GATEWAY_CONCURRENCY", default_value_t = 256)]
    pub max_concurrent_invocations: usize,
    /// How replies reach sockets: `http` posts to this gateway's own @connections API through the
    /// real ApiGatewayNotifier, as in AWS; `in-process` skips the HTTP hop (faster under load).
    #[arg(long, env = "LOCAL_GATEWAY_NOTIFIER", value_enum, default_value_t = NotifierKind::Http)]
    pub notifier: NotifierKind,
    /// Use a DynamoDB-compatible server (moto, DynamoDB Local) instead of the in-memory store.
    #[arg(long, env = "LOCAL_GATEWAY_DYNAMODB_ENDPOINT")]
    pub dynamodb_endpoint: Option<String>,
    /// The table to use with --dynamodb-endpoint; created when missing.
    #[arg(long, env = "CONNECTIONS_TABLE", default_value = "connections-local")]
    pub table: String,
    /// Turn the authorizer on with an HS256 secret (at least 32 bytes); clients then connect with
    /// `?token=<JWT>`.
    #[arg(long, env = "JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<String>,
    /// Turn the authorizer on with the keys of a JWKS document (RS256/ES256).
    #[arg(long, env = "JWKS_URL")]
    pub jwks_url: Option<String>,
    #[arg(long, env = "JWT_ISSUER")]
    pub jwt_issuer: Option<String>,
    #[arg(long, env = "JWT_AUDIENCE")]
    pub jwt_audience: Option<String>,
    /// Messages a second one connection may send (`ping`, `whoami` excepted), as the Lambdas'
    /// `RATE_LIMIT_PER_SECOND`; 0 (the default here, where load tests flood) turns the limit off.
    #[arg(long, env = "RATE_LIMIT_PER_SECOND", default_value_t = 0)]
    pub rate_limit_per_second: u32,
    /// Messages one connection may send at once after a quiet spell; 0 turns the limit off.
    #[arg(long, env = "RATE_LIMIT_BURST", default_value_t = 0)]
    pub rate_limit_burst: u32,
    /// Print an HS256 token for this subject, signed with --jwt-secret and valid for an hour, then exit.
    #[arg(long, value_name = "SUBJECT")]
    pub mint_token: Option<String>,
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
        let sockets = Arc::new(Sockets::default());
        let notifier: Arc<dyn ClientNotifier> = match self.notifier {
            NotifierKind::Http => Arc::new(ApiGatewayNotifier::new(
                &sdk,
                &endpoint,
                NotifierTimeouts::default(),
            )),
            NotifierKind::InProcess => Arc::new(InProcessNotifier {
                sockets: sockets.clone(),
                max_message_bytes: self.max_message_bytes,
            }),
        };
        let settings = Settings {
            max_message_bytes: self.max_message_bytes,
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
            limits: Limits {
                max_message_bytes: self.max_message_bytes,
                idle_timeout: Duration::from_secs(self.idle_timeout_secs),
                max_connection: Duration::from_secs(self.max_connection_secs),
                max_concurrent_invocations: self.max_concurrent_invocations,
            },
            handler,
        })
    }
}

impl Options {
    fn auth_config(&self) -> AuthConfig {
        AuthConfig {
            jwks_url: self.jwks_url.clone(),
            secret: self.jwt_secret.clone(),
            issuer: self.jwt_issuer.clone(),
            audience: self.jwt_audience.clone(),
            leeway: Duration::from_secs(30),
            jwks_refresh: Duration::from_secs(3600),
        }
    }

    /// The authorizer, when a secret or a JWKS URL is configured: off by default for the quick start.
    fn authorizer(&self) -> Result<Option<Arc<dyn TokenVerifier>>, AuthConfigError> {
        if self.jwt_secret.is_none() && self.jwks_url.is_none() {
            return Ok(None);
        }
        Ok(Some(Arc::new(self.auth_config().verifier()?)))
    }

    /// A token the authorizer accepts, for trying auth locally.
    pub fn minted_token(&self, subject: &str) -> Result<String, Box<dyn std::error::Error>> {
        let secret = self
            .jwt_secret
            .as_deref()
            .ok_or("--mint-token needs --jwt-secret (or JWT_SECRET)")?;
        self.auth_config().verifier()?;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_secs();
        let mut claims = serde_json::json!({"sub": subject, "iat": now, "exp": now + 3600});
        if let Some(issuer) = &self.jwt_issuer {
            claims["iss"] = issuer.clone().into();
        }
        if let Some(audience) = &self.jwt_audience {
            claims["aud"] = audience.clone().into();
        }
        let key = jsonwebtoken::EncodingKey::from_secret(secret.as_bytes());
        Ok(jsonwebtoken::encode(
            &jsonwebtoken::Header::default(),
            &claims,
            &key,
        )?)
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
