//! The local API Gateway: WebSocket side, `@connections` API and a chat page on one port.
//!
//! - [`events`]: the API Gateway events built for each upgrade, message and close.
//! - [`sockets`]: one task per socket: limits, routing, `$disconnect`.
//! - [`management`]: `POST|GET|DELETE /{stage}/@connections/{id}` with AWS-style errors.

mod events;
mod management;
mod options;
mod registry;
mod sockets;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use adapters::apigateway::inbound::{InboundError, WebSocketHandler};
use async_trait::async_trait;
use aws_lambda_events::apigw::ApiGatewayProxyResponse;
use axum::Router;
use axum::routing::{any, get};
use domain::{ClientNotifier, ConnectionId, ConnectionRepository, TokenVerifier};
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};

pub use options::{NotifierKind, Options};
pub use registry::{InProcessNotifier, PostError, Sockets};

/// The code the Lambdas run, behind one object-safe trait so any store can sit behind it.
#[async_trait]
pub trait EventHandler: Send + Sync {
    async fn handle_json(&self, event: Value) -> Result<ApiGatewayProxyResponse, InboundError>;
}

#[async_trait]
impl<R, N> EventHandler for WebSocketHandler<R, N>
where
    R: ConnectionRepository + 'static,
    N: ClientNotifier + 'static,
{
    async fn handle_json(&self, event: Value) -> Result<ApiGatewayProxyResponse, InboundError> {
        WebSocketHandler::handle_json(self, event).await
    }
}

#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_message_bytes: usize,
    pub idle_timeout: Duration,
    pub max_connection: Duration,
    /// Handler invocations running at once, like a Lambda function's concurrency limit: a burst
    /// of messages queues instead of opening a loopback connection per reply.
    pub max_concurrent_invocations: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_message_bytes: 128 * 1024,
            idle_timeout: Duration::from_secs(600),
            max_connection: Duration::from_secs(7200),
            max_concurrent_invocations: 256,
        }
    }
}

pub struct GatewayConfig {
    pub listener: TcpListener,
    pub stage: String,
    pub limits: Limits,
    pub handler: Arc<dyn EventHandler>,
    /// Runs the project's REQUEST authorizer on every upgrade when set, as API Gateway does.
    pub authorizer: Option<Arc<dyn TokenVerifier>>,
    /// The open sockets; shared with an `InProcessNotifier` when the handler uses one.
    pub sockets: Arc<Sockets>,
}

/// What the gateway tells a socket task to send.
#[derive(Debug)]
pub(crate) enum Outbound {
    Text(String),
    Binary(Vec<u8>),
    Close(u16, &'static str),
}

/// An open socket, as `GET @connections/{id}` describes it.
pub(crate) struct OpenSocket {
    pub tx: mpsc::UnboundedSender<Outbound>,
    pub connected_at: time::OffsetDateTime,
    pub last_active_at: time::OffsetDateTime,
    pub source_ip: String,
    pub user_agent: String,
}

pub(crate) struct Gateway {
    pub stage: String,
    pub api_id: String,
    pub addr: SocketAddr,
    pub limits: Limits,
    pub handler: Arc<dyn EventHandler>,
    pub authorizer: Option<Arc<dyn TokenVerifier>>,
    pub sockets: Arc<Sockets>,
    pub shutdown: watch::Receiver<bool>,
    invocations: tokio::sync::Semaphore,
}

impl Gateway {
    /// Runs the handler as API Gateway invokes a Lambda: at most `max_concurrent_invocations` at
    /// once, the rest waiting their turn.
    pub async fn invoke(&self, event: Value) -> Result<ApiGatewayProxyResponse, InboundError> {
        let _permit = self.invocations.acquire().await;
        self.handler.handle_json(event).await
    }

    pub fn sockets(&self) -> std::sync::MutexGuard<'_, HashMap<ConnectionId, OpenSocket>> {
        self.sockets.lock()
    }
}

pub struct RunningGateway {
    gateway: Arc<Gateway>,
    stop: watch::Sender<bool>,
    server: tokio::task::JoinHandle<()>,
}

impl RunningGateway {
    pub fn addr(&self) -> SocketAddr {
        self.gateway.addr
    }

    pub fn ws_url(&self) -> String {
        format!("ws://{}/{}", self.gateway.addr, self.gateway.stage)
    }

    pub fn http_url(&self) -> String {
        format!("http://{}/", self.gateway.addr)
    }

    pub fn management_url(&self) -> String {
        format!("http://{}/{}", self.gateway.addr, self.gateway.stage)
    }

    pub fn open_sockets(&self) -> usize {
        self.gateway.sockets().len()
    }

    /// Closes every socket with 1001 "Going away", waits (at most 10 s) for their `$disconnect`
    /// to run, then stops the server.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        for _ in 0..200 {
            if self.gateway.sockets().is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        self.server.abort();
    }
}

pub async fn start(config: GatewayConfig) -> std::io::Result<RunningGateway> {
    let addr = config.listener.local_addr()?;
    let (stop, shutdown) = watch::channel(false);
    let gateway = Arc::new(Gateway {
        stage: config.stage,
        api_id: "local".into(),
        addr,
        limits: config.limits,
        handler: config.handler,
        authorizer: config.authorizer,
        sockets: config.sockets,
        shutdown,
        invocations: tokio::sync::Semaphore::new(config.limits.max_concurrent_invocations.max(1)),
    });
    let app = Router::new()
        .route("/", get(sockets::root))
        .route("/{stage}", get(sockets::upgrade))
        .route("/{stage}/@connections/{id}", any(management::connection))
        .route(
            "/@connections/{id}",
            any(management::connection_without_stage),
        )
        .with_state(gateway.clone());
    let server = tokio::spawn(async move {
        let service = app.into_make_service_with_connect_info::<SocketAddr>();
        if let Err(e) = axum::serve(config.listener, service).await {
            tracing::error!(error = %e, "local gateway server stopped");
        }
    });
    Ok(RunningGateway {
        gateway,
        stop,
        server,
    })
}
